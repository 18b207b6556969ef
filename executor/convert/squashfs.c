/* berth: a rootfs folder as a SquashFS image, through libsquashfs.
 *
 * Layout of what is written (offsets relative to the image start), the
 * order squashfs-tools-ng's own writers use:
 *   superblock (a zeroed placeholder until the very end), compressor
 *   options, data and fragment blocks (streamed while the tree is read),
 *   inode table, directory table, fragment table, id table, padding.
 *
 * Pass 1 reads the tree in sorted order and sends each regular file
 * through the block processor as it is met; the processor gives back one
 * file inode per file.  Pass 2 numbers the inodes (children before their
 * folder, the root last, as gensquashfs does) and pass 3 writes them in
 * that same order, each folder's listing after its children's inodes,
 * because a listing needs the inode references of its entries.
 *
 * This file: the writer, passes 2 and 3 and the API; the in-memory tree
 * and pass 1 are in squashfs_tree.c, the output file in squashfs_out.c. */
#define _GNU_SOURCE
#include "executor/convert/squashfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/convert/squashfs_int.h"

#define NO_XATTR 0xFFFFFFFFu
#define MAX_WORKERS 4u

/* ---- the writer ---------------------------------------------------------- */

void berth_sqfs_writer_free(struct writer *w)
{
	sqfs_destroy(w->dirwr);
	sqfs_destroy(w->dm);
	sqfs_destroy(w->im);
	sqfs_destroy(w->ids);
	sqfs_destroy(w->proc);
	sqfs_destroy(w->frag);
	sqfs_destroy(w->blkwr);
	sqfs_destroy(w->uncmp);
	sqfs_destroy(w->cmp);
	berth_sqfs_node_free(w->root);
	free(w->links.slots);
	free(w->buf);
	free(w);
}

static void writer_freep(struct writer **w)
{
	if (*w)
		berth_sqfs_writer_free(*w);
}

static long online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n;
}

/* Fill a compressor config from opts (no side effects). */
static int make_config(const struct berth_sqfs_opts *o, sqfs_compressor_config_t *cfg,
		       SQFS_COMPRESSOR *id_out, unsigned *block_out,
		       struct berth_err *err)
{
	const char *name = o && o->compressor && *o->compressor ? o->compressor
								: BERTH_SQFS_DEFAULT_COMPRESSOR;
	unsigned block = o && o->block_size ? o->block_size : SQFS_DEFAULT_BLOCK_SIZE;
	int level = o ? o->level : 0;
	SQFS_COMPRESSOR id;
	sqfs_u16 flags = 0;

	if (!strcmp(name, "zstd"))
		id = SQFS_COMP_ZSTD;
	else if (!strcmp(name, "gzip"))
		id = SQFS_COMP_GZIP;
	else if (!strcmp(name, "lz4"))
		id = SQFS_COMP_LZ4;
	else if (!strcmp(name, "xz"))
		id = SQFS_COMP_XZ;
	else
		return berth_fail(err, 0, "SquashFS compressor '%s' is not supported "
				  "(use zstd, gzip, lz4 or xz)", name);
	if (block < SQFS_MIN_BLOCK_SIZE || block > SQFS_MAX_BLOCK_SIZE ||
	    (block & (block - 1)))
		return berth_fail(err, 0, "SquashFS block size %u is invalid (a power "
				  "of two from 4 KiB to 1 MiB)", block);
	if (level < 0)
		return berth_fail(err, 0, "SquashFS %s level %d is invalid", name, level);
	if (id == SQFS_COMP_LZ4 && level)
		flags |= SQFS_COMP_FLAG_LZ4_HC;
	if (berth_sqfs_load(err) < 0) /* the first libsquashfs call of every writer */
		return -1;
	int rc = sqfs_compressor_config_init(cfg, id, block, flags);
	if (rc)
		return berth_fail(err, 0, "SquashFS compressor %s: %s", name,
				  berth_sqfs_errstr(rc));
	switch (id) {
	case SQFS_COMP_ZSTD:
		cfg->level = level ? (sqfs_u32)level : BERTH_SQFS_DEFAULT_ZSTD_LEVEL;
		if (cfg->level > SQFS_ZSTD_MAX_LEVEL)
			return berth_fail(err, 0, "SquashFS zstd level %d is invalid "
					  "(1 to %d)", level, SQFS_ZSTD_MAX_LEVEL);
		break;
	case SQFS_COMP_GZIP:
		if (level && level > SQFS_GZIP_MAX_LEVEL)
			return berth_fail(err, 0, "SquashFS gzip level %d is invalid "
					  "(1 to %d)", level, SQFS_GZIP_MAX_LEVEL);
		if (level)
			cfg->level = (sqfs_u32)level;
		break;
	case SQFS_COMP_XZ:
		if (level && level > SQFS_XZ_MAX_LEVEL)
			return berth_fail(err, 0, "SquashFS xz level %d is invalid "
					  "(0 to %d)", level, SQFS_XZ_MAX_LEVEL);
		if (level)
			cfg->level = (sqfs_u32)level;
		break;
	default:
		break;
	}
	*id_out = id;
	*block_out = block;
	return 0;
}

int berth_sqfs_opts_check(const struct berth_sqfs_opts *o, struct berth_err *err)
{
	sqfs_compressor_config_t cfg;
	sqfs_compressor_t *cmp = NULL;
	SQFS_COMPRESSOR id = SQFS_COMP_ZSTD;
	unsigned block = 0;

	if (make_config(o, &cfg, &id, &block, err) < 0)
		return -1;
	int rc = sqfs_compressor_create(&cfg, &cmp);
	if (rc)
		return berth_fail(err, 0, "SquashFS compressor %s: %s",
				  sqfs_compressor_name_from_id(id), berth_sqfs_errstr(rc));
	sqfs_destroy(cmp);
	return 0;
}

/* libsquashfs 1.2.0's lz4 breaks its own contract: a block that grows
 * when compressed (a 4-byte id table: 5 bytes) must come back as 0, to be
 * stored uncompressed, and comes back compressed instead.  The kernel
 * reads such a block; unsquashfs (squashfs-tools 4.5) calls the image
 * corrupt ("read_id_table: failed to read id table block"), and
 * SingularityCE unpacks a SIF with unsquashfs for --fakeroot, as Apptainer
 * does without squashfuse.  The wrapper keeps the contract; copies made
 * for the worker threads copy the wrapped pointer with the object. */
static sqfs_s32 (*lz4_do_block)(sqfs_compressor_t *, const sqfs_u8 *, sqfs_u32, sqfs_u8 *,
				sqfs_u32);

static sqfs_s32 lz4_do_block_checked(sqfs_compressor_t *cmp, const sqfs_u8 *in, sqfs_u32 size,
				     sqfs_u8 *out, sqfs_u32 outsize)
{
	sqfs_s32 n = lz4_do_block(cmp, in, size, out, outsize);

	return n > 0 && (sqfs_u32)n >= size ? 0 : n;
}

static void lz4_keep_contract(sqfs_compressor_t *cmp, SQFS_COMPRESSOR id)
{
	if (id != SQFS_COMP_LZ4 || cmp->do_block == lz4_do_block_checked)
		return;
	lz4_do_block = cmp->do_block;
	cmp->do_block = lz4_do_block_checked;
}

int berth_sqfs_writer_init(struct writer *w, int out_fd, off_t offset,
		       const struct berth_sqfs_opts *o, struct berth_err *err)
{
	SQFS_COMPRESSOR id = SQFS_COMP_ZSTD;
	unsigned block = 0;
	int rc;

	if (offset < 0)
		return berth_fail(err, EINVAL, "SquashFS image offset %lld",
				  (long long)offset);
	berth_sqfs_out_init(&w->out, out_fd, (uint64_t)offset);
	if (make_config(o, &w->cfg, &id, &block, err) < 0)
		return -1;
	if ((rc = sqfs_compressor_create(&w->cfg, &w->cmp)))
		return berth_fail(err, 0, "SquashFS compressor %s: %s",
				  sqfs_compressor_name_from_id(id), berth_sqfs_errstr(rc));
	lz4_keep_contract(w->cmp, id);
	sqfs_compressor_config_t ucfg = w->cfg;
	ucfg.flags |= SQFS_COMP_FLAG_UNCOMPRESS;
	if ((rc = sqfs_compressor_create(&ucfg, &w->uncmp)))
		return berth_sqfs_fail(w, err, rc, "decompressor");
	time_t now = o && o->mkfs_time ? o->mkfs_time : time(NULL);
	if ((rc = sqfs_super_init(&w->super, block,
				  (sqfs_u32)(now < 0 ? 0 : now > UINT32_MAX ? UINT32_MAX : now),
				  id)))
		return berth_sqfs_fail(w, err, rc, "superblock");
	w->super.flags |= SQFS_FLAG_NO_XATTRS;
	w->super.xattr_id_table_start = 0xFFFFFFFFFFFFFFFFull;
	w->super.export_table_start = 0xFFFFFFFFFFFFFFFFull;
	/* A zeroed superblock until the end: no magic, nothing mountable. */
	static const unsigned char zero[sizeof(sqfs_super_t)];
	if ((rc = berth_sqfs_out_write_at(&w->out.base, 0, zero, sizeof(zero))))
		return berth_sqfs_fail(w, err, rc, "superblock");
	rc = w->cmp->write_options(w->cmp, &w->out.base);
	if (rc < 0)
		return berth_sqfs_fail(w, err, rc, "compressor options");
	if (rc > 0)
		w->super.flags |= SQFS_FLAG_COMPRESSOR_OPTIONS;
	if (!(w->blkwr = sqfs_block_writer_create(&w->out.base, BERTH_SQFS_ALIGN, 0)) ||
	    !(w->frag = sqfs_frag_table_create(0)) ||
	    !(w->ids = sqfs_id_table_create(0)))
		return berth_fail(err, ENOMEM, "SquashFS writer");
	unsigned workers = o && o->workers ? o->workers : (unsigned)online_cpus();
	if (workers > MAX_WORKERS && !(o && o->workers))
		workers = MAX_WORKERS;
	unsigned backlog = o && o->backlog ? o->backlog : 4 * workers;
	sqfs_block_processor_desc_t desc = {
		.size = sizeof(desc),
		.max_block_size = block,
		.num_workers = workers,
		.max_backlog = backlog,
		.cmp = w->cmp,
		.wr = w->blkwr,
		.tbl = w->frag,
		.file = &w->out.base,
		.uncmp = w->uncmp,
	};
	if ((rc = sqfs_block_processor_create_ex(&desc, &w->proc)))
		return berth_sqfs_fail(w, err, rc, "block processor");
	bool own = o && o->owned;
	if ((rc = sqfs_id_table_id_to_index(w->ids, own ? (sqfs_u32)o->uid : 0, &w->root_id_idx)) ||
	    (rc = sqfs_id_table_id_to_index(w->ids, own ? (sqfs_u32)o->gid : 0, &w->gid_idx)))
		return berth_sqfs_fail(w, err, rc, "id table");
	if (!(w->im = sqfs_meta_writer_create(&w->out.base, w->cmp, 0)) ||
	    !(w->dm = sqfs_meta_writer_create(&w->out.base, w->cmp,
					      SQFS_META_WRITER_KEEP_IN_MEMORY)) ||
	    !(w->dirwr = sqfs_dir_writer_create(w->dm, 0)))
		return berth_fail(err, ENOMEM, "SquashFS metadata writer");
	w->buf_size = block;
	if (!w->buf_size || !(w->buf = malloc(w->buf_size)))
		return berth_fail(err, ENOMEM, "SquashFS read buffer");
	return 0;
}

/* ---- passes 2 and 3: number and write the inodes ------------------------- */

static struct node *holder(struct node *n)
{
	return n->link ? n->link : n;
}

/* Children before their folder, a hard-linked file at its first entry. */
static void number(struct writer *w, struct node *dir)
{
	for (size_t i = 0; i < dir->n_children; i++) {
		struct node *c = holder(dir->children[i]);
		if (S_ISDIR(c->mode))
			number(w, c);
		else if (!c->inode_num)
			c->inode_num = ++w->next_ino;
	}
	dir->inode_num = ++w->next_ino;
}

static sqfs_inode_generic_t *make_inode(struct node *n)
{
	size_t extra = S_ISLNK(n->mode) ? strlen(n->target) : 0;
	sqfs_inode_generic_t *inode = calloc(1, sizeof(*inode) + extra);

	if (!inode)
		return NULL;
	switch (n->mode & S_IFMT) {
	case S_IFLNK:
		inode->base.type = SQFS_INODE_SLINK;
		inode->data.slink.nlink = n->nlink;
		inode->data.slink.target_size = (sqfs_u32)extra;
		inode->payload_bytes_available = (sqfs_u32)extra;
		inode->payload_bytes_used = (sqfs_u32)extra;
		memcpy(inode->extra, n->target, extra);
		break;
	case S_IFCHR:
	case S_IFBLK:
		inode->base.type = S_ISCHR(n->mode) ? SQFS_INODE_CDEV : SQFS_INODE_BDEV;
		inode->data.dev.nlink = n->nlink;
		inode->data.dev.devno = n->devno;
		break;
	default:
		inode->base.type = S_ISFIFO(n->mode) ? SQFS_INODE_FIFO : SQFS_INODE_SOCKET;
		inode->data.ipc.nlink = n->nlink;
		break;
	}
	return inode;
}

static int write_inode(struct writer *w, struct node *n, sqfs_inode_generic_t *inode,
		       struct berth_err *err)
{
	sqfs_u64 block;
	sqfs_u32 offset;

	inode->base.mode = n->mode;
	inode->base.mod_time = n->mtime;
	inode->base.inode_number = n->inode_num;
	inode->base.uid_idx = w->root_id_idx;
	inode->base.gid_idx = w->gid_idx;
	sqfs_meta_writer_get_position(w->im, &block, &offset);
	n->inode_ref = (block << 16) | offset;
	int rc = sqfs_meta_writer_write_inode(w->im, inode);
	if (rc)
		return berth_sqfs_fail(w, err, rc, "inode table");
	n->written = true;
	w->stats.inodes++;
	return 0;
}

static int write_leaf(struct writer *w, struct node *n, struct berth_err *err)
{
	if (S_ISREG(n->mode)) {
		sqfs_inode_generic_t *inode = n->inode;
		if (!inode)
			return berth_fail(err, 0, "SquashFS image: no inode for %s", n->name);
		if (n->nlink > 1 || inode->base.type == SQFS_INODE_EXT_FILE) {
			if (inode->base.type == SQFS_INODE_FILE &&
			    sqfs_inode_make_extended(inode))
				return berth_fail(err, 0, "SquashFS image: inode of %s", n->name);
			inode->data.file_ext.nlink = n->nlink;
			inode->data.file_ext.xattr_idx = NO_XATTR;
		}
		int rc = write_inode(w, n, inode, err);
		free(n->inode);
		n->inode = NULL;
		return rc;
	}
	sqfs_inode_generic_t *inode = make_inode(n);
	if (!inode)
		return berth_fail(err, ENOMEM, "SquashFS image: inode");
	int rc = write_inode(w, n, inode, err);
	free(inode);
	return rc;
}

static int write_dir(struct writer *w, struct node *dir, struct berth_err *err)
{
	for (size_t i = 0; i < dir->n_children; i++) {
		struct node *c = holder(dir->children[i]);
		if (S_ISDIR(c->mode)) {
			if (write_dir(w, c, err) < 0)
				return -1;
		} else if (!c->written && write_leaf(w, c, err) < 0) {
			return -1;
		}
	}
	int rc = sqfs_dir_writer_begin(w->dirwr, 0);
	for (size_t i = 0; i < dir->n_children && !rc; i++) {
		struct node *c = holder(dir->children[i]);
		rc = sqfs_dir_writer_add_entry(w->dirwr, dir->children[i]->name,
					       c->inode_num, c->inode_ref, c->mode);
	}
	if (!rc)
		rc = sqfs_dir_writer_end(w->dirwr);
	if (rc)
		return berth_sqfs_fail(w, err, rc, "directory table");
	/* The root's parent is one past the last inode, as mksquashfs has it.
	 * A listing that crosses a metadata block gets an extended inode with
	 * a lookup index, as mksquashfs gives it; libsquashfs makes a basic
	 * one below 64 KiB unless asked through the xattr argument, which is
	 * reset to "none" afterwards. */
	uint32_t parent = dir->parent ? dir->parent->inode_num : w->next_ino + 1;
	bool indexed = (sqfs_dir_writer_get_dir_reference(w->dirwr) & 0xFFFF) +
			       sqfs_dir_writer_get_size(w->dirwr) > SQFS_META_BLOCK_SIZE;
	sqfs_inode_generic_t *inode = sqfs_dir_writer_create_inode(w->dirwr, 0,
								   indexed ? 0 : NO_XATTR,
								   parent);
	if (!inode)
		return berth_fail(err, ENOMEM, "SquashFS image: folder inode");
	if (inode->base.type == SQFS_INODE_DIR) {
		inode->data.dir.nlink = dir->nlink;
	} else {
		inode->data.dir_ext.nlink = dir->nlink;
		inode->data.dir_ext.xattr_idx = NO_XATTR;
	}
	rc = write_inode(w, dir, inode, err);
	free(inode);
	return rc;
}

int berth_sqfs_writer_finish(struct writer *w, struct berth_err *err)
{
	int rc;

	if ((rc = sqfs_block_processor_finish(w->proc)))
		return berth_sqfs_fail(w, err, rc, "data blocks");
	number(w, w->root);
	w->super.inode_table_start = w->out.size;
	if (write_dir(w, w->root, err) < 0)
		return -1;
	w->super.inode_count = w->next_ino;
	w->super.root_inode_ref = w->root->inode_ref;
	if ((rc = sqfs_meta_writer_flush(w->im)) || (rc = sqfs_meta_writer_flush(w->dm)))
		return berth_sqfs_fail(w, err, rc, "inode table");
	w->super.directory_table_start = w->out.size;
	if ((rc = sqfs_meta_write_write_to_file(w->dm)))
		return berth_sqfs_fail(w, err, rc, "directory table");
	if ((rc = sqfs_frag_table_write(w->frag, &w->out.base, &w->super, w->cmp)))
		return berth_sqfs_fail(w, err, rc, "fragment table");
	if ((rc = sqfs_id_table_write(w->ids, &w->out.base, &w->super, w->cmp)))
		return berth_sqfs_fail(w, err, rc, "id table");
	w->super.bytes_used = w->out.size;
	/* Padding first, so that the superblock is the very last write. */
	uint64_t padded = (w->out.size + BERTH_SQFS_ALIGN - 1) & ~(uint64_t)(BERTH_SQFS_ALIGN - 1);
	if (padded > w->out.size) {
		static const unsigned char zero[BERTH_SQFS_ALIGN];
		if ((rc = berth_sqfs_out_write_at(&w->out.base, w->out.size, zero,
						  (size_t)(padded - w->out.size))))
			return berth_sqfs_fail(w, err, rc, "padding");
	}
	if ((rc = sqfs_super_write(&w->super, &w->out.base)))
		return berth_sqfs_fail(w, err, rc, "superblock");
	w->stats.bytes_used = w->super.bytes_used;
	w->stats.image_size = padded;
	return 0;
}

int berth_squashfs_write_tree(int root_dir_fd, int out_fd, off_t offset,
			      const struct berth_sqfs_opts *o,
			      struct berth_sqfs_stats *stats, struct berth_err *err)
{
	__attribute__((cleanup(writer_freep))) struct writer *w = calloc(1, sizeof(*w));
	struct stat st;

	if (!w)
		return berth_fail(err, ENOMEM, "SquashFS writer");
	if (berth_sqfs_writer_init(w, out_fd, offset, o, err) < 0)
		return -1;
	_cleanup_close_ int root = berth_open_child(root_dir_fd, "", O_RDONLY | O_DIRECTORY);
	if (root < 0 || fstat(root, &st) < 0)
		return berth_fail(err, errno, "SquashFS image: cannot open the root folder");
	w->root_dev = st.st_dev;
	if (!(w->root = calloc(1, sizeof(*w->root))))
		return berth_fail(err, ENOMEM, "SquashFS image");
	w->root->mode = S_IFDIR | 0755; /* as Apptainer's builds have it */
	w->root->mtime = berth_sqfs_clamp_time(st.st_mtime);
	w->root->nlink = 2;
	w->stats.dirs = 1;
	if (berth_sqfs_scan_dir(w, root, w->root, 0, err) < 0 || berth_sqfs_writer_finish(w, err) < 0)
		return -1;
	if (stats)
		*stats = w->stats;
	return 0;
}

/* berth_squashfs_write's arguments, for berth_create_file. */
struct sqfs_job {
	int dir;
	const struct berth_sqfs_opts *o;
	struct berth_sqfs_stats *stats;
};

static int sqfs_fill(int fd, void *arg, struct berth_err *err)
{
	const struct sqfs_job *j = arg;

	return berth_squashfs_write_tree(j->dir, fd, 0, j->o, j->stats, err);
}

int berth_squashfs_write(const char *rootfs_dir, const char *out_path,
			 const struct berth_sqfs_opts *o,
			 struct berth_sqfs_stats *stats, struct berth_err *err)
{
	_cleanup_close_ int dir = open(rootfs_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return berth_fail(err, errno, "cannot open rootfs folder %s", rootfs_dir);
	if (berth_sqfs_load(err) < 0) /* said as it is, not as the output file's error */
		return -1;
	struct sqfs_job job = {.dir = dir, .o = o, .stats = stats};
	return berth_create_file(out_path, 0644, sqfs_fill, &job, err);
}

