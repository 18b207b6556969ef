#define _GNU_SOURCE
#include "executor/runtime/mountns.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <linux/openat2.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/base/process.h"
#include "conf/unshare.h"

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

/* The caller's uid and gid (read before the user namespace was made:
 * there they read as the overflow ids until mapped) map to themselves in
 * it; no other id exists there. */
static int map_self(uid_t uid, gid_t gid, struct berth_err *err)
{
	char map[64];

	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (write_file("/proc/self/setgroups", "deny", err) < 0 ||
	    write_file("/proc/self/uid_map", map, err) < 0)
		return -1;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	return write_file("/proc/self/gid_map", map, err);
}

int berth_ns_enter(struct berth_err *err)
{
	uid_t uid = getuid();
	gid_t gid = getgid();

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return berth_fail(err, errno, "cannot create a namespace for the container's "
				  "mounts or writable layer (are unprivileged user namespaces "
				  "enabled?)");
	if (map_self(uid, gid, err) < 0)
		return -1;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return berth_fail(err, errno, "cannot make mounts private");
	return 0;
}

/* ---- namespaces of the container's own (--container-unshare) ---------- */

/* Its loopback, down in a new network namespace, brought up as Docker
 * and Apptainer do: 127.0.0.1 answers, nothing else exists. */
static int loopback_up(struct berth_err *err)
{
	struct ifreq ifr = {0};
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return berth_fail(err, errno, "cannot read the flags of the container's loopback");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return berth_fail(err, errno, "cannot bring up the container's loopback");
	return 0;
}

/* Is mount point `path` (from mountinfo) strictly below /sys? */
static bool below_sys(const char *path)
{
	return !strncmp(path, "/sys/", 5) && !strchr(path, '\\');
}

#define SYS_SUBMOUNTS_MAX 64

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The mount points strictly below /sys, sorted, each once, none inside
 * another listed (it travels with that one). */
static size_t sys_submounts(char *points[SYS_SUBMOUNTS_MAX], struct berth_err *err)
{
	_cleanup_fclose_ FILE *mi = fopen("/proc/self/mountinfo", "re");
	char line[4096], point[PATH_MAX];
	size_t n = 0, kept = 0;

	if (!mi) {
		berth_fail(err, errno, "cannot read /proc/self/mountinfo");
		return SIZE_MAX;
	}
	/* ID PARENT MAJ:MIN ROOT POINT ... */
	while (n < SYS_SUBMOUNTS_MAX && fgets(line, sizeof(line), mi))
		if (sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1 && below_sys(point) &&
		    !(points[n++] = strdup(point))) {
			berth_fail(err, ENOMEM, "mounts");
			return SIZE_MAX;
		}
	qsort(points, n, sizeof(*points), cmp_str);
	for (size_t i = 0; i < n; i++) {
		bool inside = false;
		for (size_t k = 0; k < kept && !inside; k++) {
			size_t len = strlen(points[k]);
			inside = !strncmp(points[i], points[k], len) &&
				 (points[i][len] == '/' || !points[i][len]);
		}
		if (inside)
			free(points[i]);
		else
			points[kept++] = points[i];
	}
	return kept;
}

/* A sysfs of the new network namespace on /sys (the host's lists the
 * host's interfaces in /sys/class/net), with the host's mounts below /sys
 * (cgroups, fuse, debugfs...) carried over, each with what is under it.
 * A runtime that binds /sys from here (ch-run) binds this one. */
static int remount_sys(struct berth_err *err)
{
	char *points[SYS_SUBMOUNTS_MAX];
	size_t n = sys_submounts(points, err);
	int rc = 0;

	if (n == SIZE_MAX)
		return -1;
	_cleanup_close_ int old = (int)syscall(SYS_open_tree, AT_FDCWD, "/sys",
					       OPEN_TREE_CLONE | AT_RECURSIVE | O_CLOEXEC);
	if (old < 0)
		rc = berth_fail(err, errno, "cannot keep the host's mounts under /sys");
	else if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		rc = berth_fail(err, errno, "cannot mount the container's own /sys");
	for (size_t i = 0; i < n; i++) {
		if (rc == 0) {
			_cleanup_close_ int sub = (int)syscall(SYS_open_tree, old, points[i] + 5,
							       OPEN_TREE_CLONE | AT_RECURSIVE |
							       O_CLOEXEC);
			if (sub < 0 || syscall(SYS_move_mount, sub, "", AT_FDCWD, points[i],
					       MOVE_MOUNT_F_EMPTY_PATH) < 0)
				rc = berth_fail(err, errno, "cannot carry %s into the "
						"container's /sys", points[i]);
		}
		free(points[i]);
	}
	return rc;
}

int berth_ns_unshare(unsigned what, bool in_userns, struct berth_err *err)
{
	int flags = (what & BERTH_UNSHARE_NET ? CLONE_NEWNET : 0) |
		    (what & BERTH_UNSHARE_IPC ? CLONE_NEWIPC : 0) |
		    (what & BERTH_UNSHARE_UTS ? CLONE_NEWUTS : 0);
	char names[32];

	if (!flags)
		return 0;
	if (!in_userns && berth_ns_enter(err) < 0)
		return -1;
	berth_unshare_format(what, names, sizeof(names));
	if (unshare(flags) < 0)
		return berth_fail(err, errno, "cannot give the container namespaces of its own "
				  "(%s)", names);
	if ((what & BERTH_UNSHARE_NET) && (loopback_up(err) < 0 || remount_sys(err) < 0))
		return -1;
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

bool berth_ns_squashfs_usable(const char *squashfuse, char *why, size_t len)
{
	if (access(squashfuse, X_OK) < 0) {
		snprintf(why, len, "cannot run %s (SquashfusePath): %s", squashfuse,
			 strerror(errno));
		return false;
	}
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "cannot open /dev/fuse: %s", strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

/* DIR/image made, and FUSE mounted there on a new /dev/fuse descriptor
 * (*fd) for squashfuse to serve. */
static int fuse_mount(const char *dir, const char *image, char *mnt, size_t len, int *fd,
		      struct berth_err *err)
{
	char opts[128];

	snprintf(mnt, len, "%s/image", dir);
	if (mkdir(mnt, 0700) < 0)
		return berth_fail(err, errno, "cannot create %s", mnt);
	*fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (*fd < 0)
		return berth_fail(err, errno, "cannot open /dev/fuse to mount the image %s; "
				  "set ImageStorage=tree (or auto) in berth.conf where FUSE is "
				  "missing", image);
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u", *fd,
		 (unsigned)getuid(), (unsigned)getgid());
	if (mount("squashfuse", mnt, "fuse.squashfuse", MS_RDONLY | MS_NOSUID | MS_NODEV,
		  opts) < 0) {
		int e = errno;
		close(*fd);
		*fd = -1;
		return berth_fail(err, e, "cannot mount FUSE for the image %s; set "
				  "ImageStorage=tree in berth.conf", image);
	}
	return 0;
}

/* Does this squashfuse take -o uid=N,gid=N?  Its help text says so
 * (squashfuse 0.2 on; Debian 12's 0.1.104 has none), as Apptainer finds
 * out from `squashfuse_ll --help`; read from the program, nothing spawned. */
static bool sets_owner(const char *squashfuse)
{
	static const char mark[] = "-o uid=N";
	char buf[65536 + sizeof(mark)];
	size_t keep = 0;
	ssize_t n;
	_cleanup_close_ int fd = open(squashfuse, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	while ((n = read(fd, buf + keep, sizeof(buf) - keep)) > 0) {
		size_t len = keep + (size_t)n;
		if (memmem(buf, len, mark, sizeof(mark) - 1))
			return true;
		keep = len < sizeof(mark) ? len : sizeof(mark) - 1; /* a mark across reads */
		memmove(buf, buf + len - keep, keep);
	}
	return false;
}

bool berth_ns_squashfs_owned_usable(const char *squashfuse, char *why, size_t len)
{
	if (!berth_ns_squashfs_usable(squashfuse, why, len))
		return false;
	if (sets_owner(squashfuse))
		return true;
	snprintf(why, len, "%s (SquashfusePath) cannot show the image's files as the user's "
		 "(no -o uid; squashfuse 0.2 and later have it)", squashfuse);
	return false;
}

/* `squashfuse -f -o ro[,offset=N][,uid=U,gid=G] IMAGE /dev/fd/FD`; closes fd: only
 * squashfuse holds the device then, and if it stops, the mount answers
 * ENOTCONN instead of waiting for it. */
static int serve(const char *image, uint64_t offset, bool owned, const char *squashfuse,
		 int fd, int death_signal, struct berth_err *err)
{
	char dev[32], ro[96];

	snprintf(dev, sizeof(dev), "/dev/fd/%d", fd);
	int n = snprintf(ro, sizeof(ro), "ro");
	if (offset) /* a SIF's partition (Debian 12's squashfuse 0.1.104 has it) */
		n += snprintf(ro + n, sizeof(ro) - (size_t)n, ",offset=%llu",
			      (unsigned long long)offset);
	if (owned)
		snprintf(ro + n, sizeof(ro) - (size_t)n, ",uid=%u,gid=%u", (unsigned)getuid(),
			 (unsigned)getgid());
	char *argv[] = {(char *)squashfuse, "-f", "-o", ro, (char *)image, dev, NULL};
	struct berth_spawn sp = {.argv = argv, .stdin_fd = -1, .stderr_fd = -1,
				 .keep_fds = &fd, .n_keep_fds = 1, .death_signal = death_signal};
	pid_t pid = berth_spawn_start(&sp, err);
	close(fd);
	if (pid < 0)
		return berth_wrap(err, "cannot mount the image %s (SquashfusePath=%s; or set "
				  "ImageStorage=tree in berth.conf)", image, squashfuse);
	return 0;
}

/* The first request waits for squashfuse's answer: the image is readable
 * from here on, or it never will be. */
static int served(const char *mnt, const char *image, const char *squashfuse,
		  struct berth_err *err)
{
	struct stat st;

	if (stat(mnt, &st) < 0)
		return berth_fail(err, errno, "%s could not serve the image %s (a damaged "
				  "cache entry? `berth cache rm` it; or set ImageStorage=tree)",
				  squashfuse, image);
	return 0;
}

int berth_ns_squashfs(const char *dir, const char *image, const char *squashfuse,
		      struct berth_err *err)
{
	char mnt[PATH_MAX + 8];
	int fd = -1;

	if (fuse_mount(dir, image, mnt, sizeof(mnt), &fd, err) < 0 ||
	    serve(image, 0, false, squashfuse, fd, SIGTERM, err) < 0)
		return -1;
	return served(mnt, image, squashfuse, err);
}

static int detached(const char *dir, const char *image, uint64_t offset, bool owned,
		    const char *squashfuse, struct berth_err *err)
{
	char mnt[PATH_MAX + 8];
	int fd = -1;
	_cleanup_close_ int first = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);

	if (first < 0)
		return berth_fail(err, errno, "cannot open /proc/self/ns/mnt");
	/* the copy berth goes on in; the first namespace never sees the mount */
	if (unshare(CLONE_NEWNS) < 0)
		return berth_fail(err, errno, "cannot make a mount namespace for the image %s",
				  image);
	_cleanup_close_ int copy = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (copy < 0)
		return berth_fail(err, errno, "cannot open /proc/self/ns/mnt");
	if (fuse_mount(dir, image, mnt, sizeof(mnt), &fd, err) < 0)
		return -1;
	if (setns(first, CLONE_NEWNS) < 0) {
		close(fd);
		return berth_fail(err, errno, "cannot enter berth's first mount namespace");
	}
	int rc = serve(image, offset, owned, squashfuse, fd, 0, err);
	if (setns(copy, CLONE_NEWNS) < 0)
		return berth_fail(err, errno, "cannot go back to the image's mount namespace");
	return rc < 0 ? -1 : served(mnt, image, squashfuse, err);
}

int berth_ns_squashfs_detached(const char *dir, const char *image, uint64_t offset,
			       const char *squashfuse, struct berth_err *err)
{
	return detached(dir, image, offset, true, squashfuse, err);
}

int berth_ns_squashfs_shared(const char *dir, const char *image, const char *squashfuse,
			     struct berth_err *err)
{
	return detached(dir, image, 0, false, squashfuse, err);
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
	char at[PATH_MAX + 64], opts[64 + BERTH_TMPFS_EXTRA_MAX];
	struct stat st;

	snprintf(at, sizeof(at), "%s/mnt/%zu", dir, i);
	/* A tmpfs is always nosuid and nodev, as Docker makes it. */
	if (b->kind == BERTH_MOUNT_TMPFS) {
		int n = snprintf(opts, sizeof(opts), "mode=%04o",
				 b->tmpfs_mode_set ? b->tmpfs_mode : 01777);
		if (b->tmpfs_size)
			n += snprintf(opts + n, sizeof(opts) - (size_t)n, ",size=%llu",
				      (unsigned long long)b->tmpfs_size);
		if (b->tmpfs_extra[0])
			snprintf(opts + n, sizeof(opts) - (size_t)n, ",%s", b->tmpfs_extra);
		if (mkdir(at, 0700) < 0 || mount("tmpfs", at, "tmpfs", flags_of(b) | MS_NOSUID | MS_NODEV, opts) < 0)
			return berth_fail(err, errno, "cannot make the tmpfs for %s (options %s)",
					  b->dst, opts);
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

/* With `userxattr` the overlay keeps its own marks (an opaque folder) in
 * user.overlay.* attributes, which a user namespace may set: without it,
 * renaming a freshly made folder into a folder of the image fails with
 * EXDEV ("Invalid cross-device link"), and dpkg installs every new folder
 * that way.  A kernel that does not know the option (before 5.11; some
 * distributions allowed overlayfs in a user namespace earlier) refuses it
 * with EINVAL: the layer is then mounted as before, and works but for such
 * renames.  (A tmpfs upper half keeps user.* attributes from Linux 6.6
 * on; before that the kernel mounts it without them, with the same
 * result: README, "Writable containers".) */
static int mount_overlay(const char *path, unsigned long flags, const char *opts)
{
	char with[3 * PATH_MAX + 80];

	snprintf(with, sizeof(with), "%s,userxattr", opts);
	if (mount("overlay", path, "overlay", flags, with) == 0)
		return 0;
	if (errno != EINVAL)
		return -1;
	return mount("overlay", path, "overlay", flags, opts);
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
	if (mount_overlay(path, MS_NOSUID | MS_NODEV, opts) < 0)
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
	if (mount_overlay(path, MS_RDONLY | MS_NOSUID | MS_NODEV, opts) < 0)
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
