/* berth: removing a job's Docker containers, also when dockerd is down.
 *
 * The step's exit and the job epilog remove the containers labelled with
 * the job.  When dockerd does not answer then (stopped or restarting under
 * the job), what it left (stopped containers, which dockerd keeps across a
 * restart) would stay forever.  So a sweep that cannot reach dockerd
 * records the job in CacheDir/.docker-sweep/<job> (root's, 0700), and
 * every later sweep on the node, once dockerd answers again, removes those
 * jobs' containers first and forgets the record. */
#ifndef BERTH_DOCKER_SWEEP_H
#define BERTH_DOCKER_SWEEP_H

#include <stddef.h>

#include "conf/error.h"
#include "executor/dockerd/api.h"

#define BERTH_DOCKER_SWEEP_LEAF ".docker-sweep" /* in CacheDir, beside the users' */

/* Remove every container whose `label` ("berth.job=N" or "berth.step=N.S")
 * and, when not NULL, `also` ("berth.node=HOST") match; *removed counts
 * them.  Fails on the first Docker error. */
int berth_docker_sweep_label(struct berth_docker *d, const char *label, const char *also,
			     size_t *removed, struct berth_err *err);

/* Remember that job `job` (digits), or only its step `step` when not NULL,
 * still has containers to remove: a step's record must not later take the
 * containers of the job's other steps, which may be running. */
int berth_docker_sweep_defer(const char *cache_dir, const char *job, const char *step,
			     struct berth_err *err);

/* Remove the containers of every recorded job or step (a step's only where
 * `node_label`, "berth.node=HOST" when not NULL, matches too: its sweep was
 * this node's); a record whose sweep worked is forgotten.  *removed counts
 * the containers, *jobs the records done. */
int berth_docker_sweep_deferred(struct berth_docker *d, const char *cache_dir,
				const char *node_label, size_t *removed, size_t *jobs,
				struct berth_err *err);

#endif
