/* berth: staging an image into the cache: from a file, a URL (fetched
 * into downloads/) or a registry (blobs pulled into blobs/), the digest
 * memo that makes a warm start cost a stat, and the conversion under the
 * digest's lock (store.c publishes it). */
#define _GNU_SOURCE
#include "executor/cache/cache.h"
#include "executor/cache/store_int.h"
#include "executor/cache/blobs.h"
#include "executor/source/fetch.h"
#include "executor/source/tarmember.h"
#include "executor/source/image.h"
#include "executor/base/process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_url(const char *ref)
{
	return !strncmp(ref, "http://", 7) || !strncmp(ref, "https://", 8) ||
	       !strncmp(ref, "file://", 7);
}

static void fetch_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct berth_cache *cache = ctx;

	cache->progress(cache->progress_ctx, "downloading", done, total);
}

/* Remove what killed fetches of this URL left: we hold its lock. */
static void sweep_partial_downloads(struct berth_cache *cache, const char *hex)
{
	_cleanup_close_ int fd = openat(cache->dir_fd, "downloads",
					O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(dup(fd)) : NULL;
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, hex, 64) && strstr(de->d_name, ".part-"))
			unlinkat(fd, de->d_name, 0);
	closedir(d);
}

/* What stopped stagers left: build folders whose builder is gone, and
 * partial downloads (and decompressions) of downloads/<hex>.* whose lock
 * no one holds. */
void berth_cache_sweep(struct berth_cache *cache)
{
	_cleanup_close_ int fd = openat(cache->dir_fd, "downloads",
					O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(dup(fd)) : NULL;
	struct dirent *de;
	char lock[96];

	unsigned long long freed = 0;

	cache_sweep_dead_builds(cache);
	cache_sweep_exports(cache, false, &freed); /* killed exports */
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strlen(de->d_name) < 64 || !strstr(de->d_name, ".part-"))
			continue;
		snprintf(lock, sizeof(lock), "%.64s.lock", de->d_name);
		_cleanup_close_ int lock_fd = openat(fd, lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
}

/* Fetch a URL into downloads/ under its own lock, so N steps on a node
 * download it once; a cached URL costs one conditional request. */
static int fetch_url(struct berth_cache *cache, const char *url, char **local,
		     struct berth_err *err)
{
	struct berth_fetch_opts opts;
	struct berth_fetch_result res;
	char dir[PATH_MAX + 16], lock[128], hex[72];

	berth_sha256_hex(url, strlen(url), hex);
	snprintf(lock, sizeof(lock), "downloads/%s.lock", hex + 7);
	_cleanup_close_ int fd = openat(cache->dir_fd, lock, O_RDWR | O_CREAT | O_NOFOLLOW |
					O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0)
		return berth_fail(err, errno, "cannot lock %s/%s", cache->dir, lock);
	sweep_partial_downloads(cache, hex + 7);
	berth_fetch_opts_init(&opts);
	if (cache->fetch_timeout)
		opts.timeout_s = cache->fetch_timeout;
	opts.max_bytes = cache->fetch_max_bytes;
	opts.pin = cache->url_pin;
	if (cache->progress) {
		opts.progress = fetch_progress;
		opts.progress_ctx = cache;
	}
	snprintf(dir, sizeof(dir), "%s/downloads", cache->dir);
	if (berth_fetch(url, dir, &opts, &res, err) < 0)
		return -1;
	if (!(*local = strdup(res.path)))
		return berth_fail(err, ENOMEM, "path");
	return 0;
}

void berth_cache_configure(struct berth_cache *cache, const struct berth_config *cfg)
{
	cache->fetch_timeout = cfg->fetch_timeout;
	cache->fetch_max_bytes = cfg->cache_max_size;
	cache->default_registry = cfg->default_registry[0] ? cfg->default_registry : NULL;
	cache->registry.insecure = cfg->insecure_registries;
	cache->registry.mirrors = cfg->registry_mirrors;
	cache->registry.certs_dir = cfg->registry_certs_dir;
	cache->registry.parallel = cfg->pull_parallel;
	cache->registry.timeout_s = cfg->fetch_timeout;
	cache->registry.max_bytes = cfg->cache_max_size;
	cache->docker_socket = cfg->docker_socket;
	cache->importer = cfg->importer[0] ? cfg->importer : NULL;
}

bool berth_cache_is_registry_ref(const struct berth_cache *cache, const char *ref,
				 struct berth_imageref *iref)
{
	struct berth_err err = {0};
	struct stat st;

	if (is_url(ref) || cache_is_dockerd(ref))
		return false;
	if (strncmp(ref, "docker://", 9) != 0) {
		_cleanup_free_ char *path = strndup(ref, strcspn(ref, "#"));
		if (berth_imageref_looks_like_path(ref) || !path || stat(path, &st) == 0 || stat(ref, &st) == 0)
			return false; /* a file of that name wins */
	}
	return berth_imageref_parse(ref, cache->default_registry, iref, &err) == 0;
}

/* Neither a registry image nor an existing file: say both. */
static int check_file_or_url(const char *ref, const char *default_registry,
			     struct berth_err *err)
{
	struct berth_imageref iref;
	struct stat st;

	if (is_url(ref) || berth_imageref_looks_like_path(ref) || stat(ref, &st) == 0)
		return 0;
	_cleanup_free_ char *path = strndup(ref, strcspn(ref, "#"));
	if (!path || stat(path, &st) == 0 ||
	    berth_imageref_parse(ref, default_registry, &iref, err) == 0)
		return 0;
	char why[sizeof(err->msg)], shown[512];
	snprintf(why, sizeof(why), "%s", err->msg); /* not read while written */
	/* the parser quotes the text: not when it holds a secret */
	if (berth_url_masked(ref, shown, sizeof(shown)))
		snprintf(why, sizeof(why), "not a reference berth reads (a URL is http://, "
			 "https:// or file://)");
	return berth_fail(err, 0, "image %s is not a file here, and not a registry image "
			  "either: %s", shown, why);
}

static void registry_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct berth_cache *cache = ctx;

	cache->progress(cache->progress_ctx, "downloading", done, total);
}

/* Pull the image's blobs into the cache and open it from there. */
static int pull_registry(struct berth_cache *cache, const struct berth_imageref *iref,
			 struct berth_image *img, struct berth_registry_pull *pull,
			 struct berth_err *err)
{
	struct berth_registry_opts o = cache->registry;

	if (cache->progress) {
		o.progress = registry_progress;
		o.progress_ctx = cache;
	}
	if (berth_registry_pull(&o, cache->dir, iref, pull, err) < 0)
		return -1;
	return berth_image_open_layout(img, cache->dir, pull->manifest, err);
}

/* Docker loads archives: write the pulled image as one, once per manifest. */
static int registry_archive(struct berth_cache *cache, const struct berth_imageref *iref,
			    char **path, struct berth_err *err)
{
	struct berth_registry_opts o = cache->registry;
	struct berth_registry_pull pull;
	struct berth_image img = {0};
	char name[96], tmp[112];
	struct stat st;

	if (cache->progress) {
		o.progress = registry_progress;
		o.progress_ctx = cache;
	}
	if (berth_registry_pull(&o, cache->dir, iref, &pull, err) < 0)
		return -1;
	snprintf(name, sizeof(name), "docker-archives/%s.tar", pull.manifest + 7);
	if (asprintf(path, "%s/%s", cache->dir, name) < 0) {
		*path = NULL;
		return berth_fail(err, ENOMEM, "path");
	}
	if (fstatat(cache->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
		return 0;
	if (berth_image_open_layout(&img, cache->dir, pull.manifest, err) < 0)
		return -1;
	mkdirat(cache->dir_fd, "docker-archives", 0700);
	snprintf(tmp, sizeof(tmp), "%s.part-%d", name, (int)getpid());
	int fd = openat(cache->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	int rc = fd < 0 ? berth_fail(err, errno, "cannot create %s/%s", cache->dir, tmp)
			: berth_image_write_docker_archive(&img, fd, NULL, err);
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = berth_fail(err, errno, "cannot write %s/%s", cache->dir, tmp);
	if (rc == 0 && renameat(cache->dir_fd, tmp, cache->dir_fd, name) < 0)
		rc = berth_fail(err, errno, "cannot publish %s/%s", cache->dir, name);
	if (rc < 0)
		unlinkat(cache->dir_fd, tmp, 0);
	berth_image_close(&img);
	return rc;
}

int berth_cache_resolve(struct berth_cache *cache, const char *ref, char **path,
			char **tag, struct berth_err *err)
{
	struct berth_imageref iref;

	*path = *tag = NULL;
	int claimed = berth_cache_import(cache, ref, path, err);
	if (claimed != 0)
		return claimed < 0 ? -1 : 0;
	if (cache_is_dockerd(ref))
		return cache_dockerd_archive(cache, ref, path, err);
	if (berth_cache_is_registry_ref(cache, ref, &iref))
		return registry_archive(cache, &iref, path, err);
	if (check_file_or_url(ref, cache->default_registry, err) < 0)
		return -1;
	if (berth_image_ref_split(ref, path, tag, err) < 0)
		return -1;
	if (!is_url(*path))
		return 0;
	char *local = NULL;
	if (fetch_url(cache, *path, &local, err) < 0)
		return -1;
	free(*path);
	*path = local;
	return 0;
}

/* A file's identity: device, inode, size, mtime and ctime. */
static void ref_stamp(const struct stat *st, char *out, size_t cap)
{
	snprintf(out, cap, "%llu %llu %lld %lld.%09ld %lld.%09ld", (unsigned long long)st->st_dev,
		 (unsigned long long)st->st_ino, (long long)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		 (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

/* downloads/<hex>.tar: the uncompressed copy of the compressed archive
 * that `fd` holds, named after that file's identity (ref_stamp), so the
 * next job of the same unchanged file finds it. */
static void plain_name(const struct stat *st, char *name, size_t cap)
{
	char stamp[128], hex[72];

	ref_stamp(st, stamp, sizeof(stamp));
	berth_sha256_hex(stamp, strlen(stamp), hex);
	snprintf(name, cap, "downloads/%s.tar", hex + 7);
}

int berth_cache_plain_archive(struct berth_cache *cache, char **path, struct berth_err *err)
{
	char name[128], part[160], lock[160];
	bool compressed = false;
	struct stat st;

	if (berth_archive_compressed(*path, &compressed, err) < 0)
		return -1;
	if (!compressed)
		return 0;
	_cleanup_close_ int in = berth_open_regular(*path, err);
	if (in < 0)
		return -1;
	if (fstat(in, &st) < 0)
		return berth_fail(err, errno, "cannot stat %s", *path);
	plain_name(&st, name, sizeof(name));
	snprintf(lock, sizeof(lock), "%.*s.lock", (int)(strlen(name) - 4), name);
	_cleanup_close_ int lock_fd = openat(cache->dir_fd, lock, O_RDWR | O_CREAT | O_NOFOLLOW |
					     O_CLOEXEC, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0)
		return berth_fail(err, errno, "cannot lock %s/%s", cache->dir, lock);
	_cleanup_free_ char *plain = NULL;
	if (asprintf(&plain, "%s/%s", cache->dir, name) < 0)
		return berth_fail(err, ENOMEM, "path");
	if (faccessat(cache->dir_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0) {
		char self[64];
		/* the very file probed (fd), not whatever the path names now */
		snprintf(self, sizeof(self), "/proc/self/fd/%d", in);
		snprintf(part, sizeof(part), "%s/%s.part-%d", cache->dir, name, (int)getpid());
		unlink(part);
		if (berth_archive_decompress(self, *path, part, cache->fetch_max_bytes, err) < 0) {
			unlink(part);
			return -1;
		}
		if (rename(part, plain) < 0) {
			int e = errno;
			unlink(part);
			return berth_fail(err, e, "cannot publish %s", plain);
		}
	}
	free(*path);
	*path = berth_steal(plain);
	return 0;
}

/* A warm start should cost a stat, not a read of the archive: refs/<key>
 * remembers which digest a file had, keyed by its path and tag, and valid
 * while its device, inode, size, mtime and ctime are the same (ctime: no
 * one can set it back, so a file rewritten with its old mtime restored is
 * read again).  It lives in the cache that opened it: in a user's own
 * cache a forged memo can only misdirect the user's own jobs to another
 * image of their own cache; in root's (Docker's loads) only root writes. */
static void ref_key(const char *path, const char *tag, char key[72])
{
	_cleanup_free_ char *real = realpath(path, NULL);
	_cleanup_free_ char *text = NULL;

	if (asprintf(&text, "%s#%s", real ? real : path, tag ? tag : "") < 0) {
		text = NULL;
		key[0] = '\0';
		return;
	}
	berth_sha256_hex(text, strlen(text), key);
}

bool berth_cache_ref_lookup(struct berth_cache *cache, const char *path, const char *tag,
			    char digest[BERTH_DIGEST_LEN + 1])
{
	char key[72], name[96], stamp[128], line[256];
	struct stat st;

	if (!path)
		return false;
	ref_key(path, tag, key);
	if (!key[0] || stat(path, &st) < 0)
		return false;
	ref_stamp(&st, stamp, sizeof(stamp));
	snprintf(name, sizeof(name), "refs/%s", key + 7);
	_cleanup_close_ int fd = openat(cache->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, line, sizeof(line) - 1) : -1;
	if (n <= 0)
		return false;
	line[n] = '\0';
	size_t len = strlen(stamp);
	if (strncmp(line, stamp, len) != 0 || line[len] != ' ' ||
	    strlen(line + len + 1) != BERTH_DIGEST_LEN)
		return false;
	snprintf(digest, BERTH_DIGEST_LEN + 1, "%s", line + len + 1);
	return true;
}

void berth_cache_ref_remember(struct berth_cache *cache, const char *path, const char *tag,
			      const char *digest)
{
	char key[72], name[96], tmp[112], stamp[128];
	struct stat st;

	if (!path)
		return;
	ref_key(path, tag, key);
	if (!key[0] || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	ref_stamp(&st, stamp, sizeof(stamp));
	mkdirat(cache->dir_fd, "refs", 0700);
	snprintf(name, sizeof(name), "refs/%s", key + 7);
	snprintf(tmp, sizeof(tmp), "%s.%d", name, (int)getpid());
	int fd = openat(cache->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
			O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	dprintf(fd, "%s %s", stamp, digest);
	close(fd);
	renameat(cache->dir_fd, tmp, cache->dir_fd, name);
}

/* locks/<hex>.rebuild, held exclusive while a corrupt entry is rebuilt. */
static int lock_rebuild(struct berth_cache *cache, const char *digest, struct berth_err *err)
{
	char name[128];

	snprintf(name, sizeof(name), "locks/%s.rebuild", digest + 7);
	return cache_lock_file(cache, name, LOCK_EX, err);
}

/* An opened image: convert it under its digest's lock unless it is there. */
static int stage_opened(struct berth_cache *cache, struct build *b, struct berth_image *img,
			const char *ref, const struct berth_artifact *art,
			struct berth_stage_result *res, struct berth_err *err)
{
	snprintf(res->digest, sizeof(res->digest), "%s", img->digest);
	if (cache_entry_ready(cache, img->digest, art->leaf)) {
		cache_touch_last_use(cache, img->digest);
		return 0;
	}
	/* There but damaged since (its stamp differs): flag it like verify
	 * does, so it is rebuilt below and no job starts it meanwhile. */
	if (cache_entry_exists(cache, img->digest, art->leaf) &&
	    !cache_entry_flagged(cache, img->digest) &&
	    !cache_stamp_whole(cache, img->digest, art->leaf, res->damaged, sizeof(res->damaged)) &&
	    cache_flag_corrupt(cache, img->digest, res->damaged, err) < 0)
		return -1;
	bool corrupt = cache_entry_flagged(cache, img->digest);
	if (corrupt && !res->damaged[0])
		snprintf(res->damaged, sizeof(res->damaged), "found corrupt by `berth cache verify`");
	/* N stagers of one corrupt entry: one rebuilds it, the others wait on
	 * the rebuild lock and then find it whole. */
	_cleanup_close_ int rebuild = corrupt ? lock_rebuild(cache, img->digest, err) : -1;
	if (corrupt && rebuild < 0)
		return -1;
	if (corrupt && cache_entry_ready(cache, img->digest, art->leaf)) {
		cache_touch_last_use(cache, img->digest);
		return 0;
	}
	/* A corrupt entry that running jobs still hold: waiting for them could
	 * take their whole run time, so say so instead. */
	int lock = cache_lock_digest(cache, img->digest, corrupt ? LOCK_EX | LOCK_NB : LOCK_EX, err);
	if (lock < 0 && corrupt && err->errnum == EWOULDBLOCK)
		return berth_fail(err, 0, "image %s in the cache %s is damaged (%s), and running "
				  "jobs still use it: it is rebuilt once they have ended; submit "
				  "this job again then", img->digest, cache->dir, res->damaged);
	if (lock < 0)
		return -1;
	/* An entry verify found corrupt goes, all its artifacts with it; we
	 * hold its lock exclusive, so no job runs it now. */
	int rc = cache_entry_flagged(cache, img->digest) ? cache_evict_locked(cache, img->digest, err) : 0;
	/* Someone else may have built it while we waited for the lock. */
	if (rc == 0 && !cache_entry_exists(cache, img->digest, art->leaf))
		rc = cache_build_artifact(cache, b, img, ref, art, res, err);
	close(lock);
	return rc;
}

static int stage_registry(struct berth_cache *cache, const char *ref,
			  const struct berth_imageref *iref, const struct berth_artifact *art,
			  struct berth_stage_result *res, struct berth_err *err)
{
	struct berth_image img = {0};
	struct berth_registry_pull pull;
	struct build b = {.lock_fd = -1};
	int rc = -1;

	cache_sweep_dead_builds(cache);
	if (pull_registry(cache, iref, &img, &pull, err) == 0 && cache_build_begin(cache, &b, err) == 0)
		rc = stage_opened(cache, &b, &img, ref, art, res, err);
	/* What the entry came from, so gc knows which blobs it still needs. */
	if (rc == 0)
		berth_blobs_record(cache->dir_fd, res->digest, pull.pinned, pull.manifest);
	berth_image_close(&img);
	cache_build_end(cache, &b);
	return rc;
}

/* A full disk is the site's business or the user's: say whose, and what
 * frees space.  Nothing of the failed build is left (cache_build_end). */
static int explain_full(const struct berth_cache *cache, struct berth_err *err)
{
	size_t len = strlen(err->msg);

	if (err->errnum == ENOSPC || err->errnum == EDQUOT)
		snprintf(err->msg + len, sizeof(err->msg) - len,
			 " (the file system of %s is full%s: `berth cache gc --max-size SIZE` "
			 "frees space; the site sets CacheDir and CacheMaxSize)", cache->dir,
			 err->errnum == EDQUOT ? " for your quota" : "");
	return -1;
}

static int stage_any(struct berth_cache *cache, const char *ref,
		     const struct berth_artifact *art, struct berth_stage_result *res,
		     struct berth_err *err);

int berth_cache_stage(struct berth_cache *cache, const char *ref,
		      const struct berth_artifact *art,
		      struct berth_stage_result *res, struct berth_err *err)
{
	return stage_any(cache, ref, art, res, err) < 0 ? explain_full(cache, err) : 0;
}

static int stage_any(struct berth_cache *cache, const char *ref,
		     const struct berth_artifact *art, struct berth_stage_result *res,
		     struct berth_err *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *tag = NULL;
	struct berth_image img = {0};
	struct build b = {.lock_fd = -1};
	struct berth_imageref iref;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	/* The site's importer is asked first: what it claims is an archive
	 * (or SquashFS) it fetched, staged from here on like any other. */
	_cleanup_free_ char *imported = NULL;
	int claimed = berth_cache_import(cache, ref, &imported, err);
	if (claimed < 0)
		return -1;
	if (!claimed && berth_cache_is_registry_ref(cache, ref, &iref))
		return stage_registry(cache, ref, &iref, art, res, err);
	if (berth_cache_resolve(cache, claimed ? imported : ref, &path, &tag, err) < 0)
		return -1;
	if (berth_cache_ref_lookup(cache, path, tag, res->digest) &&
	    cache_entry_ready(cache, res->digest, art->leaf)) {
		cache_touch_last_use(cache, res->digest);
		return 0; /* the same file as last time, already converted */
	}
	cache_sweep_dead_builds(cache);
	/* The build folder also receives the decompressed copy of a .tar.gz. */
	if (cache_build_begin(cache, &b, err) < 0)
		goto out;
	if (berth_image_open(&img, path, tag, b.path, err) < 0)
		goto out;
	rc = stage_opened(cache, &b, &img, ref, art, res, err);
out:
	if (rc == 0)
		berth_cache_ref_remember(cache, path, tag, img.digest);
	berth_image_close(&img);
	cache_build_end(cache, &b);
	return rc;
}
