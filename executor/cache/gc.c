/* berth: looking after the cache: `berth cache ls` (list), removing an
 * entry, gc (unneeded blobs, then least recently used entries) and verify
 * (artifacts against their manifests, flagging the corrupt ones). */
#define _GNU_SOURCE
#include "executor/cache/cache.h"
#include "executor/cache/store_int.h"
#include "executor/cache/blobs.h"
#include "executor/base/fs.h"
#include "executor/base/hex.h"
#include "executor/cache/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOB_MIN_AGE 600            /* a younger unneeded blob may be a pull's */

/* Read a small text file of an entry ("" when missing). */
static void read_entry_file(struct berth_cache *cache, const char *hex,
			    const char *leaf, char *out, size_t cap)
{
	char name[160];

	out[0] = '\0';
	snprintf(name, sizeof(name), "images/%s/%s", hex, leaf);
	int fd = openat(cache->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, cap - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
}

static bool entry_in_use(struct berth_cache *cache, const char *digest)
{
	char name[128];

	snprintf(name, sizeof(name), "locks/%s", digest + 7);
	return berth_lock_held(cache->dir_fd, name);
}

static int by_last_use(const void *a, const void *b)
{
	const struct berth_cache_entry *x = a, *y = b;

	return (x->last_use > y->last_use) - (x->last_use < y->last_use);
}

static void describe_entry(struct berth_cache *cache, const char *hex,
			   struct berth_cache_entry *e)
{
	char size[32], name[160];
	struct stat st;

	memset(e, 0, sizeof(*e));
	snprintf(e->digest, sizeof(e->digest), "sha256:%s", hex);
	read_entry_file(cache, hex, "size", size, sizeof(size));
	e->size = strtoull(size, NULL, 10);
	read_entry_file(cache, hex, "source", e->source, sizeof(e->source));
	snprintf(name, sizeof(name), "images/%s/last-use", hex);
	if (fstatat(cache->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		e->last_use = st.st_mtime;
	e->in_use = entry_in_use(cache, e->digest);
}

int berth_cache_list(struct berth_cache *cache, struct berth_cache_entry **entries,
		     size_t *n, struct berth_err *err)
{
	int fd = openat(cache->dir_fd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct berth_cache_entry *list = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return berth_fail(err, errno, "cannot list %s/images", cache->dir);
	}
	while ((de = readdir(d))) {
		if (!berth_is_hex(de->d_name, 64) || de->d_name[64])
			continue;
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			struct berth_cache_entry *bigger = realloc(list, cap * sizeof(*list));
			if (!bigger) {
				free(list);
				closedir(d);
				return berth_fail(err, ENOMEM, "cache list");
			}
			list = bigger;
		}
		describe_entry(cache, de->d_name, &list[count++]);
	}
	closedir(d);
	if (count)
		qsort(list, count, sizeof(*list), by_last_use);
	*entries = list;
	*n = count;
	return 0;
}

/* Evict one entry if nobody uses it: rename it into tmp/ under its
 * exclusive lock (readers see all or nothing), then delete it. */
static int evict(struct berth_cache *cache, const char *digest, bool *evicted,
		 struct berth_err *err)
{
	char lock[128];

	*evicted = false;
	snprintf(lock, sizeof(lock), "locks/%s", digest + 7);
	_cleanup_close_ int fd = openat(cache->dir_fd, lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
		return 0; /* in use: keep it */
	if (cache_evict_locked(cache, digest, err) < 0)
		return -1;
	*evicted = true;
	return 0;
}

int berth_cache_remove(struct berth_cache *cache, const char *digest,
		       struct berth_err *err)
{
	bool gone = false;

	if (!cache_entry_exists(cache, digest, NULL))
		return berth_fail(err, 0, "image %s is not in the cache %s", digest,
				  cache->dir);
	if (evict(cache, digest, &gone, err) < 0)
		return -1;
	if (!gone)
		return berth_fail(err, EBUSY, "image %s is in use by a running job; "
				  "not removed", digest);
	return 0;
}

int berth_cache_remove_artifact(struct berth_cache *cache, const char *digest,
				const char *leaf, struct berth_err *err)
{
	char name[200], trash[64];
	unsigned long long r = 0;

	if (!cache_entry_exists(cache, digest, leaf))
		return berth_fail(err, 0, "image %s has no %s in the cache %s: nothing "
				  "to remove", digest, leaf, cache->dir);
	/* Exclusive and not waiting: a container or a job step using the
	 * image holds this lock shared until it ends (berth_cache_use). */
	_cleanup_close_ int fd = cache_lock_digest(cache, digest, LOCK_EX | LOCK_NB, err);
	if (fd < 0 && err->errnum == EWOULDBLOCK)
		return berth_fail(err, 0, "image %s is in use (a running container or job "
				  "step holds it); not removed: try again when it has ended",
				  digest);
	if (fd < 0)
		return -1;
	if (getentropy(&r, sizeof(r)) < 0)
		return berth_fail(err, errno, "getentropy");
	/* The manifest first: an artifact left without one is "no manifest"
	 * to verify, never a false "corrupt". */
	snprintf(name, sizeof(name), "images/%s/%s.manifest", digest + 7, leaf);
	if (unlinkat(cache->dir_fd, name, 0) < 0 && errno != ENOENT)
		return berth_fail(err, errno, "cannot remove %s/%s", cache->dir, name);
	snprintf(name, sizeof(name), "images/%s/%s", digest + 7, leaf);
	snprintf(trash, sizeof(trash), "tmp/evict-%016llx", r);
	if (renameat(cache->dir_fd, name, cache->dir_fd, trash) < 0)
		return berth_fail(err, errno, "cannot remove %s/%s", cache->dir, name);
	berth_remove_tree(cache->dir_fd, trash);
	return 0;
}

int berth_cache_gc(struct berth_cache *cache, unsigned long long max_bytes,
		   unsigned long long *freed, size_t *evicted,
		   struct berth_err *err)
{
	struct berth_cache_entry *list = NULL;
	unsigned long long total = 0;
	size_t n = 0;
	int rc = 0;

	unsigned long long blobs_freed, blobs_kept;

	*freed = 0;
	*evicted = 0;
	cache_sweep_dead_builds(cache);
	/* Blobs no entry needs go first; the rest count towards the total. */
	berth_blobs_sweep(cache->dir_fd, BLOB_MIN_AGE, &blobs_freed, &blobs_kept);
	*freed += blobs_freed;
	/* dockerd:// exports and importer layouts no job holds: each is made
	 * again from its source when needed (import.c) */
	cache_sweep_exports(cache, true, freed);
	if (berth_cache_list(cache, &list, &n, err) < 0)
		return -1;
	total = blobs_kept;
	for (size_t i = 0; i < n; i++)
		total += list[i].size;
	for (size_t i = 0; i < n && total > max_bytes && rc == 0; i++) {
		bool gone = false;
		rc = evict(cache, list[i].digest, &gone, err);
		if (gone) {
			total -= list[i].size;
			*freed += list[i].size;
			(*evicted)++;
			/* its layers may now be needed by no one */
			berth_blobs_sweep(cache->dir_fd, BLOB_MIN_AGE, &blobs_freed, &blobs_kept);
			total -= blobs_freed < total ? blobs_freed : total;
			*freed += blobs_freed;
		}
	}
	free(list);
	return rc;
}

/* The files of an entry that are not an artifact: berth's own metadata. */
static bool is_artifact(const char *name)
{
	static const char *const metadata[] = {"config.json", "source", "size", "size.new",
					       "last-use", "registry", CORRUPT_FLAG};
	size_t len = strlen(name), suffix = strlen(".manifest"), stamp = strlen(".stamp");

	if (name[0] == '.' || (len > suffix && !strcmp(name + len - suffix, ".manifest")) ||
	    (len > stamp && !strcmp(name + len - stamp, ".stamp")))
		return false;
	for (size_t i = 0; i < sizeof(metadata) / sizeof(*metadata); i++)
		if (!strcmp(name, metadata[i]))
			return false;
	return true;
}

/* Read <leaf>.manifest of an entry; 1 when there is none (or one in
 * another version's format). */
static int load_manifest(int entry_fd, const char *leaf, struct berth_manifest *m,
			 struct berth_err *err)
{
	char name[NAME_MAX + 16];
	struct stat st;
	_cleanup_free_ char *text = NULL;

	snprintf(name, sizeof(name), "%s.manifest", leaf);
	_cleanup_close_ int fd = openat(entry_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_fail(err, errno, "cannot open %s", name);
	if (!(text = malloc((size_t)st.st_size + 1)))
		return berth_fail(err, ENOMEM, "%s", name);
	if (berth_read_all(fd, text, (size_t)st.st_size) < 0)
		return berth_fail(err, errno, "cannot read %s", name);
	int rc = berth_manifest_parse(text, (size_t)st.st_size, m, err);
	if (rc < 0)
		return berth_wrap(err, "%s", name);
	return rc; /* 1: another berth's format, as if there were none */
}

/* Compare one artifact with its manifest; fills r when it differs or has
 * none. */
static int verify_artifact(int entry_fd, const char *leaf, struct berth_verify_result *r,
			   struct berth_err *err)
{
	struct berth_manifest want = {0}, have = {0};
	const char *how = NULL;

	int rc = load_manifest(entry_fd, leaf, &want, err);
	if (rc == 1) {
		if (r->state == BERTH_VERIFY_OK) {
			r->state = BERTH_VERIFY_NO_MANIFEST;
			snprintf(r->path, sizeof(r->path), "%s", leaf);
		}
		return 0;
	}
	if (rc == 0)
		rc = berth_manifest_scan(entry_fd, leaf, &have, err);
	const char *path = rc == 0 ? berth_manifest_diff(&want, &have, &how) : NULL;
	if (path) {
		r->state = BERTH_VERIFY_CORRUPT;
		snprintf(r->path, sizeof(r->path), "%s", path);
		snprintf(r->how, sizeof(r->how), "%s", how);
	}
	berth_manifest_free(&want);
	berth_manifest_free(&have);
	return rc;
}

static int verify_entry_files(struct berth_cache *cache, const char *hex,
			      struct berth_verify_result *r, struct berth_err *err)
{
	char name[128];

	snprintf(name, sizeof(name), "images/%s", hex);
	int fd = openat(cache->dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return berth_fail(err, errno, "cannot open %s/%s", cache->dir, name);
	}
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && r->state != BERTH_VERIFY_CORRUPT && (de = readdir(d)))
		if (is_artifact(de->d_name))
			rc = verify_artifact(dirfd(d), de->d_name, r, err);
	closedir(d);
	return rc;
}

/* Mark the entry so no job runs it (the next stage rebuilds it). */
static int flag_corrupt(struct berth_cache *cache, const struct berth_verify_result *r,
			struct berth_err *err)
{
	char text[PATH_MAX + 32];

	snprintf(text, sizeof(text), "%s %s", r->how, r->path);
	return cache_flag_corrupt(cache, r->digest, text, err);
}

static int verify_entry(struct berth_cache *cache, const char *hex, bool repair,
			struct berth_verify_result *r, struct berth_err *err)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->digest, sizeof(r->digest), "sha256:%s", hex);
	/* Shared: a build (exclusive) is finished before we look. */
	int lock = cache_lock_digest(cache, r->digest, LOCK_SH, err);
	if (lock < 0)
		return -1;
	int rc = verify_entry_files(cache, hex, r, err);
	if (rc == 0 && r->state == BERTH_VERIFY_CORRUPT)
		rc = flag_corrupt(cache, r, err);
	close(lock);
	if (rc == 0 && r->state == BERTH_VERIFY_CORRUPT && repair)
		rc = evict(cache, r->digest, &r->removed, err);
	return rc;
}

int berth_cache_verify(struct berth_cache *cache, bool repair,
		       berth_verify_report report, void *ctx, size_t *corrupt,
		       struct berth_err *err)
{
	struct berth_cache_entry *list = NULL;
	struct berth_verify_result r;
	size_t n = 0;
	int rc = 0;

	*corrupt = 0;
	if (berth_cache_list(cache, &list, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = verify_entry(cache, list[i].digest + 7, repair, &r, err);
		if (rc == 0) {
			*corrupt += r.state == BERTH_VERIFY_CORRUPT;
			report(ctx, &r);
		}
	}
	free(list);
	return rc;
}
