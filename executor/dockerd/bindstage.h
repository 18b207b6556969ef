/* berth: Docker binds that are exactly what was checked.
 *
 * dockerd (root) resolves a bind's source path itself, when the container
 * starts.  Handing it the user's path would bind whatever that path names
 * then: a symlink or folder swapped in after berth's check would give the
 * job any file on the node.  So the root-side monitor opens each source as
 * the job's user (the kernel's permission checks decide), checks where the
 * opened object is (DockerAllowedMounts), bind-mounts that object itself
 * (/proc/self/fd/N) at CacheDir/.docker-binds/<label>.XXXXXX/<i>, a
 * root-only folder the user cannot touch, and gives dockerd that path.
 * CacheDir is where dockerd can see it: the node's own disk (a /run of a
 * private mount namespace, a job container's or a test chroot's, is not).
 * The stage is made in PID 1's mount namespace when this process may
 * enter it, and unmounted when the container is removed (or by `berth
 * docker sweep`). */
#ifndef BERTH_BINDSTAGE_H
#define BERTH_BINDSTAGE_H

#include <limits.h>
#include <stddef.h>

#include "conf/error.h"

#define BERTH_BIND_STAGE_LEAF ".docker-binds" /* in CacheDir, beside the users' */

struct berth_bind_stage {
	char dir[PATH_MAX];  /* "" until made */
	size_t n;            /* entries 0..n-1 mounted */
};

/* Bind each fds[i] at stage->dir/<i>; paths[i] gets that path.  `label`
 * ("<job>.<step>") starts the stage's name, for the sweep. */
int berth_bind_stage_make(struct berth_bind_stage *stage, const char *cache_dir,
			  const char *label, const int *fds, size_t n, char (*paths)[PATH_MAX],
			  struct berth_err *err);

/* Unmount and remove the stage (nothing when none was made). */
void berth_bind_stage_remove(struct berth_bind_stage *stage);

/* Remove every stage whose name starts with "<job>." (and, with step,
 * "<job>.<step>."): what a killed monitor left. */
int berth_bind_stage_sweep(const char *cache_dir, const char *job, const char *step,
			   struct berth_err *err);

#endif
