/* berth: what the SquashFS writer's files share (squashfs.c: the writer,
 * passes 2 and 3; squashfs_tree.c: the in-memory tree and pass 1, which
 * fills it; squashfs_out.c: the output file and libsquashfs's failures).
 * Internal to executor/convert/squashfs*.c; the API is squashfs.h. */
#ifndef BERTH_SQUASHFS_INT_H
#define BERTH_SQUASHFS_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "conf/error.h"
#include "executor/base/dl/squashfs_lazy.h"
#include "executor/convert/squashfs.h"

/* ---- the output (squashfs_out.c): a sqfs_file_t on an fd at an offset --- */

struct out_file {
	sqfs_file_t base;
	int fd;
	uint64_t start;   /* where the image begins in fd */
	uint64_t size;    /* image bytes so far (high-water mark) */
	int io_errno;     /* errno of the first failed read or write */
};

/* An output on fd whose image begins at `start`. */
void berth_sqfs_out_init(struct out_file *f, int fd, uint64_t start);
int berth_sqfs_out_write_at(sqfs_file_t *file, sqfs_u64 off, const void *buf,
			    size_t size);
/* A libsquashfs error code in words. */
const char *berth_sqfs_errstr(int code);

/* ---- the in-memory tree (squashfs_tree.c) -------------------------------- */

struct node {
	char *name;
	struct node *parent;
	struct node **children;   /* folders: sorted by name (strcmp) */
	size_t n_children, cap;
	struct node *link;        /* a hard link: the node holding the inode */
	char *target;             /* symlinks */
	sqfs_inode_generic_t *inode; /* regular files, from the block processor */
	uint64_t inode_ref;
	uint32_t inode_num;
	uint32_t nlink;
	uint32_t mtime;
	uint32_t devno;
	uint16_t mode;
	bool written;
};

void berth_sqfs_node_free(struct node *n);

/* Hard links: (device, inode) of files with st_nlink > 1 -> first node. */
struct link_slot {
	dev_t dev;
	ino_t ino;
	struct node *node;
};

struct link_map {
	struct link_slot *slots;
	size_t cap, used;
};

/* ---- the writer (squashfs.c) ---------------------------------------------- */

struct writer {
	struct out_file out;
	sqfs_super_t super;
	sqfs_compressor_config_t cfg;
	sqfs_compressor_t *cmp, *uncmp;
	sqfs_block_writer_t *blkwr;
	sqfs_frag_table_t *frag;
	sqfs_block_processor_t *proc;
	sqfs_id_table_t *ids;
	sqfs_meta_writer_t *im, *dm;
	sqfs_dir_writer_t *dirwr;
	struct link_map links;
	struct node *root;
	struct berth_sqfs_stats stats;
	uint32_t next_ino;
	sqfs_u16 root_id_idx;     /* the owner of every entry (uid, then gid) */
	sqfs_u16 gid_idx;
	dev_t root_dev;           /* folders elsewhere are mount points */
	unsigned char *buf;       /* one block of file data */
	size_t buf_size;
	char path[PATH_MAX];      /* the entry being read, for messages */
	char target[PATH_MAX];    /* a symlink's target, read */
};

/* Set up the writer on out_fd at offset (the zeroed superblock and the
 * compressor options written, the block processor running); finish() ends
 * the data, writes the tables of the tree at w->root (children sorted by
 * name) and the superblock last; free() releases all, the tree too. */
int berth_sqfs_writer_init(struct writer *w, int out_fd, off_t offset,
			   const struct berth_sqfs_opts *o, struct berth_err *err);
int berth_sqfs_writer_finish(struct writer *w, struct berth_err *err);
void berth_sqfs_writer_free(struct writer *w);

/* Report a libsquashfs failure; an output I/O error carries its errno
 * (squashfs_out.c). */
int berth_sqfs_fail(struct writer *w, struct berth_err *err, int code,
		    const char *what);

/* A time as SquashFS keeps it: whole seconds in 32 bits, clamped. */
static inline uint32_t berth_sqfs_clamp_time(time_t t)
{
	return t < 0 ? 0 : t > (time_t)UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

/* ---- pass 1 (squashfs_tree.c) --------------------------------------------- */

/* Read the folder dir_fd into `dir` (depth folders below the root), in
 * sorted order, each regular file streamed through the block processor
 * as it is met. */
int berth_sqfs_scan_dir(struct writer *w, int dir_fd, struct node *dir, int depth,
			struct berth_err *err);

#endif
