/* What named.c and step_join.c share: a running container's namespaces
 * and root, opened from one of its processes, and entering them.  Internal
 * to executor/runtime. */
#ifndef BERTH_NAMED_INT_H
#define BERTH_NAMED_INT_H

#include <sys/types.h>

#include "conf/error.h"

/* The namespaces and root of `pid`, opened before any is entered (entering
 * cannot be undone); -1 when it has gone meanwhile. */
struct inside_fds {
	int user, mnt, pid, root, net, ipc, uts;
};

int open_inside(pid_t pid, struct inside_fds *f);
void close_inside(struct inside_fds *f);

/* 1 when the namespace at fd is already ours (nothing to enter), 0 when
 * not, -1 when fd cannot be looked at. */
int ours_already(int fd, const char *ns, struct berth_err *err);

/* Enter what open_inside opened (closed here), change to `workdir` (else
 * to cwd_fd, else "/"), and run argv there; its exit status. */
int join_inside(struct inside_fds *fds, const char *name, char *const *argv,
		char *const *env, const char *workdir, int cwd_fd, struct berth_err *err);

#endif
