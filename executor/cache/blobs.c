/* berth: which registry blobs the user's cache still needs (see blobs.h). */
#define _GNU_SOURCE
#include "executor/cache/blobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include "executor/base/jsonval.h"

#include "conf/error.h"
#include "executor/base/fs.h"
#include "executor/base/hex.h"

#define RECORD_MAX 4096
#define MANIFEST_MAX (4u << 20)

int berth_blobs_record(int cache_fd, const char *entry_digest, const char *pinned,
		       const char *manifest)
{
	char name[128], tmp[160];

	snprintf(name, sizeof(name), "images/%s/registry", entry_digest + 7);
	snprintf(tmp, sizeof(tmp), "%s.%d", name, (int)getpid());
	int fd = openat(cache_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int rc = dprintf(fd, "%s\n%s\n", pinned, manifest) < 0 ? -1 : 0;
	close(fd);
	if (rc == 0 && renameat(cache_fd, tmp, cache_fd, name) < 0)
		rc = -1;
	if (rc < 0)
		unlinkat(cache_fd, tmp, 0);
	return rc;
}

/* A growing list of the hex digests still needed. */
struct needed {
	char (*hex)[65];
	size_t n, cap;
};

static void need(struct needed *nd, const char *digest)
{
	if (!berth_digest_valid(digest))
		return;
	if (nd->n == nd->cap) {
		size_t cap = nd->cap ? 2 * nd->cap : 64;
		void *grown = realloc(nd->hex, cap * sizeof(*nd->hex));
		if (!grown)
			return;
		nd->hex = grown;
		nd->cap = cap;
	}
	memcpy(nd->hex[nd->n++], digest + 7, 65);
}

static bool needed_has(const struct needed *nd, const char *hex)
{
	for (size_t i = 0; i < nd->n; i++)
		if (!strcmp(nd->hex[i], hex))
			return true;
	return false;
}

static char *read_small(int dir_fd, const char *name, size_t max)
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max)
		return NULL;
	char *buf = calloc(1, (size_t)st.st_size + 1);
	if (buf && berth_read_all(fd, buf, (size_t)st.st_size) < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The manifest's config and layers. */
static void need_manifest_blobs(struct needed *nd, int blobs_fd, const char *digest)
{
	_cleanup_free_ char *text = strlen(digest) == 71 ? read_small(blobs_fd, digest + 7, MANIFEST_MAX)
							  : NULL;
	struct json_object *root = text ? json_tokener_parse(text) : NULL, *config, *layers, *d;

	if (json_object_object_get_ex(root, "config", &config) &&
	    json_object_object_get_ex(config, "digest", &d))
		need(nd, bj_string(d));
	if (json_object_object_get_ex(root, "layers", &layers) &&
	    json_object_is_type(layers, json_type_array))
		for (size_t i = 0; i < json_object_array_length(layers); i++)
			if (json_object_object_get_ex(json_object_array_get_idx(layers, i), "digest", &d))
				need(nd, bj_string(d));
	json_object_put(root);
}

/* Every blob a cached image entry came from: images/<hex>/registry. */
static void collect_needed(int cache_fd, int blobs_fd, struct needed *nd)
{
	_cleanup_close_ int images = openat(cache_fd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = images >= 0 ? fdopendir(dup(images)) : NULL;
	struct dirent *de;
	char name[600];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "%s/registry", de->d_name);
		_cleanup_free_ char *rec = read_small(images, name, RECORD_MAX);
		char *save = NULL;
		for (char *line = rec ? strtok_r(rec, "\n", &save) : NULL; line;
		     line = strtok_r(NULL, "\n", &save)) {
			need(nd, line);
			need_manifest_blobs(nd, blobs_fd, line);
		}
	}
	closedir(d);
}

static bool is_hex64(const char *s)
{
	return berth_is_hex(s, 64) && !s[64];
}

/* Remove `name` in dir_fd unless it is younger than min_age or its lock
 * (when lock_fmt names one) is held.  Adds its size to *freed. */
static void drop_if_old(int cache_fd, int dir_fd, const char *name, const char *lock_name,
			time_t min_age, unsigned long long *freed, unsigned long long *kept)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return;
	if (time(NULL) - st.st_mtime < min_age) {
		*kept += (unsigned long long)st.st_size;
		return;
	}
	_cleanup_close_ int lock = lock_name ? openat(cache_fd, lock_name, O_RDWR | O_NOFOLLOW |
						       O_CLOEXEC)
					     : -1;
	if (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) < 0) {
		*kept += (unsigned long long)st.st_size; /* being downloaded now */
		return;
	}
	if (unlinkat(dir_fd, name, 0) == 0) {
		*freed += (unsigned long long)st.st_size;
		if (lock_name)
			unlinkat(cache_fd, lock_name, 0);
	}
}

static void sweep_dir(int cache_fd, const char *dir, const struct needed *nd, time_t min_age,
		      unsigned long long *freed, unsigned long long *kept)
{
	_cleanup_close_ int fd = openat(cache_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(dup(fd)) : NULL;
	struct dirent *de;
	char lock[128];
	struct stat st;

	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (nd && is_hex64(n) && needed_has(nd, n)) {
			if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) == 0)
				*kept += (unsigned long long)st.st_size;
			continue;
		}
		if (nd && is_hex64(n)) {
			snprintf(lock, sizeof(lock), "locks/blob-%s", n);
			drop_if_old(cache_fd, fd, n, lock, min_age, freed, kept);
		} else if (n[0] != '.') {
			/* partial downloads, docker archives: regenerable */
			drop_if_old(cache_fd, fd, n, NULL, min_age, freed, kept);
		}
	}
	closedir(d);
}

void berth_blobs_sweep(int cache_fd, time_t min_age, unsigned long long *freed,
		       unsigned long long *kept)
{
	struct needed nd = {0};
	_cleanup_close_ int blobs = openat(cache_fd, "blobs/sha256", O_RDONLY | O_DIRECTORY |
					   O_NOFOLLOW | O_CLOEXEC);

	*freed = *kept = 0;
	if (blobs >= 0) {
		collect_needed(cache_fd, blobs, &nd);
		sweep_dir(cache_fd, "blobs/sha256", &nd, min_age, freed, kept);
	}
	sweep_dir(cache_fd, "docker-archives", NULL, min_age, freed, kept);
	free(nd.hex);
}
