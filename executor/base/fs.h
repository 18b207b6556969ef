/* berth: file-system helpers shared by the image pipeline and the cache. */
#ifndef BERTH_FS_H
#define BERTH_FS_H

#include <sys/types.h>

#include "conf/error.h"

/* Remove `name` in the folder `dir_fd`, recursively when it is a folder.
 * Never follows symlinks: a symlink is removed, not its target.  Folders
 * are made writable first (we own them; a 0555 folder must still empty).
 * Returns 0, or -1 with errno set; ENOENT counts as success. */
int berth_remove_tree(int dir_fd, const char *name);

/* Disk use of `name` under dir_fd in bytes (st_blocks), not following
 * symlinks; hard-linked files count once per link (an upper bound). */
unsigned long long berth_tree_size(int dir_fd, const char *name);

/* Create folder `path` (relative, any depth) beneath `root_fd`, one
 * component at a time, never following a symlink: a symlinked component
 * fails with ELOOP.  Returns an O_PATH fd of the folder, or -1 (errno). */
int berth_mkdir_beneath(int root_fd, const char *path, mode_t mode);

/* All of buf to fd (at offset `off` for the p- form), again after EINTR
 * and short writes.  Returns 0, or -1 with errno set. */
int berth_write_all(int fd, const void *buf, size_t len);
/* Read exactly len bytes; a short file is an error (EIO). */
int berth_read_all(int fd, void *buf, size_t len);
/* Read up to len bytes (at offset `off` for the p- form), again after
 * EINTR and short reads: fewer than len only at end of file.  Returns
 * the count read (0 at end of file), or -1 with errno set; what a read
 * that fails midway had read is lost. */
ssize_t berth_read_full(int fd, void *buf, size_t len);
ssize_t berth_pread_full(int fd, void *buf, size_t len, off_t off);
int berth_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* openat2() beneath root_fd, no symlinks, no magic links, no mount
 * crossing.  `flags` gets O_CLOEXEC | O_NOFOLLOW added. */
int berth_open_beneath(int root_fd, const char *path, int flags, mode_t mode);

/* Open `name`, one component (no '/', not "." or ".."; "" is dir_fd
 * itself), in dir_fd without following a symlink or crossing a mount.
 * Where openat2() is missing (kernels before 5.6, older valgrind),
 * openat() with O_NOFOLLOW is as safe for a single component; a mount is
 * then crossed, so a caller that must not cross one compares the device
 * numbers itself. */
int berth_open_child(int dir_fd, const char *name, int flags);

/* Write a new file `path` through `fill`: created with O_EXCL (never
 * through a symlink, mode `mode`, open for reading and writing), filled,
 * closed.  Where fill or the close fails, the file is removed again, so
 * nothing half-written stays under the name; fill's message gets
 * "path: " in front.  Returns 0 or -1 (err). */
typedef int berth_fill_fn(int fd, void *arg, struct berth_err *err);
int berth_create_file(const char *path, mode_t mode, berth_fill_fn *fill, void *arg,
		      struct berth_err *err);

#endif
