/* berth: the one parser for mounts as pyxis users write them, shared by
 * --container-mounts (comma-separated list) and `berth run --bind`:
 *
 *   SRC                 SRC at the same path inside (SRC absolute)
 *   SRC:DST[:FLAGS]     FLAGS joined by '+': ro rw nosuid nodev noexec
 *                       private rprivate slave rslave unbindable runbindable
 *   umount:DST          leave out a mount the runtime makes at DST
 *   tmpfs:DST[:OPTS]    a private tmpfs; OPTS joined by '+': size=N[k|m|g|%]
 *                       mode=OCTAL nr_blocks=N nr_inodes=N huge=WHEN
 *                       mpol=POLICY inode32 inode64 (tmpfs(5)) nosuid
 *                       nodev noexec
 *
 * A relative SRC ("./", "data") starts at the folder the job was submitted
 * from; targets must be absolute.  No path may hold ':' or ',' (no runtime
 * can carry them) or a ".." component.  libc only. */
#ifndef BERTH_MOUNTS_H
#define BERTH_MOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#include "conf/error.h"

#define BERTH_MOUNT_LIST_MAX 64
#define BERTH_TMPFS_EXTRA_MAX 160

/* BERTH_MOUNT_UMOUNT: "umount:DST", a mount the runtime itself makes at
 * DST left out (where the runtime can: caps.h); never reaches a runtime
 * as a mount. */
enum berth_mount_kind { BERTH_MOUNT_BIND = 0, BERTH_MOUNT_TMPFS, BERTH_MOUNT_UMOUNT };

/* Mount propagation of the target, as mount(8) names it. */
enum berth_propagation {
	BERTH_PROP_DEFAULT = 0, /* the runtime's own (private everywhere here) */
	BERTH_PROP_PRIVATE,
	BERTH_PROP_RPRIVATE,
	BERTH_PROP_SLAVE,
	BERTH_PROP_RSLAVE,
	BERTH_PROP_UNBINDABLE,
	BERTH_PROP_RUNBINDABLE,
};

/* Flags beyond ro/rw. */
#define BERTH_MNT_NOSUID 0x1u
#define BERTH_MNT_NODEV 0x2u
#define BERTH_MNT_NOEXEC 0x4u

struct berth_mount {
	enum berth_mount_kind kind;
	char *src;      /* absolute host path; "tmpfs" for a tmpfs */
	char *dst;      /* absolute container path */
	bool read_only; /* "ro"; "rw" or nothing is read-write */
	unsigned flags; /* BERTH_MNT_* */
	enum berth_propagation propagation;
	uint64_t tmpfs_size; /* bytes; 0 = the kernel's default (half of RAM) */
	unsigned tmpfs_mode; /* with tmpfs_mode_set; else 01777 */
	bool tmpfs_mode_set;
	/* the tmpfs(5) options beyond size= and mode=, joined by ',' as
	 * mount(2) takes them ("nr_inodes=64,huge=within_size"), checked
	 * against the kernel's list; "" when none */
	char tmpfs_extra[BERTH_TMPFS_EXTRA_MAX];
	bool berth_own; /* berth's own (the spooled batch script), never parsed
			 * from user input: exempt from DockerAllowedMounts */
};

/* Parse one item.  A relative source starts at base_dir (absolute); with
 * base_dir NULL a relative source is refused. */
int berth_mount_parse_at(const char *item, const char *base_dir, struct berth_mount *m,
			 struct berth_err *err);
int berth_mount_parse(const char *item, struct berth_mount *m, struct berth_err *err);

/* Parse "ITEM[,ITEM...]" (no empty item) into at most BERTH_MOUNT_LIST_MAX
 * mounts.  *mounts is a malloc'd array; free with berth_mounts_free. */
int berth_mounts_parse_list_at(const char *list, const char *base_dir,
			       struct berth_mount **mounts, size_t *n, struct berth_err *err);
int berth_mounts_parse_list(const char *list, struct berth_mount **mounts,
			    size_t *n, struct berth_err *err);
void berth_mounts_free(struct berth_mount *mounts, size_t n);

/* The canonical text of a list: absolute sources, every flag spelled out;
 * berth_mounts_parse_list() reads it back to the same mounts.  malloc'd. */
char *berth_mounts_format(const struct berth_mount *mounts, size_t n);

/* Order mounts parents first: by the depth of their container path, the
 * order given kept among equals (a stable sort).  A mount inside another
 * then always lands on it, never under it, whatever order the user gave
 * (Docker sorts the same way). */
void berth_mounts_sort(struct berth_mount *mounts, size_t n);

/* The index of the nearest of mounts[0..i) whose container path holds
 * mounts[i]'s (a strict parent folder), or -1 when none does. */
ssize_t berth_mount_parent(const struct berth_mount *mounts, size_t i);

/* The same for a container path that is not itself in the list: the
 * nearest of mounts[0..n) that holds it or is it. */
ssize_t berth_mount_holding(const struct berth_mount *mounts, size_t n, const char *path);

const char *berth_propagation_name(enum berth_propagation p);

/* A bind whose source is missing: -1 with "source path does not exist:
 * PATH" when stat() says ENOENT or ENOTDIR, as the caller's credentials
 * see it.  With `parent_seen`, only when the folder that would hold it is
 * there (the submitting host sees that place: a path it lacks altogether
 * may be node-local, and is checked when the step starts).  0 otherwise,
 * and for what is not a bind. */
int berth_mount_check_source(const struct berth_mount *m, bool parent_seen,
			     struct berth_err *err);

#endif
