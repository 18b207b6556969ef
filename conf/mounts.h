/* berth: the one parser for bind mounts, "SRC:DST[:ro|rw]" items, shared by
 * --container-mounts (comma-separated list) and `berth run --bind`.
 * libc only. */
#ifndef BERTH_MOUNTS_H
#define BERTH_MOUNTS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define BERTH_MOUNT_LIST_MAX 64

struct berth_mount {
	char *src;      /* absolute host path */
	char *dst;      /* absolute container path */
	bool read_only; /* ":ro"; ":rw" or nothing is read-write */
	bool berth_own; /* berth's own (the spooled batch script), never parsed
			 * from user input: exempt from DockerAllowedMounts */
};

/* Parse one item.  Both paths must be absolute, without ':' or ','
 * (no runtime can bind those) and without ".." components. */
int berth_mount_parse(const char *item, struct berth_mount *m, struct berth_err *err);

/* Parse "ITEM[,ITEM...]" into at most BERTH_MOUNT_LIST_MAX mounts.
 * *mounts is a malloc'd array; free with berth_mounts_free. */
int berth_mounts_parse_list(const char *list, struct berth_mount **mounts,
			    size_t *n, struct berth_err *err);
void berth_mounts_free(struct berth_mount *mounts, size_t n);

#endif
