/* berth: the cheap wholeness check of a cache artifact, made at every use.
 *
 * `berth cache verify` re-hashes an artifact against its manifest: a read
 * of the whole image, far too slow for every job start.  So when an
 * artifact is built, images/<hex>/<leaf>.stamp records what a few stats
 * see of it, and every stage and every job start compares:
 *
 *   a file (image.sif):  its size and mtime             (one fstatat)
 *   a folder (rootfs/, sandbox/): each top-level entry's name, type and,
 *     for a folder, its link count and mtime (a file added or removed in
 *     bin/, etc/, ... changes them), for the rest size and mtime
 *                                  (one readdir + one fstatat per entry,
 *                                   about 20 for a Linux root: ~50 us)
 *
 * plus the read of the stamp itself.  That catches a SIF truncated or
 * rewritten, a rootfs emptied, and a file added or deleted in a top-level
 * folder or one of its own entries replaced; a change deeper in the tree
 * with the folders' mtimes kept is left to `berth cache verify`.  An
 * artifact built before stamps existed has none and is taken as whole. */
#define _GNU_SOURCE
#include "executor/cache/store_int.h"
#include "executor/base/fs.h"
#include "executor/base/strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STAMP_HEADER "berth-stamp 1\n"
#define STAMP_MAX (64 * 1024)

static char type_of(mode_t mode)
{
	return S_ISDIR(mode) ? 'd' : S_ISREG(mode) ? 'f' : S_ISLNK(mode) ? 'l' : 'o';
}

/* One line: NAME TYPE COUNT MTIME, where COUNT is a folder's link count
 * and the size of anything else. */
static void describe_one(struct berth_sb *sb, const char *name, const struct stat *st)
{
	berth_sb_add(sb, name);
	berth_sb_printf(sb, " %c %llu %lld.%09ld\n", type_of(st->st_mode),
			S_ISDIR(st->st_mode) ? (unsigned long long)st->st_nlink
					     : (unsigned long long)st->st_size,
			(long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in the folder `fd` (closed here). */
static int list_names(int fd, char ***names, size_t *n)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	if (!d) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			char **bigger = realloc(*names, cap * sizeof(*bigger));
			if (!bigger)
				break;
			*names = bigger;
		}
		if (!((*names)[*n] = strdup(de->d_name)))
			break;
		(*n)++;
	}
	int rc = de ? -1 : 0;
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof(**names), by_name);
	return rc;
}

/* What the stamp of `leaf` (beneath entry_fd) says now, in *sb. */
static int describe_into(int entry_fd, const char *leaf, struct berth_sb *sb)
{
	struct stat st;
	char **names = NULL;
	size_t n = 0;

	berth_sb_add(sb, STAMP_HEADER);
	if (fstatat(entry_fd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		describe_one(sb, ".", &st);
		return 0;
	}
	int fd = openat(entry_fd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = list_names(dup(fd), &names, &n);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0)
			describe_one(sb, names[i], &st);
		else
			rc = -1;
		free(names[i]);
	}
	free(names);
	close(fd);
	return rc;
}

/* The same, as a malloc'd string; NULL with errno set on failure. */
static char *describe(int entry_fd, const char *leaf)
{
	struct berth_sb sb = {0};

	if (describe_into(entry_fd, leaf, &sb) < 0) {
		int saved = errno;
		berth_sb_free(&sb);
		errno = saved;
		return NULL;
	}
	char *text = berth_sb_take(&sb);
	if (!text)
		errno = ENOMEM;
	return text;
}

int cache_stamp_write(int entry_fd, const char *leaf, struct berth_err *err)
{
	_cleanup_free_ char *text = describe(entry_fd, leaf);
	char name[96];

	if (!text)
		return berth_fail(err, errno, "cannot stamp %s", leaf);
	snprintf(name, sizeof(name), "%s.stamp", leaf);
	_cleanup_close_ int fd = openat(entry_fd, name, O_WRONLY | O_CREAT | O_EXCL |
					O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || berth_write_all(fd, text, strlen(text)) < 0)
		return berth_fail(err, errno, "cannot write %s", name);
	return 0;
}

/* The first line of `want` that `have` lacks, as "LEAF/NAME": what changed. */
static void first_difference(const char *leaf, const char *want, const char *have,
			     char *why, size_t cap)
{
	for (const char *line = want; *line;) {
		size_t len = strcspn(line, "\n");
		bool found = false;
		for (const char *h = have; *h && !found;) {
			size_t hl = strcspn(h, "\n");
			found = hl == len && !memcmp(h, line, len);
			h += hl + (h[hl] == '\n');
		}
		if (!found) {
			size_t name_len = strcspn(line, " ");
			if (name_len == 1 && line[0] == '.')
				snprintf(why, cap, "%s changed since it was staged", leaf);
			else
				snprintf(why, cap, "%s/%.*s is missing or changed since it was "
					 "staged", leaf, (int)name_len, line);
			return;
		}
		line += len + (line[len] == '\n');
	}
	snprintf(why, cap, "%s holds something it did not hold when staged", leaf);
}

bool cache_stamp_whole(struct berth_cache *cache, const char *digest, const char *leaf,
		       char *why, size_t cap)
{
	char entry[96], name[96];
	_cleanup_free_ char *want = NULL;
	_cleanup_free_ char *have = NULL;
	struct stat st;

	snprintf(entry, sizeof(entry), "images/%s", digest + 7);
	_cleanup_close_ int entry_fd = openat(cache->dir_fd, entry, O_RDONLY | O_DIRECTORY |
					      O_NOFOLLOW | O_CLOEXEC);
	if (entry_fd < 0)
		return true; /* absent is not damaged: the caller stages it */
	snprintf(name, sizeof(name), "%s.stamp", leaf);
	_cleanup_close_ int fd = openat(entry_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > STAMP_MAX ||
	    !(want = calloc(1, (size_t)st.st_size + 1)) ||
	    berth_read_all(fd, want, (size_t)st.st_size) < 0)
		return true; /* no stamp (an older entry): nothing to compare */
	if (strncmp(want, STAMP_HEADER, strlen(STAMP_HEADER)) != 0)
		return true;
	if (!(have = describe(entry_fd, leaf))) {
		if (why)
			snprintf(why, cap, "%s is missing or unreadable (%s)", leaf,
				 strerror(errno));
		return false;
	}
	if (!strcmp(want, have))
		return true;
	if (why)
		first_difference(leaf, want, have, why, cap);
	return false;
}
