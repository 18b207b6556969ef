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
