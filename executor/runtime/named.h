/* berth: named containers (--container-name, pyxis's meaning).
 *
 * A named container is a writable layer kept on disk at
 * CacheDir/<uid>/containers/<scope>/<NAME>/ (scope "job-<id>" or "user",
 * the site's ContainerScope), over the cached image it was made from:
 *   image        the digest it was made from, and the runtime
 *   upper/ work/ the overlay's halves (the container's changes)
 *   lock         held (flock) by the launcher that runs it, which waits for
 *                the runtime (a runtime may close descriptors it inherits)
 *   holder       "PID TOKEN" of that runtime; the token is a file the holder
 *                puts at /.berth/running-TOKEN in the container's root, so
 *                a task that joins can tell, through /proc/PID/root, which
 *                process already runs inside it.
 * The first task that names it creates (or reuses) the layer and runs the
 * container; a task that comes while it runs joins its namespaces.  The
 * layer is the user's own (0700), removed at the job's end when the scope
 * is "job"; `berth ps` lists them and `berth rm` removes one. */
#ifndef BERTH_NAMED_H
#define BERTH_NAMED_H

#include <stdbool.h>
#include <sys/types.h>

#include "conf/error.h"
#include "conf/names.h"
#include "executor/cache/cache.h"

struct berth_named {
	char dir[PATH_MAX];      /* CacheDir/<uid>/containers/<scope>/<NAME> */
	char name[BERTH_NAME_MAX];
	int lock_fd;             /* the holder's: kept open across exec */
	bool holder;             /* we run it; else we join `pid` */
	bool created;            /* made by this task */
	pid_t pid;               /* joiner: a process inside the running one */
	char digest[BERTH_DIGEST_LEN + 1];
	char runtime[32];
};

/* Take the container for this task: create or reuse it (holder), or find
 * the running one (joiner), as `mode` allows.  `digest` (may be "") is the
 * job's image; a container that exists keeps its own.  `runtime` must be
 * the one that made it. */
int berth_named_take(struct berth_cache *cache, const char *scope, const char *name,
		     enum berth_name_mode mode, const char *digest, const char *runtime,
		     struct berth_named *named, struct berth_err *err);

/* Holder: put the running token where the container will see it, and
 * record `pid` (the runtime's process) as the one to join. */
int berth_named_mark_running(struct berth_named *named, pid_t pid, struct berth_err *err);

/* Joiner: enter the running container's user, mount and pid namespaces,
 * start `argv` there (execvpe with `env`, in `workdir`; with `remap_root`,
 * chown and set*id faked as for its holder: fakeroot.h), forward the
 * signals this process gets, and return its exit status (128+N after
 * signal N); -1 with err when it cannot. */
int berth_named_join(const struct berth_named *named, char *const *argv, char *const *env,
		     const char *workdir, bool remap_root, struct berth_err *err);

/* --container-name=JOBID.STEPID (pyxis): join the container of that
 * running step of the user's on this node, named or not: its user, mount
 * and pid namespaces and its root, in `workdir` (NULL: the step's task's
 * own folder), with that task's environment but this step's SLURM_*; the
 * exit status of argv, or -1 with err (no such step running here). */
int berth_step_join(const char *name, char *const *argv, const char *workdir,
		    struct berth_err *err);

void berth_named_release(struct berth_named *named);

/* `berth ps` / `berth rm`: every container of the user; remove one (not
 * while it runs).  `scope` NULL: any. */
typedef void (*berth_named_visit)(void *ctx, const char *scope, const char *name,
				  const char *digest, const char *runtime, bool running,
				  unsigned long long bytes);
int berth_named_list(struct berth_cache *cache, berth_named_visit visit, void *ctx,
		     struct berth_err *err);
int berth_named_remove(struct berth_cache *cache, const char *scope, const char *name,
		       struct berth_err *err);
/* Remove every container of one scope ("job-<id>" at the job's end). */
int berth_named_remove_scope(struct berth_cache *cache, const char *scope,
			     struct berth_err *err);

#endif
