/* berth: what --container-remap-root needs beyond a uid 0 that maps to the
 * user: package managers chown files and switch ids, which a user
 * namespace with one id refuses.  A seccomp filter makes those calls
 * report success without doing anything, as enroot does.  It grants
 * nothing: the calls that would change an owner or an id do not run. */
#ifndef BERTH_FAKEROOT_H
#define BERTH_FAKEROOT_H

#include "conf/error.h"

/* Install the filter on this process (inherited by everything it execs);
 * sets no_new_privs first, as an unprivileged seccomp filter needs. */
int berth_fake_id_syscalls(struct berth_err *err);

#endif
