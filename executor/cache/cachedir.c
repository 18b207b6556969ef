/* berth: the root-side part of the cache, kept apart so that the plugin,
 * which needs only this, does not link the image pipeline. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "executor/cache/cache.h"

/* The user's folder appears whole: made under a temporary name, given to
 * the user, then renamed into place.  Nodes sharing a CacheDir may make it
 * at the same moment; made in place, one could find the other's before its
 * chown and refuse it as someone else's. */
static int make_user_dir(const char *cache_dir, int parent, const char *name, uid_t uid,
			 gid_t gid, struct berth_err *err)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s/.new-%s-XXXXXX", cache_dir, name);
	if (!mkdtemp(tmp)) /* 0700 */
		return berth_fail(err, errno, "cannot create a folder in %s", cache_dir);
	const char *leaf = tmp + strlen(cache_dir) + 1;
	if (fchownat(parent, leaf, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
		int e = errno;

		unlinkat(parent, leaf, AT_REMOVEDIR);
		return berth_fail(err, e, "cannot give %s/%s to uid %u", cache_dir, name,
				  (unsigned)uid);
	}
	int rc = renameat2(parent, leaf, parent, name, RENAME_NOREPLACE);
	if (rc < 0 && errno == EINVAL) /* a file system without the flag (NFS) */
		rc = renameat(parent, leaf, parent, name);
	if (rc < 0) {
		int e = errno;

		unlinkat(parent, leaf, AT_REMOVEDIR);
		if (e != EEXIST && e != ENOTEMPTY)
			return berth_fail(err, e, "cannot create %s/%s", cache_dir, name);
	}
	return 0;
}

int berth_cache_prepare_user(const char *cache_dir, uid_t uid, gid_t gid,
			     struct berth_err *err)
{
	char path[PATH_MAX];
	struct stat st;

	if (mkdir(cache_dir, 0755) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create CacheDir %s", cache_dir);
	_cleanup_close_ int parent = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0)
		return berth_fail(err, errno, "cannot open CacheDir %s", cache_dir);
	snprintf(path, sizeof(path), "%u", (unsigned)uid);
	if (fstatat(parent, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return berth_fail(err, errno, "cannot stat %s/%s", cache_dir, path);
		if (make_user_dir(cache_dir, parent, path, uid, gid, err) < 0)
			return -1;
		if (fstatat(parent, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return berth_fail(err, errno, "cannot stat %s/%s", cache_dir, path);
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid)
		return berth_fail(err, 0, "%s/%s is not a folder owned by uid %u; "
				  "remove it", cache_dir, path, (unsigned)uid);
	return 0;
}
