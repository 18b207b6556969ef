/* berth: what each runtime can do of what a job asks, in one place, so
 * the plugin refuses at submission exactly what the node would refuse at
 * start, with the same words.  libc only (the plugin links it). */
#ifndef BERTH_CAPS_H
#define BERTH_CAPS_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/config.h"
#include "conf/error.h"
#include "conf/mounts.h"

/* 0 when runtime `rt` can make mount `m`; else -1 with why and what to do. */
int berth_runtime_can_mount(enum berth_runtime rt, const struct berth_mount *m,
			    struct berth_err *err);
int berth_runtime_can_mount_all(enum berth_runtime rt, const struct berth_mount *m, size_t n,
				struct berth_err *err);

/* umount:/etc/passwd or umount:/etc/group (charliecloud's --no-passwd). */
bool berth_umount_is_passwd(const struct berth_mount *m);

/* 0 when runtime `rt` can run the job as uid 0 mapped to the user. */
int berth_runtime_can_remap_root(enum berth_runtime rt, struct berth_err *err);

/* 0 when runtime `rt` can keep a named container (--container-name). */
int berth_runtime_can_name(enum berth_runtime rt, struct berth_err *err);

#endif
