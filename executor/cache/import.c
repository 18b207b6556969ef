/* berth: images that come from elsewhere on the node, staged as archives:
 * dockerd://NAME (the node's Docker holds it; exported as the job user)
 * and the site's Importer= (a program run as the job user that hands back
 * a local archive, SquashFS/SIF file or OCI layout folder).  Both end as
 * a path that the cache stages like any archive the user gave (stage.c);
 * what berth writes for them (downloads/dockerd-*.tar, import-*.tar) is
 * held shared while in use, and gc removes it when no one holds it. */
#define _GNU_SOURCE
#include "executor/cache/cache.h"
#include "executor/cache/store_int.h"
#include "executor/base/hex.h"
#include "executor/base/process.h"
#include "executor/source/image.h"
#include "executor/source/tarmember.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

const struct berth_cache_dockerd *berth_cache_dockerd;

#define DOCKERD_SCHEME "dockerd://"
#define IMPORT_OUTPUT_MAX 65536
#define IMPORT_CLAIM_TIMEOUT 60

bool cache_is_dockerd(const char *ref)
{
	return !strncmp(ref, DOCKERD_SCHEME, strlen(DOCKERD_SCHEME));
}

/* Docker refused the job user: say who may, and what to give instead. */
static int dockerd_refused(const struct berth_cache *cache, const char *ref,
			   struct berth_err *err)
{
	if (err->errnum != EACCES && err->errnum != EPERM)
		return -1;
	return berth_fail(err, 0, "%s: you may not use this node's Docker (%s: permission "
			  "denied); dockerd:// images are only for users who may run `docker "
			  "save` themselves (members of the socket's group, and root): give a "
			  "docker-save archive instead (docker save IMAGE -o FILE.tar)", ref,
			  cache->docker_socket);
}

/* downloads/<stem>.tar, made once by `make` under downloads/<stem>.lock
 * (N steps of one node make it once), then held shared by this process
 * until it exits: gc removes only a file no one holds (gc.c). */
typedef int (*publish_fn)(void *ctx, int fd, const char *part, struct berth_err *err);

static int make_part(struct berth_cache *cache, const char *name, publish_fn make, void *ctx,
		     struct berth_err *err)
{
	char part[200], part_path[PATH_MAX + 200];

	snprintf(part, sizeof(part), "%s.part-%d", name, (int)getpid());
	snprintf(part_path, sizeof(part_path), "%s/%s", cache->dir, part);
	int fd = openat(cache->dir_fd, part, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
			O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_fail(err, errno, "cannot create %s/%s", cache->dir, part);
	int rc = make(ctx, fd, part_path, err);
	if (close(fd) < 0 && rc == 0)
		rc = berth_fail(err, errno, "cannot write %s/%s", cache->dir, part);
	if (rc == 0 && renameat(cache->dir_fd, part, cache->dir_fd, name) < 0)
		rc = berth_fail(err, errno, "cannot publish %s/%s", cache->dir, name);
	if (rc < 0)
		unlinkat(cache->dir_fd, part, 0);
	return rc;
}

static bool published(const struct berth_cache *cache, const char *name)
{
	struct stat st;

	return fstatat(cache->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static int publish_once(struct berth_cache *cache, const char *stem, publish_fn make,
			void *ctx, char **path, struct berth_err *err)
{
	char lock[160], name[160];

	*path = NULL;
	mkdirat(cache->dir_fd, "downloads", 0700);
	snprintf(lock, sizeof(lock), "downloads/%s.lock", stem);
	snprintf(name, sizeof(name), "downloads/%s.tar", stem);
	_cleanup_close_ int lock_fd = openat(cache->dir_fd, lock, O_RDWR | O_CREAT | O_NOFOLLOW |
					     O_CLOEXEC, 0600);
	if (lock_fd < 0)
		return berth_fail(err, errno, "cannot open %s/%s", cache->dir, lock);
	/* Shared while in use; exclusive to make it.  A conversion is not
	 * atomic, so gc may slip in between: look again after each. */
	for (int tries = 0; tries < 3; tries++) {
		if (flock(lock_fd, LOCK_SH) < 0)
			return berth_fail(err, errno, "cannot lock %s/%s", cache->dir, lock);
		if (published(cache, name)) {
			if (asprintf(path, "%s/%s", cache->dir, name) < 0) {
				*path = NULL;
				return berth_fail(err, ENOMEM, "path");
			}
			(void)berth_steal_fd(lock_fd); /* held until this process exits */
			return 0;
		}
		if (flock(lock_fd, LOCK_EX) < 0)
			return berth_fail(err, errno, "cannot lock %s/%s", cache->dir, lock);
		if (!published(cache, name) && make_part(cache, name, make, ctx, err) < 0)
			return -1;
	}
	return berth_fail(err, 0, "%s/%s was removed (berth cache gc) as soon as it was made, "
			  "three times; run the job again", cache->dir, name);
}

/* "dockerd-<hex>" or "import-<hex>" then ".tar" and maybe ".part-PID":
 * the stem's length, or 0 for any other name. */
static size_t export_stem(const char *name, bool *partial)
{
	size_t p = !strncmp(name, "dockerd-", 8) ? 8 : !strncmp(name, "import-", 7) ? 7 : 0;

	if (!p || !berth_is_hex(name + p, 64) || strncmp(name + p + 64, ".tar", 4) != 0)
		return 0;
	*partial = name[p + 68] != '\0';
	if (*partial && strncmp(name + p + 68, ".part-", 6) != 0)
		return 0;
	return p + 64;
}

void cache_sweep_exports(struct berth_cache *cache, bool finished, unsigned long long *freed)
{
	_cleanup_close_ int fd = openat(cache->dir_fd, "downloads", O_RDONLY | O_DIRECTORY |
					O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(dup(fd)) : NULL;
	struct dirent *de;
	struct stat st;
	char lock[96];
	bool partial = false;

	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t stem = export_stem(de->d_name, &partial);
		if (!stem || (!partial && !finished))
			continue;
		/* Held (shared in use, exclusive while made): keep it.  The lock
		 * file stays: one unlinked under a waiter would split the lock. */
		snprintf(lock, sizeof(lock), "%.*s.lock", (int)stem, de->d_name);
		_cleanup_close_ int lock_fd = openat(fd, lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) < 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    unlinkat(fd, de->d_name, 0) == 0)
			*freed += (unsigned long long)st.st_size;
	}
	closedir(d);
}

struct dockerd_export {
	struct berth_cache *cache;
	const char *ref, *id;
};

/* What the daemon sent must be a docker-save archive before it is
 * published: a bad one would be reused by every later job.  (Its image ID
 * is not compared: with containerd's image store it is not the config's
 * digest.) */
static int dockerd_check_export(struct dockerd_export *x, const char *part,
				struct berth_err *err)
{
	struct berth_image img = {0};
	int rc = berth_image_open(&img, part, NULL, NULL, err);

	if (rc < 0)
		berth_wrap(err, "%s: this node's Docker (%s) exported image %.19s as something "
			   "that is not a docker-save archive; ask the site's administrators "
			   "to check the daemon", x->ref, x->cache->docker_socket, x->id);
	berth_image_close(&img);
	return rc;
}

static int dockerd_save(void *ctx, int fd, const char *part, struct berth_err *err)
{
	struct dockerd_export *x = ctx;

	if (berth_cache_dockerd->save(x->cache->docker_socket, x->id, fd,
				      x->cache->fetch_max_bytes, err) < 0) {
		dockerd_refused(x->cache, x->ref, err);
		return -1;
	}
	return dockerd_check_export(x, part, err);
}

/* A name Docker could mean, not a path: no empty part, none that starts
 * with a dot ("..", "."), so that the API path it goes into stays
 * /images/NAME/... */
static bool dockerd_name_ok(const char *name)
{
	for (const char *p = name;;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || p[0] == '.')
			return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

int cache_dockerd_archive(struct berth_cache *cache, const char *ref, char **path,
			  struct berth_err *err)
{
	const char *image = ref + strlen(DOCKERD_SCHEME);
	char id[72], stem[96];
	bool present = false;

	*path = NULL;
	/* Root's loader reads a job user's archive from a descriptor: it
	 * never asks Docker for an image on a user's behalf. */
	if (cache->plain_archives_only)
		return berth_fail(err, 0, "%s: a dockerd:// image is exported by the job "
				  "user's own staging, never by root's loader", ref);
	if (!berth_cache_dockerd || !cache->docker_socket)
		return berth_fail(err, 0, "%s: this program cannot reach Docker; use the "
				  "berth command", ref);
	if (!*image)
		return berth_fail(err, 0, "%s: name the image: dockerd://REPO[:TAG] or "
				  "dockerd://IMAGE-ID, as `docker images` shows it", ref);
	if (!dockerd_name_ok(image))
		return berth_fail(err, 0, "%s: '%s' is not an image name (a part of it is empty "
				  "or starts with a dot); give dockerd://REPO[:TAG] or "
				  "dockerd://IMAGE-ID, as `docker images` shows it", ref, image);
	if (berth_cache_dockerd->image_id(cache->docker_socket, image, &present, id, err) < 0)
		return dockerd_refused(cache, ref, err);
	if (!present)
		return berth_fail(err, 0, "%s: this node's Docker has no image %s (`docker "
				  "images` lists what it holds; `docker pull` or `docker load` it "
				  "there first)", ref, image);
	/* One archive per image ID: a tag moved to another image exports anew. */
	snprintf(stem, sizeof(stem), "dockerd-%.64s", id + 7);
	struct dockerd_export x = {.cache = cache, .ref = ref, .id = id};
	return publish_once(cache, stem, dockerd_save, &x, path, err);
}

/* ---- Importer= ------------------------------------------------------------ */

/* Run `importer ARGS...` as the caller, stdout captured; stderr to ours
 * when `quiet` is false (the user sees why a fetch failed), else nowhere:
 * a claim is asked at submission too, where berth resolve's output is
 * its answer. */
static int run_importer(char **argv, unsigned timeout_s, bool quiet, char **out, int *status,
			struct berth_err *err)
{
	_cleanup_close_ int null = quiet ? open("/dev/null", O_WRONLY | O_CLOEXEC) : -1;
	struct berth_spawn sp = {
		.argv = argv, .stdin_fd = -1, .stderr_fd = null, .capture_stdout = out,
		.capture_max = IMPORT_OUTPUT_MAX, .timeout_s = timeout_s,
		.reap_group = true, /* no background child of it outlives it */
	};

	if (berth_spawn_run(&sp, status, err) < 0)
		return berth_wrap(err, "the site's importer");
	return 0;
}

/* The last non-empty line of the importer's output. */
static char *last_line(char *out)
{
	size_t len = strlen(out);

	while (len && (out[len - 1] == '\n' || out[len - 1] == '\r'))
		out[--len] = '\0';
	char *nl = strrchr(out, '\n');
	return nl ? nl + 1 : out;
}

/* Which references the importer is asked about: anything but a local
 * file, and nothing whose text holds a secret (a URL's password or
 * signature would be on its command line, which every user may read). */
static bool importer_asked(const struct berth_cache *cache, const char *ref)
{
	char shown[512];
	struct stat st;

	if (!cache->importer || !cache->importer[0] || cache->plain_archives_only)
		return false;
	if (berth_imageref_looks_like_path(ref) || stat(ref, &st) == 0)
		return false;
	_cleanup_free_ char *path = strndup(ref, strcspn(ref, "#"));
	if (!path || stat(path, &st) == 0)
		return false;
	return !berth_url_masked(ref, shown, sizeof(shown));
}

int berth_cache_import_claims(const struct berth_cache *cache, const char *ref,
			      struct berth_err *err)
{
	_cleanup_free_ char *out = NULL;
	int status = 0;

	if (!importer_asked(cache, ref))
		return 0;
	char *claim[] = {(char *)cache->importer, "claim", (char *)ref, NULL};
	if (run_importer(claim, IMPORT_CLAIM_TIMEOUT, true, &out, &status, err) < 0)
		return -1;
	if (status == 1)
		return 0;
	if (status != 0)
		return berth_fail(err, 0, "the site's importer %s failed to say whether it "
				  "imports %s (claim: exit %d); ask the site's administrators",
				  cache->importer, ref, status);
	return 1;
}

/* The site's importer broke the protocol: say what it returned, and who
 * can fix it (the user cannot). */
#define IMPORTER_FIX "; the importer must print, as its last line, the absolute path of a " \
	"file or OCI layout folder it wrote in %s: ask the site's administrators to fix it"

static const char *kind_of(mode_t mode)
{
	return S_ISFIFO(mode) ? "a fifo" : S_ISSOCK(mode) ? "a socket" : S_ISCHR(mode) ?
	       "a character device" : S_ISBLK(mode) ? "a block device" : "not a regular file";
}

/* What the importer named must be a regular file or a folder inside
 * `dir`, reached through no symlink: it runs as the user, but a path it
 * hands back should never make berth read what the importer did not
 * write (another user's file, /etc/shadow, a fifo that never ends). */
static int check_import_path(const struct berth_cache *cache, const char *dir,
			     const char *ref, const char *got, char **real, struct stat *st,
			     struct berth_err *err)
{
	const char *imp = cache->importer;
	_cleanup_free_ char *real_dir = realpath(dir, NULL);

	*real = NULL;
	if (!*got)
		return berth_fail(err, 0, "the site's importer %s fetched %s but printed "
				  "nothing" IMPORTER_FIX, imp, ref, dir);
	if (got[0] != '/')
		return berth_fail(err, 0, "the site's importer %s fetched %s but its last line "
				  "is not an absolute path ('%.200s')" IMPORTER_FIX, imp, ref, got, dir);
	if (lstat(got, st) < 0)
		return berth_fail(err, errno, "the site's importer %s fetched %s but %.200s "
				  "cannot be found" IMPORTER_FIX, imp, ref, got, dir);
	if (S_ISLNK(st->st_mode))
		return berth_fail(err, 0, "the site's importer %s fetched %s but %.200s is a "
				  "symlink, which berth does not follow" IMPORTER_FIX, imp, ref, got,
				  dir);
	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
		return berth_fail(err, 0, "the site's importer %s fetched %s but %.200s is %s"
				  IMPORTER_FIX, imp, ref, got, kind_of(st->st_mode), dir);
	*real = realpath(got, NULL);
	size_t n = real_dir ? strlen(real_dir) : 0;
	if (!*real || !real_dir || strncmp(*real, real_dir, n) != 0 || (*real)[n] != '/') {
		free(berth_steal(*real));
		return berth_fail(err, 0, "the site's importer %s fetched %s but %.200s is "
				  "outside its folder" IMPORTER_FIX, imp, ref, got, dir);
	}
	if (S_ISREG(st->st_mode) && st->st_size == 0) {
		free(berth_steal(*real));
		return berth_fail(err, 0, "the site's importer %s fetched %s but %.200s is "
				  "empty" IMPORTER_FIX, imp, ref, got, dir);
	}
	if (S_ISREG(st->st_mode) && cache->fetch_max_bytes &&
	    (uint64_t)st->st_size > cache->fetch_max_bytes) {
		free(berth_steal(*real));
		return berth_fail(err, 0, "the site's importer %s fetched %s but %.200s is "
				  "%lld bytes, more than CacheMaxSize (%llu bytes): use a smaller "
				  "image, or ask the site's administrators to raise CacheMaxSize",
				  imp, ref, got, (long long)st->st_size,
				  (unsigned long long)cache->fetch_max_bytes);
	}
	return 0;
}

static int write_layout_archive(void *ctx, int fd, const char *part, struct berth_err *err)
{
	(void)part;
	return berth_image_write_docker_archive(ctx, fd, NULL, err);
}

/* An OCI layout folder: verified (manifest, config, every blob by its
 * digest) and written once as a docker-save archive into downloads/,
 * which every runtime stages like the user's own archive. */
static int import_layout(struct berth_cache *cache, const char *ref, const char *folder,
			 char **path, struct berth_err *err)
{
	struct berth_image img = {0};
	char stem[96];
	int rc = berth_image_open_oci_dir(&img, folder, err);

	if (rc == 0) {
		snprintf(stem, sizeof(stem), "import-%.64s", img.digest + 7);
		rc = publish_once(cache, stem, write_layout_archive, &img, path, err);
	}
	berth_image_close(&img);
	if (rc < 0) {
		/* what layout.c says assumes berth's own pulled copy */
		char *tail = strstr(err->msg, "; the cached copy is corrupt");
		if (tail)
			*tail = '\0';
		berth_wrap(err, "the site's importer %s fetched %s as the folder %s, which is "
			   "not an image berth accepts (ask the site's administrators to fix "
			   "the importer)", cache->importer, ref, folder);
	}
	return rc;
}

int berth_cache_import(struct berth_cache *cache, const char *ref, char **path,
		       struct berth_err *err)
{
	char dir[PATH_MAX + 16];
	_cleanup_free_ char *out = NULL;
	_cleanup_free_ char *real = NULL;
	struct stat st = {0};
	int status = 0;

	*path = NULL;
	int claimed = berth_cache_import_claims(cache, ref, err);
	if (claimed <= 0)
		return claimed;
	/* Its own folder in the user's cache: it may keep what it fetched
	 * there for the next job (gc leaves it alone). */
	snprintf(dir, sizeof(dir), "%s/imports", cache->dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s", dir);
	char *fetch[] = {(char *)cache->importer, "fetch", (char *)ref, dir, NULL};
	if (run_importer(fetch, cache->fetch_timeout ? cache->fetch_timeout : 300, false,
			 &out, &status, err) < 0)
		return -1;
	if (status != 0)
		return berth_fail(err, 0, "the site's importer %s could not fetch %s (exit %d; "
				  "its messages are above)", cache->importer, ref, status);
	if (check_import_path(cache, dir, ref, last_line(out), &real, &st, err) < 0)
		return -1;
	if (S_ISDIR(st.st_mode))
		return import_layout(cache, ref, real, path, err) < 0 ? -1 : 1;
	*path = berth_steal(real);
	return 1;
}
