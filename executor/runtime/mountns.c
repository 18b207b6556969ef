#define _GNU_SOURCE
#include "executor/runtime/mountns.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <linux/openat2.h>
#include <unistd.h>

#include "executor/base/fs.h"

static int write_file(const char *path, const char *text, struct berth_err *err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return berth_fail(err, errno, "cannot write %s", path);
	return 0;
}

/* Flags a bind remount must keep: the kernel refuses to drop locked ones. */
static unsigned long kept_flags(const char *path)
{
	struct statvfs sv;
	unsigned long flags = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		flags |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		flags |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		flags |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		flags |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		flags |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		flags |= MS_RELATIME;
	return flags;
}

int berth_ns_enter(struct berth_err *err)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return berth_fail(err, errno, "cannot create a namespace for the container's "
				  "mounts or writable layer (are unprivileged user namespaces "
				  "enabled?)");
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (write_file("/proc/self/setgroups", "deny", err) < 0 ||
	    write_file("/proc/self/uid_map", map, err) < 0)
		return -1;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if (write_file("/proc/self/gid_map", map, err) < 0)
		return -1;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return berth_fail(err, errno, "cannot make mounts private");
	return 0;
}


int berth_ns_layer(const char *dir, struct berth_err *err)
{
	char mnt[PATH_MAX + 8];

	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
		return berth_fail(err, errno, "cannot mount a tmpfs on %s", dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	if (mkdir(mnt, 0700) < 0)
		return berth_fail(err, errno, "cannot create %s", mnt);
	return 0;
}

static bool is_node(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode));
}

bool berth_ns_any_node(char *const *paths)
{
	for (size_t i = 0; paths && paths[i]; i++)
		if (is_node(paths[i]))
			return true;
	return false;
}

int berth_ns_hide(const char *dir, char *const *paths, struct berth_err *err)
{
	char hidden[PATH_MAX + 8];

	snprintf(hidden, sizeof(hidden), "%s/hidden", dir);
	for (size_t i = 0; paths && paths[i]; i++) {
		if (!is_node(paths[i]))
			continue;
		int fd = open(hidden, O_WRONLY | O_CREAT | O_CLOEXEC, 0);
		if (fd < 0)
			return berth_fail(err, errno, "cannot create %s", hidden);
		close(fd);
		if (mount(hidden, paths[i], NULL, MS_BIND, NULL) < 0 ||
		    mount(NULL, paths[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID |
			  MS_NODEV | MS_NOEXEC, NULL) < 0)
			return berth_fail(err, errno, "cannot hide the device %s, which this step "
					  "was not given", paths[i]);
	}
	return 0;
}

static unsigned long flags_of(const struct berth_mount *b)
{
	return (b->read_only ? MS_RDONLY : 0) | (b->flags & BERTH_MNT_NOSUID ? MS_NOSUID : 0) |
	       (b->flags & BERTH_MNT_NODEV ? MS_NODEV : 0) |
	       (b->flags & BERTH_MNT_NOEXEC ? MS_NOEXEC : 0);
}

int berth_ns_stage(const char *dir, size_t i, const struct berth_mount *b,
		       struct berth_err *err)
{
	char at[PATH_MAX + 64], opts[64];
	struct stat st;

	snprintf(at, sizeof(at), "%s/mnt/%zu", dir, i);
	/* A tmpfs is always nosuid and nodev, as Docker makes it. */
	if (b->kind == BERTH_MOUNT_TMPFS) {
		int n = snprintf(opts, sizeof(opts), "mode=%04o",
				 b->tmpfs_mode_set ? b->tmpfs_mode : 01777);
		if (b->tmpfs_size)
			snprintf(opts + n, sizeof(opts) - (size_t)n, ",size=%llu",
				 (unsigned long long)b->tmpfs_size);
		if (mkdir(at, 0700) < 0 || mount("tmpfs", at, "tmpfs", flags_of(b) | MS_NOSUID | MS_NODEV, opts) < 0)
			return berth_fail(err, errno, "cannot make the tmpfs for %s", b->dst);
		return 0;
	}
	if (stat(b->src, &st) < 0)
		return berth_fail(err, errno, "mount source %s", b->src);
	if ((S_ISDIR(st.st_mode) ? mkdir(at, 0700) : mknod(at, S_IFREG | 0600, 0)) < 0 ||
	    mount(b->src, at, NULL, MS_BIND | MS_REC, NULL) < 0 ||
	    mount(NULL, at, NULL, MS_BIND | MS_REMOUNT | flags_of(b) | kept_flags(at), NULL) < 0)
		return berth_fail(err, errno, "cannot prepare the mount of %s at %s", b->src,
				  b->dst);
	return 0;
}

int berth_ns_overlay(const char *dir, const char *lower, const char *keep,
		     struct berth_err *err)
{
	char path[PATH_MAX + 16], opts[3 * PATH_MAX + 64];
	const char *halves = keep ? keep : dir;

	if (strpbrk(lower, ",:\\") || strpbrk(halves, ",:\\"))
		return berth_fail(err, 0, "the cache path %s holds a ',', ':' or '\\', which "
				  "overlayfs cannot take; choose another CacheDir", halves);
	static const char *const parts[] = {"upper", "work", "root"};
	for (size_t i = keep ? 2 : 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, parts[i]);
		if (mkdir(path, 0755) < 0)
			return berth_fail(err, errno, "cannot create %s", path);
	}
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower,
		 halves, halves);
	snprintf(path, sizeof(path), "%s/root", dir);
	if (mount("overlay", path, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
		return berth_fail(err, errno, "cannot give the container its own layer "
				  "(overlayfs in a user namespace needs Linux 5.11 or later)");
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(err, errno, "%s", path);
	return fd;
}

int berth_ns_overlay_view(const char *dir, const char *upper, const char *lower,
			  struct berth_err *err)
{
	char path[PATH_MAX + 16], opts[3 * PATH_MAX + 64];

	if (strpbrk(lower, ",:\\") || strpbrk(upper, ",:\\"))
		return berth_fail(err, 0, "the cache path %s holds a ',', ':' or '\\', which "
				  "overlayfs cannot take; choose another CacheDir", upper);
	snprintf(path, sizeof(path), "%s/root", dir);
	if (mkdir(path, 0755) < 0)
		return berth_fail(err, errno, "cannot create %s", path);
	/* two lower layers and no upper: read-only, no work folder */
	snprintf(opts, sizeof(opts), "lowerdir=%s:%s", upper, lower);
	if (mount("overlay", path, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts) < 0)
		return berth_fail(err, errno, "cannot mount the container's layers to save them");
	return 0;
}

bool berth_ns_has(int root_fd, const char *dst)
{
	int fd = berth_open_beneath(root_fd, dst + 1, O_PATH, 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

bool berth_ns_lacks(int root_fd, const char *path)
{
	/* RESOLVE_IN_ROOT: a working folder behind a symlink of the image's
	 * (usrmerge's /bin -> usr/bin) is there, as the container will see it */
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
	int fd = (int)syscall(SYS_openat2, root_fd, path[0] == '/' ? path + 1 : path, &how,
			      sizeof(how));

	if (fd >= 0) {
		close(fd);
		return false;
	}
	return errno == ENOENT;
}

static int source_is_dir(const struct berth_mount *b, bool *dir, struct berth_err *err)
{
	struct stat st;

	*dir = true;
	if (b->kind == BERTH_MOUNT_TMPFS)
		return 0;
	if (stat(b->src, &st) < 0)
		return berth_fail(err, errno, "mount source %s", b->src);
	*dir = S_ISDIR(st.st_mode);
	return 0;
}

/* Make `path` (absolute, read beneath root_fd) if it is missing: a folder,
 * or an empty file; its parents as folders.  Never through a symlink. */
static int make_point(int root_fd, const char *path, bool dir, const char *where,
		      struct berth_err *err)
{
	if (berth_ns_has(root_fd, path))
		return 0;
	_cleanup_free_ char *parent = strdup(path);
	if (!parent)
		return berth_fail(err, ENOMEM, "mount point");
	char *slash = strrchr(parent, '/'); /* path is absolute: never NULL */
	*slash = '\0';
	_cleanup_close_ int pfd = berth_mkdir_beneath(root_fd, parent, 0755);
	if (pfd < 0 || (dir ? mkdirat(pfd, slash + 1, 0755)
			    : mknodat(pfd, slash + 1, S_IFREG | 0644, 0)) < 0) {
		if (pfd >= 0 && errno == EEXIST)
			return 0;
		return berth_fail(err, errno, "cannot create %s%s (a symlink on the way "
				  "to it?)", where, path);
	}
	return 0;
}

static int make_target(int root_fd, const struct berth_mount *b, struct berth_err *err)
{
	bool dir;

	if (source_is_dir(b, &dir, err) < 0)
		return -1;
	return make_point(root_fd, b->dst, dir, "the mount point ", err);
}

int berth_ns_make_targets(int root_fd, const struct berth_mount *m, size_t n,
			  struct berth_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (berth_mount_parent(m, i) < 0 && !berth_ns_has(root_fd, m[i].dst) &&
		    make_target(root_fd, &m[i], err) < 0)
			return -1;
	return 0;
}

int berth_ns_make_inside(const char *dir, const struct berth_mount *m, size_t n,
			 const char *path, bool is_dir, struct berth_err *err)
{
	ssize_t j = berth_mount_holding(m, n, path);
	char base[PATH_MAX + 64];

	if (j < 0)
		return 0;
	const char *rel = path + strlen(m[j].dst); /* "" or "/..." */
	if (!*rel)
		return 1;
	if (m[j].kind == BERTH_MOUNT_TMPFS) {
		if (!dir)
			return 1; /* not made by berth: the runtime makes its inside */
		snprintf(base, sizeof(base), "%s/mnt/%zd", dir, j);
	} else {
		snprintf(base, sizeof(base), "%s", m[j].src);
	}
	_cleanup_close_ int fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(err, errno, "cannot make %s inside the mount of %s at %s",
				  path, m[j].src, m[j].dst);
	char where[PATH_MAX + 64];
	snprintf(where, sizeof(where), "%s, bound at %s: ", m[j].src, m[j].dst);
	return make_point(fd, rel, is_dir, where, err) < 0 ? -1 : 1;
}

int berth_ns_make_nested(const char *dir, const struct berth_mount *m, size_t n,
			 struct berth_err *err)
{
	for (size_t i = 1; i < n; i++) {
		bool is_dir;
		if (berth_mount_parent(m, i) < 0)
			continue;
		if (source_is_dir(&m[i], &is_dir, err) < 0 ||
		    berth_ns_make_inside(dir, m, i, m[i].dst, is_dir, err) < 0)
			return -1;
	}
	return 0;
}
