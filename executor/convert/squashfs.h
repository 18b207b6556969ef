/* berth: write a flattened root-filesystem folder as a SquashFS image.
 *
 * The image is made with libsquashfs (squashfs-tools-ng 1.2 and 1.3) in
 * one pass over the tree: every regular file is streamed through a bounded
 * block processor as it is met, so memory stays small and independent of
 * the image size (the inodes and directory listings kept until the end are
 * a few dozen bytes per entry).  Everything in the image belongs to root
 * (uid/gid 0), as `mksquashfs -all-root` writes it for Apptainer; modes,
 * mtimes (whole seconds), symlinks, hard links (one inode, the links
 * counted within the tree), empty and sparse files are kept.  The root
 * folder is always 0755, as Apptainer's own builds have it.
 *
 * Reading the tree never leaves it: each name is opened relative to its
 * folder with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV),
 * symlinks are read, never followed, and a file that changes type or inode
 * between stat and open is an error.  A mount point inside the tree is
 * refused rather than crossed.
 *
 * The image can start at any offset of the output (a SIF partition): all
 * offsets inside it are relative to its own start, and it is padded to a
 * multiple of 4 KiB as mksquashfs pads it.  Its superblock, which carries
 * the magic, is written last: an image cut short by a crash or SIGKILL has
 * no valid superblock.  Nothing is ever written to a name the caller did
 * not give. */
#ifndef BERTH_SQUASHFS_H
#define BERTH_SQUASHFS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "conf/error.h"

#define BERTH_SQFS_DEFAULT_COMPRESSOR "zstd"
#define BERTH_SQFS_DEFAULT_ZSTD_LEVEL 3
#define BERTH_SQFS_ALIGN 4096u

struct berth_sqfs_opts {
	/* "zstd" (NULL or "" too), "gzip", "lz4" or "xz". */
	const char *compressor;
	/* 0 = the default: zstd 3, gzip 9, xz 6; lz4 has no levels (a
	 * non-zero level selects LZ4 HC). */
	int level;
	/* Data block size, a power of two from 4 KiB to 1 MiB; 0 = 128 KiB. */
	unsigned block_size;
	/* Compressor threads; 0 = the online CPUs, at most 4. */
	unsigned workers;
	/* Blocks in flight in the block processor (each holds about two
	 * block sizes of memory); 0 = 4 per worker. */
	unsigned backlog;
	/* Superblock time; 0 = now. */
	time_t mkfs_time;
	/* Every entry owned by uid:gid instead of root (the charliecloud
	 * runtime's image, which its user may change in a writable
	 * container as in the tree, whose files are the user's). */
	bool owned;
	uid_t uid;
	gid_t gid;
};

struct berth_sqfs_stats {
	uint64_t bytes_used;  /* the superblock's bytes_used */
	uint64_t image_size;  /* bytes written from the start offset, padded */
	uint64_t input_bytes; /* file data read */
	uint32_t inodes;
	uint32_t dirs, files, symlinks, others;
	uint32_t hardlinks;   /* directory entries sharing an earlier inode */
};

/* Write the tree below `root_dir_fd` (a folder fd, O_PATH is fine) as a
 * SquashFS image into `out_fd` at `offset`.  out_fd must be open for
 * reading and writing (duplicate blocks are compared byte for byte) and
 * seekable; bytes before `offset` are not touched.  `o` may be NULL for
 * the defaults.  `stats` may be NULL. */
int berth_squashfs_write_tree(int root_dir_fd, int out_fd, off_t offset,
			      const struct berth_sqfs_opts *o,
			      struct berth_sqfs_stats *stats,
			      struct berth_err *err);

/* The same into a new file `out_path` (created with O_EXCL, mode 0644;
 * removed again when writing fails).  The caller names a temporary path
 * and publishes it by rename(). */
int berth_squashfs_write(const char *rootfs_dir, const char *out_path,
			 const struct berth_sqfs_opts *o,
			 struct berth_sqfs_stats *stats, struct berth_err *err);

/* ---- an image written from a merged index, no tree on disk ----------------
 * (squashfs_merge.c).  The flattener fills it (berth_image_flatten_squashfs
 * in flatten.h); the Singularity metadata is added through the same path
 * operations.  Paths are relative and clean ("a/b", "" the root).  The path
 * operations return -1 with errno as the same operation on a folder would
 * (a symlink on the way is ELOOP and never followed, a file ENOTDIR, a
 * missing folder ENOENT, a name over 255 bytes ENAMETOOLONG, a taken name
 * EEXIST); the file data calls report through err.  Peak memory grows with
 * the number of entries of all layers together (about 120 bytes each plus 4
 * per data block), not with file sizes; files that upper layers replace
 * leave their blocks in the image unreferenced. */
struct berth_sqfs_merge;

int berth_sqfs_merge_new(int out_fd, off_t offset, const struct berth_sqfs_opts *o,
			 struct berth_sqfs_merge **m, struct berth_err *err);
/* Write the tables and the superblock (last). */
int berth_sqfs_merge_finish(struct berth_sqfs_merge *m, struct berth_sqfs_stats *stats,
			    struct berth_err *err);
void berth_sqfs_merge_free(struct berth_sqfs_merge *m);

/* lstat(): the mode (type and permissions) of the entry at path. */
int berth_sqfs_merge_stat(struct berth_sqfs_merge *m, const char *path, mode_t *mode);
/* The folder `dir` and its missing parents, made with `mode` (a symlink
 * at `dir` itself is ENOTDIR, as an O_PATH open of a folder says). */
int berth_sqfs_merge_mkdirs(struct berth_sqfs_merge *m, const char *dir, mode_t mode);
/* The entry at path and all below it removed; 0 when it is not there. */
int berth_sqfs_merge_remove(struct berth_sqfs_merge *m, const char *path);
/* Every child of folder `dir` for which keep(arg, "dir/child") is false
 * removed: 1 done, 0 when dir is not there. */
int berth_sqfs_merge_clear(struct berth_sqfs_merge *m, const char *dir,
			   bool (*keep)(void *arg, const char *path), void *arg);
/* A folder at path (new, or an existing folder's mode and mtime set). */
int berth_sqfs_merge_dir(struct berth_sqfs_merge *m, const char *path, mode_t mode,
			 time_t mtime);
int berth_sqfs_merge_symlink(struct berth_sqfs_merge *m, const char *path,
			     const char *target, time_t mtime);
/* A hard link, as linkat() without AT_SYMLINK_FOLLOW (a folder: EPERM). */
int berth_sqfs_merge_link(struct berth_sqfs_merge *m, const char *path, const char *target);
/* A file or symlink moved to a free name. */
int berth_sqfs_merge_rename(struct berth_sqfs_merge *m, const char *from, const char *to);
/* The number of entries in folder `dir`. */
int berth_sqfs_merge_count(struct berth_sqfs_merge *m, const char *dir, size_t *n);
/* A new regular file: begin (errno, or err with errno 0), its data at
 * increasing offsets (gaps are holes), end with its size. */
int berth_sqfs_merge_file_begin(struct berth_sqfs_merge *m, const char *path, mode_t mode,
				time_t mtime, struct berth_err *err);
int berth_sqfs_merge_file_data(struct berth_sqfs_merge *m, uint64_t offset,
			       const void *buf, size_t len, struct berth_err *err);
int berth_sqfs_merge_file_end(struct berth_sqfs_merge *m, uint64_t size,
			      struct berth_err *err);

/* Does the SquashFS image in fd (bytes [start, start+size)) hold `path`
 * (absolute; its symlinks not followed)?  1 yes, 0 no (a component is
 * missing), -1 with err when the image cannot be read.  A path through a
 * symlink or a file answers 1: it is not known to be missing. */
int berth_squashfs_has(int fd, uint64_t start, uint64_t size, const char *path,
		       struct berth_err *err);

/* Check opts without writing anything (the compressor is known and
 * available in this libsquashfs, the level and block size are valid). */
int berth_sqfs_opts_check(const struct berth_sqfs_opts *o,
			  struct berth_err *err);

#endif
