#define _GNU_SOURCE
#include "mounts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2) {
		bool starts = p == path || p[-1] == '/';
		bool ends = p[2] == '\0' || p[2] == '/';
		if (starts && ends)
			return true;
	}
	return false;
}

static int check_path(const char *item, const char *path, const char *what,
		      struct berth_err *err)
{
	if (path[0] != '/')
		return berth_fail(err, 0, "mount '%s': the %s path '%s' must be "
				  "absolute", item, what, path);
	if (has_dotdot(path))
		return berth_fail(err, 0, "mount '%s': the %s path must not contain "
				  "'..'", item, what);
	return 0;
}

int berth_mount_parse(const char *item, struct berth_mount *m, struct berth_err *err)
{
	_cleanup_free_ char *copy = strdup(item);
	char *dst, *mode;

	memset(m, 0, sizeof(*m));
	if (!copy)
		return berth_fail(err, ENOMEM, "mount");
	dst = strchr(copy, ':');
	if (!dst || dst == copy || !dst[1])
		return berth_fail(err, 0, "mount '%s': write SRC:DST[:ro|rw]", item);
	*dst++ = '\0';
	mode = strchr(dst, ':');
	if (mode)
		*mode++ = '\0';
	if (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
		return berth_fail(err, 0, "mount '%s': the mode '%s' must be ro or rw "
				  "(paths containing ':' cannot be bound)", item, mode);
	if (check_path(item, copy, "host", err) < 0 ||
	    check_path(item, dst, "container", err) < 0)
		return -1;
	m->read_only = mode && !strcmp(mode, "ro");
	m->src = strdup(copy);
	m->dst = strdup(dst);
	if (!m->src || !m->dst) {
		free(m->src);
		free(m->dst);
		return berth_fail(err, ENOMEM, "mount");
	}
	return 0;
}

void berth_mounts_free(struct berth_mount *mounts, size_t n)
{
	for (size_t i = 0; mounts && i < n; i++) {
		free(mounts[i].src);
		free(mounts[i].dst);
	}
	free(mounts);
}

int berth_mounts_parse_list(const char *list, struct berth_mount **mounts,
			    size_t *n, struct berth_err *err)
{
	_cleanup_free_ char *copy = strdup(list);
	struct berth_mount *out = calloc(BERTH_MOUNT_LIST_MAX, sizeof(*out));
	size_t count = 0;
	char *save = NULL;

	if (!copy || !out) {
		free(out);
		return berth_fail(err, ENOMEM, "mounts");
	}
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (count == BERTH_MOUNT_LIST_MAX) {
			berth_mounts_free(out, count);
			return berth_fail(err, 0, "more than %d mounts", BERTH_MOUNT_LIST_MAX);
		}
		if (berth_mount_parse(item, &out[count], err) < 0) {
			berth_mounts_free(out, count);
			return -1;
		}
		count++;
	}
	if (count == 0) {
		berth_mounts_free(out, 0);
		return berth_fail(err, 0, "empty mount list; write SRC:DST[:ro|rw][,...]");
	}
	*mounts = out;
	*n = count;
	return 0;
}
