/* berth: per-user content-addressed cache (see cache.h for the layout). */
#define _GNU_SOURCE
#include "executor/cache/cache.h"
#include "executor/cache/blobs.h"
#include "executor/source/fetch.h"
#include "executor/base/fs.h"
#include "executor/cache/manifest.h"
#include "executor/source/tarmember.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#define STALE_UNLOCKED_SECONDS 3600 /* a build folder that never got its lock */
#define BLOB_MIN_AGE 600            /* a younger unneeded blob may be a pull's */

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

/* Open (creating) the digest's lock file and flock it. */
static int lock_digest(struct berth_cache *cache, const char *digest, int how,
		       struct berth_err *err)
{
	char name[128];

	snprintf(name, sizeof(name), "locks/%s", digest + 7);
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

static void touch_last_use(struct berth_cache *cache, const char *digest)
{
	char name[128];

	snprintf(name, sizeof(name), "images/%s/last-use", digest + 7);
	utimensat(cache->dir_fd, name, NULL, AT_SYMLINK_NOFOLLOW);
}

static bool entry_exists(struct berth_cache *cache, const char *digest,
			 const char *leaf)
{
	char name[160];
	struct stat st;

	snprintf(name, sizeof(name), "images/%s/%s", digest + 7, leaf ? leaf : "");
	return fstatat(cache->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* `berth cache verify` marks an entry whose files changed with this flag
 * (it holds the first differing path).  A job never runs such an entry: the
 * stage rebuilds it.  One fstatat more per warm start; re-hashing the image
 * at every start would cost a read of all of it. */
#define CORRUPT_FLAG "corrupt"

static bool entry_flagged(struct berth_cache *cache, const char *digest)
{
	return entry_exists(cache, digest, CORRUPT_FLAG);
}

/* There, whole, and not known to be corrupt. */
static bool entry_ready(struct berth_cache *cache, const char *digest,
			const char *leaf)
{
	return entry_exists(cache, digest, leaf) && !entry_flagged(cache, digest);
}

/* Remove build folders whose builder is gone (their lock is free). */
static void sweep_dead_builds(struct berth_cache *cache)
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
			if (flock(fd, LOCK_EX | LOCK_NB) == 0)
				berth_remove_tree(tmp, de->d_name);
			close(fd);
		} else if (fstatat(tmp, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			   time(NULL) - st.st_mtime > STALE_UNLOCKED_SECONDS) {
			berth_remove_tree(tmp, de->d_name);
		}
	}
	closedir(d);
}

/* A build folder tmp/<random>, locked by us for as long as we live. */
struct build {
	char name[64];
	char path[PATH_MAX];
	int lock_fd;
};

static int build_begin(struct berth_cache *cache, struct build *b,
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
	return 0;
}

static void build_end(struct berth_cache *cache, struct build *b)
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
static int evict_locked(struct berth_cache *cache, const char *digest,
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

static int write_file_at(int dir_fd, const char *name, const void *data,
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

static int write_size(struct berth_cache *cache, const char *entry_name,
		      struct berth_err *err)
{
	char path[256], size[32];

	snprintf(size, sizeof(size), "%llu", berth_tree_size(cache->dir_fd, entry_name));
	snprintf(path, sizeof(path), "%s/size.new", entry_name);
	unlinkat(cache->dir_fd, path, 0);
	if (write_file_at(cache->dir_fd, path, size, strlen(size), err) < 0)
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
	if (write_file_at(cache->dir_fd, path, config, config_len, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/entry/source", b->name);
	if (write_file_at(cache->dir_fd, path, ref, strlen(ref), err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/entry/last-use", b->name);
	if (write_file_at(cache->dir_fd, path, "", 0, err) < 0)
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
		rc = write_file_at(entry_fd, name, text, len, err);
	return rc < 0 ? berth_wrap(err, "cannot record the manifest of %s", leaf) : 0;
}

/* Convert into the build folder and publish: a new entry, or one more
 * artifact (say a SIF next to a rootfs) in an entry that exists. */
static int build_artifact(struct berth_cache *cache, struct build *b,
			  const struct berth_image *img, const char *ref,
			  const struct berth_artifact *art,
			  struct berth_stage_result *res, struct berth_err *err)
{
	char path[PATH_MAX + 64], entry[128], final[192];
	struct stat st;

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
	/* The manifest first: an artifact published without one (a crash in
	 * between) is "no manifest" to verify, never a false "corrupt". */
	snprintf(path, sizeof(path), "%s/entry/%s.manifest", b->name, art->leaf);
	snprintf(final, sizeof(final), "%s/%s.manifest", entry, art->leaf);
	if (renameat(cache->dir_fd, path, cache->dir_fd, final) < 0)
		return berth_fail(err, errno, "cannot publish %s/%s", cache->dir, final);
	snprintf(path, sizeof(path), "%s/entry/%s", b->name, art->leaf);
	snprintf(final, sizeof(final), "%s/%s", entry, art->leaf);
	if (renameat(cache->dir_fd, path, cache->dir_fd, final) < 0)
		return berth_fail(err, errno, "cannot publish %s/%s", cache->dir, final);
	return write_size(cache, entry, err);
}

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
}

bool berth_cache_is_registry_ref(const struct berth_cache *cache, const char *ref,
				 struct berth_imageref *iref)
{
	struct berth_err err = {0};
	struct stat st;

	if (is_url(ref))
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
	return berth_fail(err, 0, "image %s is not a file here, and not a registry image "
			  "either: %s", ref, err->msg);
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

static void ref_stamp(const struct stat *st, char *out, size_t cap)
{
	snprintf(out, cap, "%llu %llu %lld %lld.%09ld %lld.%09ld", (unsigned long long)st->st_dev,
		 (unsigned long long)st->st_ino, (long long)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		 (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
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

/* An opened image: convert it under its digest's lock unless it is there. */
static int stage_opened(struct berth_cache *cache, struct build *b, struct berth_image *img,
			const char *ref, const struct berth_artifact *art,
			struct berth_stage_result *res, struct berth_err *err)
{
	snprintf(res->digest, sizeof(res->digest), "%s", img->digest);
	if (entry_ready(cache, img->digest, art->leaf)) {
		touch_last_use(cache, img->digest);
		return 0;
	}
	/* A corrupt entry that running jobs still hold: waiting for them could
	 * take their whole run time, so say so instead. */
	bool corrupt = entry_flagged(cache, img->digest);
	int lock = lock_digest(cache, img->digest, corrupt ? LOCK_EX | LOCK_NB : LOCK_EX, err);
	if (lock < 0 && corrupt && err->errnum == EWOULDBLOCK)
		return berth_fail(err, 0, "image %s in the cache %s was found corrupt by `berth "
				  "cache verify`, and running jobs still use it: it is rebuilt "
				  "once they have ended; submit this job again then",
				  img->digest, cache->dir);
	if (lock < 0)
		return -1;
	/* An entry verify found corrupt goes, all its artifacts with it; we
	 * hold its lock exclusive, so no job runs it now. */
	int rc = entry_flagged(cache, img->digest) ? evict_locked(cache, img->digest, err) : 0;
	/* Someone else may have built it while we waited for the lock. */
	if (rc == 0 && !entry_exists(cache, img->digest, art->leaf))
		rc = build_artifact(cache, b, img, ref, art, res, err);
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

	sweep_dead_builds(cache);
	if (pull_registry(cache, iref, &img, &pull, err) == 0 && build_begin(cache, &b, err) == 0)
		rc = stage_opened(cache, &b, &img, ref, art, res, err);
	/* What the entry came from, so gc knows which blobs it still needs. */
	if (rc == 0)
		berth_blobs_record(cache->dir_fd, res->digest, pull.pinned, pull.manifest);
	berth_image_close(&img);
	build_end(cache, &b);
	return rc;
}

/* A full disk is the site's business or the user's: say whose, and what
 * frees space.  Nothing of the failed build is left (build_end). */
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
	if (berth_cache_is_registry_ref(cache, ref, &iref))
		return stage_registry(cache, ref, &iref, art, res, err);
	if (berth_cache_resolve(cache, ref, &path, &tag, err) < 0)
		return -1;
	if (berth_cache_ref_lookup(cache, path, tag, res->digest) &&
	    entry_ready(cache, res->digest, art->leaf)) {
		touch_last_use(cache, res->digest);
		return 0; /* the same file as last time, already converted */
	}
	sweep_dead_builds(cache);
	/* The build folder also receives the decompressed copy of a .tar.gz. */
	if (build_begin(cache, &b, err) < 0)
		goto out;
	if (berth_image_open(&img, path, tag, b.path, err) < 0)
		goto out;
	rc = stage_opened(cache, &b, &img, ref, art, res, err);
out:
	if (rc == 0)
		berth_cache_ref_remember(cache, path, tag, img.digest);
	berth_image_close(&img);
	build_end(cache, &b);
	return rc;
}

int berth_cache_use(struct berth_cache *cache, const char *digest,
		    const char *leaf, struct berth_err *err)
{
	if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != BERTH_DIGEST_LEN ||
	    strspn(digest + 7, "0123456789abcdef") != 64)
		return berth_fail(err, 0, "'%s' is not an image digest", digest);
	int fd = lock_digest(cache, digest, LOCK_SH, err);
	if (fd < 0)
		return -1;
	if (!entry_exists(cache, digest, leaf)) {
		close(fd);
		return berth_fail(err, 0, "image %s is not in the cache %s (evicted?); "
				  "run the job again to stage it", digest, cache->dir);
	}
	if (entry_flagged(cache, digest)) {
		close(fd);
		return berth_fail(err, 0, "image %s in the cache %s was found corrupt by "
				  "`berth cache verify`; run the job again to rebuild it",
				  digest, cache->dir);
	}
	touch_last_use(cache, digest);
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
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, data + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return berth_fail(err, n < 0 ? errno : EIO, "cannot read %s/%s",
					  cache->dir, name);
		len += (size_t)n;
	}
	memset(img, 0, sizeof(*img));
	snprintf(img->digest, sizeof(img->digest), "%s", digest);
	return berth_image_parse_config(img, data, len, name, err);
}

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
	_cleanup_close_ int fd = openat(cache->dir_fd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return true;
	flock(fd, LOCK_UN);
	return false;
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
		if (strlen(de->d_name) != 64 || strspn(de->d_name, "0123456789abcdef") != 64)
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
	if (evict_locked(cache, digest, err) < 0)
		return -1;
	*evicted = true;
	return 0;
}

int berth_cache_remove(struct berth_cache *cache, const char *digest,
		       struct berth_err *err)
{
	bool gone = false;

	if (!entry_exists(cache, digest, NULL))
		return berth_fail(err, 0, "image %s is not in the cache %s", digest,
				  cache->dir);
	if (evict(cache, digest, &gone, err) < 0)
		return -1;
	if (!gone)
		return berth_fail(err, EBUSY, "image %s is in use by a running job; "
				  "not removed", digest);
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
	sweep_dead_builds(cache);
	/* Blobs no entry needs go first; the rest count towards the total. */
	berth_blobs_sweep(cache->dir_fd, BLOB_MIN_AGE, &blobs_freed, &blobs_kept);
	*freed += blobs_freed;
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
	size_t len = strlen(name), suffix = strlen(".manifest");

	if (name[0] == '.' || (len > suffix && !strcmp(name + len - suffix, ".manifest")))
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
	char name[160], text[PATH_MAX + 32];

	snprintf(name, sizeof(name), "images/%s/%s", r->digest + 7, CORRUPT_FLAG);
	int len = snprintf(text, sizeof(text), "%s %s\n", r->how, r->path);
	unlinkat(cache->dir_fd, name, 0);
	if (write_file_at(cache->dir_fd, name, text, (size_t)len, err) < 0)
		return berth_wrap(err, "cannot mark %s corrupt", r->digest);
	return 0;
}

static int verify_entry(struct berth_cache *cache, const char *hex, bool repair,
			struct berth_verify_result *r, struct berth_err *err)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->digest, sizeof(r->digest), "sha256:%s", hex);
	/* Shared: a build (exclusive) is finished before we look. */
	int lock = lock_digest(cache, r->digest, LOCK_SH, err);
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
