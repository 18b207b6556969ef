/* berth: the content manifest of a cache artifact.
 *
 * When an artifact (a flattened rootfs, a SIF, a sandbox) is completed, the
 * cache records what it holds in images/<hex>/<leaf>.manifest, one line per
 * path, sorted by path:
 *
 *   berth-manifest 2
 *   TYPE MODE SIZE XXH64 PATH
 *
 * TYPE is f (file), d (folder), l (symlink), p, c, b or s; MODE the octal
 * permission bits; SIZE the byte size of a file or link (0 otherwise);
 * XXH64 the 16-hex hash of a file's contents or a link's target ("-" for
 * the rest, and for a file its owner cannot read); PATH begins with the leaf
 * ("rootfs/etc/passwd") with '\' and newline written as \\ and \n.
 * Timestamps and owners are left out: a touch is not a corruption.
 *
 * `berth cache verify` scans the artifact again and compares. */
#ifndef BERTH_MANIFEST_H
#define BERTH_MANIFEST_H

#include <stddef.h>

#include "conf/error.h"

#define BERTH_MANIFEST_HEADER "berth-manifest 2\n"

struct berth_manifest_item {
	char type;
	unsigned mode;
	unsigned long long size;
	char hash[65]; /* 16 hex, or "-" */
	char *path;
};

struct berth_manifest {
	struct berth_manifest_item *items;
	size_t n, cap;
};

/* Walk `leaf` (a file or a folder tree) beneath dir_fd, never following a
 * symlink, hashing every file.  m must be zeroed or freed. */
int berth_manifest_scan(int dir_fd, const char *leaf, struct berth_manifest *m,
			struct berth_err *err);

/* The manifest as text (malloc'd), and back.  Parsing returns 1, with m
 * empty, for another version's manifest (version 1, SHA-256, was never
 * released): the caller treats it as none. */
int berth_manifest_format(const struct berth_manifest *m, char **text, size_t *len,
			  struct berth_err *err);
int berth_manifest_parse(const char *text, size_t len, struct berth_manifest *m,
			 struct berth_err *err);

/* The first path (in path order) where `have` differs from `want`, and how
 * ("content", "size", "mode", "type", "missing", "unexpected"); NULL when
 * they are the same. */
const char *berth_manifest_diff(const struct berth_manifest *want,
				const struct berth_manifest *have, const char **how);

void berth_manifest_free(struct berth_manifest *m);

#endif
