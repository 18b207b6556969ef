/* berth: images that come from elsewhere on the node, staged as archives:
 * dockerd://NAME (the node's Docker holds it; exported as the job user)
 * and the site's Importer= (a program run as the job user that hands back
 * a local archive or SquashFS/SIF file).  Both end as a path that the
 * cache stages like any archive the user gave (stage.c). */
#define _GNU_SOURCE
#include "executor/cache/cache.h"
#include "executor/cache/store_int.h"
#include "executor/base/process.h"
#include "executor/source/tarmember.h"

#include <errno.h>
#include <fcntl.h>
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

/* Export image `id` into downloads/<name> under its lock, once: N steps
 * of one node export it once. */
static int dockerd_export(struct berth_cache *cache, const char *ref, const char *id,
			  const char *name, struct berth_err *err)
{
	char lock[128], part[160];
	struct stat st;

	mkdirat(cache->dir_fd, "downloads", 0700);
	snprintf(lock, sizeof(lock), "%.*s.lock", (int)(strlen(name) - 4), name);
	_cleanup_close_ int lock_fd = openat(cache->dir_fd, lock, O_RDWR | O_CREAT | O_NOFOLLOW |
					     O_CLOEXEC, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0)
		return berth_fail(err, errno, "cannot lock %s/%s", cache->dir, lock);
	if (fstatat(cache->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
		return 0;
	snprintf(part, sizeof(part), "%s.part-%d", name, (int)getpid());
	int fd = openat(cache->dir_fd, part, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
			O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_fail(err, errno, "cannot create %s/%s", cache->dir, part);
	int rc = berth_cache_dockerd->save(cache->docker_socket, id, fd, cache->fetch_max_bytes, err);
	if (rc < 0)
		dockerd_refused(cache, ref, err);
	if (close(fd) < 0 && rc == 0)
		rc = berth_fail(err, errno, "cannot write %s/%s", cache->dir, part);
	if (rc == 0 && renameat(cache->dir_fd, part, cache->dir_fd, name) < 0)
		rc = berth_fail(err, errno, "cannot publish %s/%s", cache->dir, name);
	if (rc < 0)
		unlinkat(cache->dir_fd, part, 0);
	return rc;
}

int cache_dockerd_archive(struct berth_cache *cache, const char *ref, char **path,
			  struct berth_err *err)
{
	const char *image = ref + strlen(DOCKERD_SCHEME);
	char id[72], name[128];
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
	if (berth_cache_dockerd->image_id(cache->docker_socket, image, &present, id, err) < 0)
		return dockerd_refused(cache, ref, err);
	if (!present)
		return berth_fail(err, 0, "%s: this node's Docker has no image %s (`docker "
				  "images` lists what it holds; `docker pull` or `docker load` it "
				  "there first)", ref, image);
	/* One archive per image ID: a tag moved to another image exports anew. */
	snprintf(name, sizeof(name), "downloads/dockerd-%.64s.tar", id + 7);
	if (dockerd_export(cache, ref, id, name, err) < 0)
		return -1;
	if (asprintf(path, "%s/%s", cache->dir, name) < 0) {
		*path = NULL;
		return berth_fail(err, ENOMEM, "path");
	}
	return 0;
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

int berth_cache_import(struct berth_cache *cache, const char *ref, char **path,
		       struct berth_err *err)
{
	char dir[PATH_MAX + 16];
	_cleanup_free_ char *out = NULL;
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
	const char *got = last_line(out);
	struct stat st;
	if (got[0] != '/' || stat(got, &st) < 0 || !S_ISREG(st.st_mode))
		return berth_fail(err, 0, "the site's importer %s fetched %s but named no file "
				  "(its last line must be the absolute path of a docker-save "
				  "archive or a SquashFS/SIF image; it was '%.200s')",
				  cache->importer, ref, got);
	if (!(*path = strdup(got)))
		return berth_fail(err, ENOMEM, "path");
	return 1;
}
