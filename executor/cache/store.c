/* berth: the cache store itself: opening CacheDir/<uid>, entry paths,
 * the per-digest locks, build folders, and publishing an artifact with
 * one rename() (see cache.h for the layout).  Staging (stage.c) and
 * list, gc and verify (gc.c) build on these (store_int.h). */
#define _GNU_SOURCE
#include "executor/cache/cache.h"
#include "executor/cache/store_int.h"
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
#include <time.h>
#include <unistd.h>

#define STALE_UNLOCKED_SECONDS 3600 /* a build folder that never got its lock */

static int check_owned_private(int fd, const char *path, uid_t uid,
			       struct berth_err *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return berth_fail(err, errno, "cannot stat cache folder %s", path);
	if (st.st_uid != uid)
		return berth_fail(err, 0, "cache folder %s belongs to uid %u, not "
				  "to you (uid %u); ask the administrator to "
				  "remove it", path, (unsigned)st.st_uid, (unsigned)uid);
	if (st.st_mode & 077)
		return berth_fail(err, 0, "cache folder %s is open to other users "
				  "(mode %03o); it must be 0700", path,
				  (unsigned)(st.st_mode & 0777));
	return 0;
}

int berth_cache_open(struct berth_cache *cache, const char *cache_dir,
		     uid_t uid, struct berth_err *err)
{
	static const char *const subdirs[] = {"images", "locks", "tmp", "downloads"};

	memset(cache, 0, sizeof(*cache));
	cache->dir_fd = -1;
	if (snprintf(cache->dir, sizeof(cache->dir), "%s/%u", cache_dir,
		     (unsigned)uid) >= (int)sizeof(cache->dir))
		return berth_fail(err, 0, "CacheDir %s is too long", cache_dir);
	if (mkdir(cache->dir, 0700) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create cache folder %s (CacheDir "
				  "must exist and be writable, or the Slurm plugin "
				  "creates it at the first job)", cache->dir);
	cache->dir_fd = open(cache->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cache->dir_fd < 0)
		return berth_fail(err, errno, "cannot open cache folder %s", cache->dir);
	if (check_owned_private(cache->dir_fd, cache->dir, uid, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(*subdirs); i++)
		if (mkdirat(cache->dir_fd, subdirs[i], 0700) < 0 && errno != EEXIST)
			return berth_fail(err, errno, "cannot create %s/%s", cache->dir,
					  subdirs[i]);
	return 0;
}

void berth_cache_close(struct berth_cache *cache)
{
	if (cache->dir_fd >= 0)
		close(cache->dir_fd);
	cache->dir_fd = -1;
}

void berth_cache_entry_path(const struct berth_cache *cache, const char *digest,
			    const char *leaf, char out[PATH_MAX])
{
	const char *hex = strncmp(digest, "sha256:", 7) == 0 ? digest + 7 : digest;

	snprintf(out, PATH_MAX, "%s/images/%s%s%s", cache->dir, hex, leaf ? "/" : "",
		 leaf ? leaf : "");
}

bool berth_lock_held(int dir_fd, const char *name)
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return true;
	flock(fd, LOCK_UN);
	return false;
}

/* Open (creating) the lock file `name` of this cache and flock it. */
int cache_lock_file(struct berth_cache *cache, const char *name, int how,
		    struct berth_err *err)
{
	int fd = openat(cache->dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			0600);
	if (fd < 0)
		return berth_fail(err, errno, "cannot open lock %s/%s", cache->dir, name);
	while (flock(fd, how) < 0) {
		if (errno == EINTR)
			continue;
		int saved = errno;
		close(fd);
		return berth_fail(err, saved, "cannot lock %s/%s", cache->dir, name);
	}
	return fd;
}

/* Open (creating) the digest's lock file and flock it. */
int cache_lock_digest(struct berth_cache *cache, const char *digest, int how,
		      struct berth_err *err)
{
	char name[128];

	snprintf(name, sizeof(name), "locks/%s", digest + 7);
	return cache_lock_file(cache, name, how, err);
}

void cache_touch_last_use(struct berth_cache *cache, const char *digest)
{
	char name[128];

	snprintf(name, sizeof(name), "images/%s/last-use", digest + 7);
	utimensat(cache->dir_fd, name, NULL, AT_SYMLINK_NOFOLLOW);
}

bool cache_entry_exists(struct berth_cache *cache, const char *digest,
			const char *leaf)
{
	char name[160];
	struct stat st;

	snprintf(name, sizeof(name), "images/%s/%s", digest + 7, leaf ? leaf : "");
	return fstatat(cache->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

bool cache_entry_flagged(struct berth_cache *cache, const char *digest)
{
	return cache_entry_exists(cache, digest, CORRUPT_FLAG);
}

/* There, whole, and not known to be corrupt. */
bool cache_entry_ready(struct berth_cache *cache, const char *digest,
		       const char *leaf)
{
	return cache_entry_exists(cache, digest, leaf) && !cache_entry_flagged(cache, digest) &&
	       cache_stamp_whole(cache, digest, leaf, NULL, 0);
}

int cache_flag_corrupt(struct berth_cache *cache, const char *digest, const char *why,
		       struct berth_err *err)
{
	char name[160], text[PATH_MAX + 32];

	snprintf(name, sizeof(name), "images/%s/%s", digest + 7, CORRUPT_FLAG);
	int len = snprintf(text, sizeof(text), "%s\n", why);
	unlinkat(cache->dir_fd, name, 0);
	if (cache_write_file_at(cache->dir_fd, name, text, (size_t)len, err) < 0)
		return berth_wrap(err, "cannot mark %s corrupt", digest);
	return 0;
}

/* Remove build folders whose builder is gone (their lock is free). */
void cache_sweep_dead_builds(struct berth_cache *cache)
{
	_cleanup_close_ int tmp = openat(cache->dir_fd, "tmp",
					 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = tmp >= 0 ? fdopendir(dup(tmp)) : NULL;
	struct dirent *de;
	char lock[PATH_MAX];
	struct stat st;

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(lock, sizeof(lock), "%s/.lock", de->d_name);
		int fd = openat(tmp, lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			/* Free and stamped: its builder held it and is gone.  Free
			 * and empty: a builder between creating and locking it
			 * (removing that folder failed its build), unless old. */
			if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
			    (st.st_size > 0 || time(NULL) - st.st_mtime > STALE_UNLOCKED_SECONDS))
				berth_remove_tree(tmp, de->d_name);
			close(fd);
		} else if (fstatat(tmp, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			   time(NULL) - st.st_mtime > STALE_UNLOCKED_SECONDS) {
			berth_remove_tree(tmp, de->d_name);
		}
	}
	closedir(d);
}

int cache_build_begin(struct berth_cache *cache, struct build *b,
		      struct berth_err *err)
{
	char lock[128];
	unsigned long long r;

	b->lock_fd = -1;
	for (int tries = 0; tries < 16; tries++) {
		if (getentropy(&r, sizeof(r)) < 0)
			return berth_fail(err, errno, "getentropy");
		snprintf(b->name, sizeof(b->name), "tmp/%016llx", r);
		if (mkdirat(cache->dir_fd, b->name, 0700) == 0)
			break;
		if (errno != EEXIST)
			return berth_fail(err, errno, "cannot create %s/%s", cache->dir,
					  b->name);
	}
	snprintf(b->path, sizeof(b->path), "%s/%s", cache->dir, b->name);
	snprintf(lock, sizeof(lock), "%s/.lock", b->name);
	b->lock_fd = openat(cache->dir_fd, lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			    0600);
	if (b->lock_fd < 0 || flock(b->lock_fd, LOCK_EX) < 0)
		return berth_fail(err, errno, "cannot lock build folder %s", b->path);
	/* Stamped once locked: only now may a sweep take it for dead. */
	if (berth_write_all(b->lock_fd, "1\n", 2) < 0)
		return berth_fail(err, errno, "cannot stamp the lock of %s", b->path);
	return 0;
}

void cache_build_end(struct berth_cache *cache, struct build *b)
{
	if (b->name[0])
		berth_remove_tree(cache->dir_fd, b->name);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	b->lock_fd = -1;
	b->name[0] = '\0';
}

/* Remove an entry whose lock the caller holds exclusive: one rename into
 * tmp/ (readers see all or nothing), then the delete. */
int cache_evict_locked(struct berth_cache *cache, const char *digest,
		       struct berth_err *err)
{
	char name[128], trash[64];
	unsigned long long r = 0;

	if (getentropy(&r, sizeof(r)) < 0)
		return berth_fail(err, errno, "getentropy");
	snprintf(name, sizeof(name), "images/%s", digest + 7);
	snprintf(trash, sizeof(trash), "tmp/evict-%016llx", r);
	if (renameat(cache->dir_fd, name, cache->dir_fd, trash) < 0)
		return berth_fail(err, errno, "cannot evict %s/%s", cache->dir, name);
	berth_remove_tree(cache->dir_fd, trash);
	return 0;
}

int cache_write_file_at(int dir_fd, const char *name, const void *data,
			size_t len, struct berth_err *err)
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL |
					O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_fail(err, errno, "cannot create %s", name);
	if (berth_write_all(fd, data, len) < 0)
		return berth_fail(err, errno, "cannot write %s", name);
	return 0;
}

/* The default artifact: the flattened rootfs, with runtime mount points. */
static int convert_rootfs(void *ctx, const struct berth_image *img,
			  const char *out_path, const char *work_dir,
			  struct berth_flatten_stats *stats, struct berth_err *err)
{
	(void)ctx;
	(void)work_dir;
	if (mkdir(out_path, 0755) < 0)
		return berth_fail(err, errno, "cannot create %s", out_path);
	if (berth_image_flatten(img, out_path, stats, err) < 0)
		return -1;
	return berth_rootfs_add_mountpoints(out_path, err);
}

const struct berth_artifact berth_artifact_rootfs = {
	.leaf = "rootfs",
	.convert = convert_rootfs,
};

/* ImageStorage=squashfs: the same merge, written as one file. */
static int convert_rootfs_sqfs(void *ctx, const struct berth_image *img,
			       const char *out_path, const char *work_dir,
			       struct berth_flatten_stats *stats, struct berth_err *err)
{
	(void)ctx;
	(void)work_dir;
	return berth_image_squashfs_file(img, out_path, stats, err);
}

const struct berth_artifact berth_artifact_rootfs_sqfs = {
	.leaf = BERTH_ROOTFS_SQFS,
	.convert = convert_rootfs_sqfs,
};

static int write_size(struct berth_cache *cache, const char *entry_name,
		      struct berth_err *err)
{
	char path[256], size[32];

	snprintf(size, sizeof(size), "%llu", berth_tree_size(cache->dir_fd, entry_name));
	snprintf(path, sizeof(path), "%s/size.new", entry_name);
	unlinkat(cache->dir_fd, path, 0);
	if (cache_write_file_at(cache->dir_fd, path, size, strlen(size), err) < 0)
		return -1;
	char final[256];
	snprintf(final, sizeof(final), "%s/size", entry_name);
	if (renameat(cache->dir_fd, path, cache->dir_fd, final) < 0)
		return berth_fail(err, errno, "cannot write %s/%s", cache->dir, final);
	return 0;
}

/* A whole new entry: metadata + the artifact, published with one rename. */
static int publish_entry(struct berth_cache *cache, struct build *b,
			 const struct berth_image *img, const char *ref,
			 struct berth_err *err)
{
	char path[PATH_MAX], entry[128];
	_cleanup_free_ char *config = NULL;
	size_t config_len;

	if (berth_image_config_bytes(img, &config, &config_len, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/entry/config.json", b->name);
	if (cache_write_file_at(cache->dir_fd, path, config, config_len, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/entry/source", b->name);
	if (cache_write_file_at(cache->dir_fd, path, ref, strlen(ref), err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/entry/last-use", b->name);
	if (cache_write_file_at(cache->dir_fd, path, "", 0, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/entry", b->name);
	if (write_size(cache, path, err) < 0)
		return -1;
	snprintf(entry, sizeof(entry), "images/%s", img->digest + 7);
	if (renameat(cache->dir_fd, path, cache->dir_fd, entry) < 0)
		return berth_fail(err, errno, "cannot publish %s/%s", cache->dir, entry);
	return 0;
}

/* One line per conversion in conversions.log (time, digest, artifact,
 * source): for the admin, and for tests that count conversions. */
static void log_conversion(struct berth_cache *cache, const struct berth_image *img,
			   const char *leaf, const char *ref)
{
	int fd = openat(cache->dir_fd, "conversions.log",
			O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return;
	dprintf(fd, "%lld %s %s %s\n", (long long)time(NULL), img->digest, leaf, ref);
	close(fd);
}

/* Record what the artifact holds (manifest.h) next to it, in the build
 * folder's entry/, so `berth cache verify` can tell a file changed later. */
static int write_manifest(struct berth_cache *cache, const struct build *b,
			  const char *leaf, struct berth_err *err)
{
	char entry[96], name[192];
	struct berth_manifest m = {0};
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	snprintf(entry, sizeof(entry), "%s/entry", b->name);
	_cleanup_close_ int entry_fd = openat(cache->dir_fd, entry, O_RDONLY | O_DIRECTORY |
					      O_NOFOLLOW | O_CLOEXEC);
	if (entry_fd < 0)
		return berth_fail(err, errno, "cannot open %s/%s", cache->dir, entry);
	int rc = berth_manifest_scan(entry_fd, leaf, &m, err);
	if (rc == 0)
		rc = berth_manifest_format(&m, &text, &len, err);
	berth_manifest_free(&m);
	snprintf(name, sizeof(name), "%s.manifest", leaf);
	if (rc == 0)
		rc = cache_write_file_at(entry_fd, name, text, len, err);
	if (rc == 0)
		rc = cache_stamp_write(entry_fd, leaf, err);
	return rc < 0 ? berth_wrap(err, "cannot record the manifest of %s", leaf) : 0;
}

/* Convert into the build folder and publish: a new entry, or one more
 * artifact (say a SIF next to a rootfs) in an entry that exists. */
int cache_build_artifact(struct berth_cache *cache, struct build *b,
			 const struct berth_image *img, const char *ref,
			 const struct berth_artifact *art,
			 struct berth_stage_result *res, struct berth_err *err)
{
	char path[PATH_MAX + 64], entry[128], final[192], shown[BERTH_IMAGE_MAX];
	struct stat st;

	/* The records keep the image as messages show it: a URL's password or
	 * signature stays out of the cache. */
	berth_url_masked(ref, shown, sizeof(shown));
	ref = shown;
	snprintf(entry, sizeof(entry), "images/%s", img->digest + 7);
	bool have_entry = fstatat(cache->dir_fd, entry, &st, AT_SYMLINK_NOFOLLOW) == 0;
	snprintf(path, sizeof(path), "%s/entry", b->path);
	if (mkdir(path, 0700) < 0)
		return berth_fail(err, errno, "cannot create %s", path);
	snprintf(path, sizeof(path), "%s/entry/%s", b->path, art->leaf);
	if (art->convert(art->ctx, img, path, b->path, &res->stats, err) < 0)
		return -1;
	if (write_manifest(cache, b, art->leaf, err) < 0)
		return -1;
	res->converted = true;
	log_conversion(cache, img, art->leaf, ref);
	if (!have_entry)
		return publish_entry(cache, b, img, ref, err);
	/* The manifest and stamp first: an artifact published without them (a
	 * crash in between) is "no manifest" to verify, never a false
	 * "corrupt"; a stamp left without its artifact is replaced with it. */
	static const char *const records[] = {"manifest", "stamp"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/entry/%s.%s", b->name, art->leaf, records[i]);
		snprintf(final, sizeof(final), "%s/%s.%s", entry, art->leaf, records[i]);
		if (renameat(cache->dir_fd, path, cache->dir_fd, final) < 0)
			return berth_fail(err, errno, "cannot publish %s/%s", cache->dir, final);
	}
	snprintf(path, sizeof(path), "%s/entry/%s", b->name, art->leaf);
	snprintf(final, sizeof(final), "%s/%s", entry, art->leaf);
	if (renameat(cache->dir_fd, path, cache->dir_fd, final) < 0)
		return berth_fail(err, errno, "cannot publish %s/%s", cache->dir, final);
	return write_size(cache, entry, err);
}

int berth_cache_use(struct berth_cache *cache, const char *digest,
		    const char *leaf, struct berth_err *err)
{
	if (!berth_digest_valid(digest))
		return berth_fail(err, 0, "'%s' is not an image digest", digest);
	int fd = cache_lock_digest(cache, digest, LOCK_SH, err);
	if (fd < 0)
		return -1;
	if (!cache_entry_exists(cache, digest, leaf)) {
		close(fd);
		return berth_fail(err, 0, "image %s is not in the cache %s (evicted?); "
				  "run the job again to stage it", digest, cache->dir);
	}
	if (cache_entry_flagged(cache, digest)) {
		close(fd);
		return berth_fail(err, 0, "image %s in the cache %s was found corrupt by "
				  "`berth cache verify`; run the job again to rebuild it",
				  digest, cache->dir);
	}
	char why[PATH_MAX];
	if (!cache_stamp_whole(cache, digest, leaf, why, sizeof(why))) {
		close(fd);
		return berth_fail(err, 0, "image %s in the cache %s was damaged after it was "
				  "staged (%s); run the job again to rebuild it", digest,
				  cache->dir, why);
	}
	cache_touch_last_use(cache, digest);
	return fd;
}

int berth_cache_load_config(struct berth_cache *cache, const char *digest,
			    struct berth_image *img, struct berth_err *err)
{
	char name[128];
	struct stat st;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;

	snprintf(name, sizeof(name), "images/%s/config.json", digest + 7);
	_cleanup_close_ int fd = openat(cache->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_fail(err, errno, "cannot open %s/%s", cache->dir, name);
	if (st.st_size > BERTH_CONFIG_MAX || !(data = malloc((size_t)st.st_size + 1)))
		return berth_fail(err, EFBIG, "%s/%s", cache->dir, name);
	len = (size_t)st.st_size;
	if (berth_read_all(fd, data, len) < 0)
		return berth_fail(err, errno, "cannot read %s/%s", cache->dir, name);
	memset(img, 0, sizeof(*img));
	snprintf(img->digest, sizeof(img->digest), "%s", digest);
	return berth_image_parse_config(img, data, len, name, err);
}
