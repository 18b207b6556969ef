#define _GNU_SOURCE
#include "executor/base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

/* A folder of ours we may not read (overlayfs leaves its work/work at mode
 * 0): made readable through an O_PATH descriptor, so a symlink swapped in
 * is never followed, then opened. */
static int reopen_readable(int dir_fd, const char *name)
{
	char self[64];
	int path_fd = openat(dir_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (path_fd < 0)
		return -1;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", path_fd);
	int fd = chmod(self, 0700) < 0 ? -1 : open(self, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int saved = errno;
	close(path_fd);
	errno = saved;
	return fd;
}

int berth_remove_tree(int dir_fd, const char *name)
{
	if (unlinkat(dir_fd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES)
		fd = reopen_readable(dir_fd, name);
	if (fd < 0)
		return -1;
	fchmod(fd, 0700);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)))
		if (!is_dot(de->d_name) && berth_remove_tree(dirfd(d), de->d_name) < 0)
			rc = -1;
	closedir(d);
	if (rc == 0 && unlinkat(dir_fd, name, AT_REMOVEDIR) < 0)
		rc = -1;
	return rc;
}

unsigned long long berth_tree_size(int dir_fd, const char *name)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	unsigned long long total = (unsigned long long)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return total;
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return total;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (!is_dot(de->d_name))
			total += berth_tree_size(dirfd(d), de->d_name);
	closedir(d);
	return total;
}

int berth_open_beneath(int root_fd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (unsigned long long)flags | O_CLOEXEC | O_NOFOLLOW,
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};

	return (int)syscall(SYS_openat2, root_fd, *path ? path : ".", &how,
			    sizeof(how));
}

int berth_mkdir_beneath(int root_fd, const char *path, mode_t mode)
{
	char name[NAME_MAX + 1];
	int fd = berth_open_beneath(root_fd, "", O_PATH | O_DIRECTORY, 0);

	while (*path == '/')
		path++;
	for (const char *p = path; fd >= 0 && *p;) {
		size_t len = strcspn(p, "/");
		if (len > NAME_MAX) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		p += len;
		p += strspn(p, "/");
		if (!strcmp(name, ".."))  {
			close(fd);
			errno = EINVAL;
			return -1;
		}
		if (!strcmp(name, "."))
			continue;
		if (mkdirat(fd, name, mode) < 0 && errno != EEXIST) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		int next = berth_open_beneath(fd, name, O_PATH | O_DIRECTORY, 0);
		int saved = errno;
		close(fd);
		fd = next;
		errno = saved;
	}
	return fd;
}

int berth_write_all(int fd, const void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

int berth_read_all(int fd, void *buf, size_t len)
{
	ssize_t n = berth_read_full(fd, buf, len);

	if (n >= 0 && (size_t)n < len)
		errno = EIO; /* the file is shorter than said */
	return n >= 0 && (size_t)n == len ? 0 : -1;
}

ssize_t berth_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

ssize_t berth_pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int berth_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

int berth_open_child(int dir_fd, const char *name, int flags)
{
	int fd = berth_open_beneath(dir_fd, name, flags, 0);

	if (fd < 0 && errno == ENOSYS)
		fd = openat(dir_fd, *name ? name : ".", flags | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

int berth_create_file(const char *path, mode_t mode, berth_fill_fn *fill, void *arg,
		      struct berth_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
				      O_CLOEXEC, mode);
	if (fd < 0)
		return berth_fail(err, errno, "cannot create %s", path);
	if (fill(fd, arg, err) < 0) {
		unlink(path);
		return berth_wrap(err, "%s", path);
	}
	if (close(berth_steal_fd(fd)) < 0) {
		int saved = errno;
		unlink(path);
		return berth_fail(err, saved, "cannot write %s", path);
	}
	return 0;
}
