/* berth: the root-side part of the cache, kept apart so that the plugin,
 * which needs only this, does not link the image pipeline. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cache.h"

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
	if (mkdirat(parent, path, 0700) == 0) {
		if (fchownat(parent, path, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			return berth_fail(err, errno, "cannot give %s/%s to uid %u",
					  cache_dir, path, (unsigned)uid);
		return 0;
	}
	if (errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s/%s", cache_dir, path);
	if (fstatat(parent, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_fail(err, errno, "cannot stat %s/%s", cache_dir, path);
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid)
		return berth_fail(err, 0, "%s/%s is not a folder owned by uid %u; "
				  "remove it", cache_dir, path, (unsigned)uid);
	return 0;
}

