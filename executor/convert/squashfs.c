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
 * because a listing needs the inode references of its entries. */
#define _GNU_SOURCE
#include "executor/convert/squashfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "executor/base/dl/squashfs_lazy.h"

#include "executor/base/fs.h"

#define NO_XATTR 0xFFFFFFFFu
#define MAX_WORKERS 4u
#define MAX_DEPTH 512

/* ---- the output: a sqfs_file_t on a file descriptor at an offset ------- */

struct out_file {
	sqfs_file_t base;
	int fd;
	uint64_t start;   /* where the image begins in fd */
	uint64_t size;    /* image bytes so far (high-water mark) */
	int io_errno;     /* errno of the first failed read or write */
};

static void out_destroy(sqfs_object_t *obj)
{
	(void)obj; /* embedded in the writer, freed with it */
}

static int out_read_at(sqfs_file_t *file, sqfs_u64 off, void *buf, size_t size)
{
	struct out_file *f = (struct out_file *)file;

	if (off + size < off || off + size > f->size)
		return SQFS_ERROR_OUT_OF_BOUNDS;
	for (size_t done = 0; done < size;) {
		ssize_t n = pread(f->fd, (char *)buf + done, size - done,
				  (off_t)(f->start + off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!f->io_errno)
				f->io_errno = n < 0 ? errno : EIO;
			return SQFS_ERROR_IO;
		}
		done += (size_t)n;
	}
	return 0;
}

static int out_write_at(sqfs_file_t *file, sqfs_u64 off, const void *buf,
			size_t size)
{
	struct out_file *f = (struct out_file *)file;

	for (size_t done = 0; done < size;) {
		ssize_t n = pwrite(f->fd, (const char *)buf + done, size - done,
				   (off_t)(f->start + off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!f->io_errno)
				f->io_errno = n < 0 ? errno : EIO;
			return SQFS_ERROR_IO;
		}
		done += (size_t)n;
	}
	if (off + size > f->size)
		f->size = off + size;
	return 0;
}

static sqfs_u64 out_get_size(const sqfs_file_t *file)
{
	return ((const struct out_file *)file)->size;
}

static int out_truncate(sqfs_file_t *file, sqfs_u64 size)
{
	struct out_file *f = (struct out_file *)file;

	if (ftruncate(f->fd, (off_t)(f->start + size)) < 0) {
		if (!f->io_errno)
			f->io_errno = errno;
		return SQFS_ERROR_IO;
	}
	f->size = size;
	return 0;
}

/* ---- the in-memory tree -------------------------------------------------- */

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

static void node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n_children; i++)
		node_free(n->children[i]);
	free(n->children);
	free(n->name);
	free(n->target);
	free(n->inode);
	free(n);
}

static struct node *node_add(struct node *dir, const char *name)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n || !(n->name = strdup(name))) {
		free(n);
		return NULL;
	}
	if (dir->n_children == dir->cap) {
		size_t cap = dir->cap ? dir->cap * 2 : 8;
		struct node **c = reallocarray(dir->children, cap, sizeof(struct node *));
		if (!c) {
			free(n->name);
			free(n);
			return NULL;
		}
		dir->children = c;
		dir->cap = cap;
	}
	n->parent = dir;
	dir->children[dir->n_children++] = n;
	return n;
}

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

static size_t link_hash(dev_t dev, ino_t ino, size_t cap)
{
	uint64_t h = ((uint64_t)ino * 0x9E3779B97F4A7C15ull) ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static struct node *link_find(const struct link_map *m, dev_t dev, ino_t ino)
{
	if (!m->cap)
		return NULL;
	for (size_t i = link_hash(dev, ino, m->cap); m->slots[i].node;
	     i = (i + 1) & (m->cap - 1))
		if (m->slots[i].dev == dev && m->slots[i].ino == ino)
			return m->slots[i].node;
	return NULL;
}

static int link_add(struct link_map *m, dev_t dev, ino_t ino, struct node *n)
{
	if ((m->used + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct link_slot *s = calloc(cap, sizeof(*s));
		if (!s)
			return -1;
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->slots[i].node)
				continue;
			size_t j = link_hash(m->slots[i].dev, m->slots[i].ino, cap);
			while (s[j].node)
				j = (j + 1) & (cap - 1);
			s[j] = m->slots[i];
		}
		free(m->slots);
		m->slots = s;
		m->cap = cap;
	}
	size_t j = link_hash(dev, ino, m->cap);
	while (m->slots[j].node)
		j = (j + 1) & (m->cap - 1);
	m->slots[j] = (struct link_slot){.dev = dev, .ino = ino, .node = n};
	m->used++;
	return 0;
}

/* ---- the writer ---------------------------------------------------------- */

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
	sqfs_u16 root_id_idx;
	dev_t root_dev;           /* folders elsewhere are mount points */
	unsigned char *buf;       /* one block of file data */
	size_t buf_size;
	char path[PATH_MAX];      /* the entry being read, for messages */
	char target[PATH_MAX];    /* a symlink's target, read */
};

static void writer_free(struct writer *w)
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
	node_free(w->root);
	free(w->links.slots);
	free(w->buf);
	free(w);
}

static void writer_freep(struct writer **w)
{
	if (*w)
		writer_free(*w);
}

static const char *sqfs_errstr(int code)
{
	switch (code) {
	case SQFS_ERROR_ALLOC: return "out of memory";
	case SQFS_ERROR_IO: return "input/output error";
	case SQFS_ERROR_COMPRESSOR: return "compressor failure";
	case SQFS_ERROR_INTERNAL: return "internal libsquashfs error";
	case SQFS_ERROR_CORRUPTED: return "data corrupted";
	case SQFS_ERROR_UNSUPPORTED: return "unsupported by this libsquashfs";
	case SQFS_ERROR_OVERFLOW: return "value too large for SquashFS";
	case SQFS_ERROR_OUT_OF_BOUNDS: return "offset out of bounds";
	case SQFS_ERROR_ARG_INVALID: return "invalid argument";
	case SQFS_ERROR_SEQUENCE: return "calls out of sequence";
	default: return "libsquashfs error";
	}
}

/* Report a libsquashfs failure; an output I/O error carries its errno. */
static int sqfs_fail(struct writer *w, struct berth_err *err, int code,
		     const char *what)
{
	if (code == SQFS_ERROR_IO && w->out.io_errno)
		return berth_fail(err, w->out.io_errno,
				  "SquashFS image: %s: cannot write the image", what);
	if (code == SQFS_ERROR_ALLOC)
		return berth_fail(err, ENOMEM, "SquashFS image: %s", what);
	return berth_fail(err, 0, "SquashFS image: %s: %s (libsquashfs error %d)",
			  what, sqfs_errstr(code), code);
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
	int rc = sqfs_compressor_config_init(cfg, id, block, flags);
	if (rc)
		return berth_fail(err, 0, "SquashFS compressor %s: %s", name,
				  sqfs_errstr(rc));
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
				  sqfs_compressor_name_from_id(id), sqfs_errstr(rc));
	sqfs_destroy(cmp);
	return 0;
}

static int writer_init(struct writer *w, int out_fd, off_t offset,
		       const struct berth_sqfs_opts *o, struct berth_err *err)
{
	SQFS_COMPRESSOR id = SQFS_COMP_ZSTD;
	unsigned block = 0;
	int rc;

	if (offset < 0)
		return berth_fail(err, EINVAL, "SquashFS image offset %lld",
				  (long long)offset);
	w->out = (struct out_file){
		.base = {
			.base = {.destroy = out_destroy, .copy = NULL},
			.read_at = out_read_at,
			.write_at = out_write_at,
			.get_size = out_get_size,
			.truncate = out_truncate,
		},
		.fd = out_fd,
		.start = (uint64_t)offset,
	};
	if (make_config(o, &w->cfg, &id, &block, err) < 0)
		return -1;
	if ((rc = sqfs_compressor_create(&w->cfg, &w->cmp)))
		return berth_fail(err, 0, "SquashFS compressor %s: %s",
				  sqfs_compressor_name_from_id(id), sqfs_errstr(rc));
	sqfs_compressor_config_t ucfg = w->cfg;
	ucfg.flags |= SQFS_COMP_FLAG_UNCOMPRESS;
	if ((rc = sqfs_compressor_create(&ucfg, &w->uncmp)))
		return sqfs_fail(w, err, rc, "decompressor");
	time_t now = o && o->mkfs_time ? o->mkfs_time : time(NULL);
	if ((rc = sqfs_super_init(&w->super, block,
				  (sqfs_u32)(now < 0 ? 0 : now > UINT32_MAX ? UINT32_MAX : now),
				  id)))
		return sqfs_fail(w, err, rc, "superblock");
	w->super.flags |= SQFS_FLAG_NO_XATTRS;
	w->super.xattr_id_table_start = 0xFFFFFFFFFFFFFFFFull;
	w->super.export_table_start = 0xFFFFFFFFFFFFFFFFull;
	/* A zeroed superblock until the end: no magic, nothing mountable. */
	static const unsigned char zero[sizeof(sqfs_super_t)];
	if ((rc = out_write_at(&w->out.base, 0, zero, sizeof(zero))))
		return sqfs_fail(w, err, rc, "superblock");
	rc = w->cmp->write_options(w->cmp, &w->out.base);
	if (rc < 0)
		return sqfs_fail(w, err, rc, "compressor options");
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
		return sqfs_fail(w, err, rc, "block processor");
	if ((rc = sqfs_id_table_id_to_index(w->ids, 0, &w->root_id_idx)))
		return sqfs_fail(w, err, rc, "id table");
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

/* ---- pass 1: read the tree, stream file data ------------------------------ */

/* Open `name` (one component from readdir: no '/', not "." or "..") in
 * dir_fd without following a symlink or crossing a mount.  Where openat2()
 * is missing (kernels before 5.6, older valgrind), openat() with
 * O_NOFOLLOW is as safe for a single component; the mount check is then
 * done by the caller on the device number. */
static int open_child(int dir_fd, const char *name, int flags)
{
	int fd = berth_open_beneath(dir_fd, name, flags, 0);

	if (fd < 0 && errno == ENOSYS)
		fd = openat(dir_fd, *name ? name : ".", flags | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

static uint32_t clamp_time(time_t t)
{
	return t < 0 ? 0 : t > (time_t)UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

/* Remember the path of the entry being read, for messages. */
static void set_path(struct writer *w, size_t dir_len, const char *name)
{
	if (dir_len < sizeof(w->path))
		snprintf(w->path + dir_len, sizeof(w->path) - dir_len, "/%s", name);
}

static int append_zeros(struct writer *w, uint64_t len, struct berth_err *err)
{
	static const unsigned char zeros[65536];

	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int rc = sqfs_block_processor_append(w->proc, zeros, n);
		if (rc)
			return sqfs_fail(w, err, rc, w->path);
		len -= n;
	}
	return 0;
}

/* Append [from, to) of fd, reading it. */
static int append_range(struct writer *w, int fd, uint64_t from, uint64_t to,
			struct berth_err *err)
{
	while (from < to) {
		size_t want = to - from < w->buf_size ? (size_t)(to - from) : w->buf_size;
		ssize_t n = pread(fd, w->buf, want, (off_t)from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_fail(err, errno, "SquashFS image: cannot read %s",
					  w->path);
		if (n == 0)
			return berth_fail(err, 0, "SquashFS image: %s shrank while it "
					  "was being read", w->path);
		int rc = sqfs_block_processor_append(w->proc, w->buf, (size_t)n);
		if (rc)
			return sqfs_fail(w, err, rc, w->path);
		from += (uint64_t)n;
	}
	return 0;
}

/* Stream one file's bytes; holes (SEEK_HOLE) are not read but sent as
 * zeros, which the block processor stores as sparse blocks. */
static int feed_file(struct writer *w, int fd, const struct stat *st,
		     struct node *n, struct berth_err *err)
{
	uint64_t size = (uint64_t)st->st_size, off = 0;
	int rc = sqfs_block_processor_begin_file(w->proc, &n->inode, NULL, 0);

	if (rc)
		return sqfs_fail(w, err, rc, w->path);
	while (off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			data = (off_t)size; /* a hole to the end */
		else if (data < 0) /* no SEEK_DATA here: read it all */
			data = (off_t)off;
		if ((uint64_t)data > size)
			data = (off_t)size;
		if (append_zeros(w, (uint64_t)data - off, err) < 0)
			return -1;
		off = (uint64_t)data;
		if (off >= size)
			break;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		uint64_t end = hole < 0 || (uint64_t)hole > size ? size : (uint64_t)hole;
		if (end <= off)
			end = size;
		if (append_range(w, fd, off, end, err) < 0)
			return -1;
		off = end;
	}
	struct stat after;
	if (fstat(fd, &after) < 0)
		return berth_fail(err, errno, "SquashFS image: stat %s", w->path);
	if (after.st_size != st->st_size)
		return berth_fail(err, 0, "SquashFS image: %s changed size while it "
				  "was being read", w->path);
	if ((rc = sqfs_block_processor_end_file(w->proc)))
		return sqfs_fail(w, err, rc, w->path);
	w->stats.input_bytes += size;
	return 0;
}

static bool same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

static int scan_dir(struct writer *w, int dir_fd, struct node *dir, int depth,
		    struct berth_err *err);

/* Open a regular file for reading.  The tree is the converting user's own
 * (flatten wrote it with the image's modes): a file its owner may not read,
 * like the mode 0000 /etc/shadow of RHEL-family images, is made readable
 * for the moment of the open through its O_PATH fd (so exactly that inode,
 * never a symlink) and its mode put back at once; the image records the
 * original mode. */
static int open_file(int dir_fd, const char *name, const struct stat *st)
{
	int fd = open_child(dir_fd, name, O_RDONLY);

	if (fd >= 0 || errno != EACCES || st->st_uid != geteuid())
		return fd;
	_cleanup_close_ int pfd = open_child(dir_fd, name, O_PATH);
	struct stat cur;
	char proc[64];
	if (pfd < 0 || fstat(pfd, &cur) < 0 || !same_inode(st, &cur)) {
		errno = EACCES;
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	if (chmod(proc, (cur.st_mode & 07777) | S_IRUSR) < 0) {
		errno = EACCES;
		return -1;
	}
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	int saved = errno;
	if (chmod(proc, cur.st_mode & 07777) < 0) {
		saved = errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	errno = saved;
	return fd;
}

static int scan_entry(struct writer *w, int dir_fd, struct node *dir,
		      const char *name, int depth, struct berth_err *err)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_fail(err, errno, "SquashFS image: cannot stat %s", w->path);
	struct node *n = node_add(dir, name);
	if (!n)
		return berth_fail(err, ENOMEM, "SquashFS image: %s", w->path);
	n->mode = (uint16_t)(st.st_mode & (S_IFMT | 07777));
	n->mtime = clamp_time(st.st_mtime);
	n->nlink = 1;
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR: {
		if (st.st_dev != w->root_dev) {
			return berth_fail(err, EXDEV, "SquashFS image: cannot open folder "
					  "%s (a mount point inside the tree is not "
					  "followed)", w->path);
		}
		_cleanup_close_ int fd = open_child(dir_fd, name, O_RDONLY | O_DIRECTORY);
		struct stat again;
		if (fd < 0)
			return berth_fail(err, errno, "SquashFS image: cannot open folder "
					  "%s%s", w->path, errno == EXDEV
					  ? " (a mount point inside the tree is not "
					    "followed)" : "");
		if (fstat(fd, &again) < 0)
			return berth_fail(err, errno, "SquashFS image: stat %s", w->path);
		if (!same_inode(&st, &again))
			return berth_fail(err, ESTALE, "SquashFS image: %s changed while "
					  "it was being read", w->path);
		w->stats.dirs++;
		dir->nlink++; /* the child's ".." */
		n->nlink = 2;
		return scan_dir(w, fd, n, depth + 1, err);
	}
	case S_IFREG: {
		if (st.st_nlink > 1) {
			struct node *first = link_find(&w->links, st.st_dev, st.st_ino);
			if (first) {
				n->link = first;
				first->nlink++;
				w->stats.hardlinks++;
				return 0;
			}
			if (link_add(&w->links, st.st_dev, st.st_ino, n) < 0)
				return berth_fail(err, ENOMEM, "SquashFS image: hard links");
		}
		_cleanup_close_ int fd = open_file(dir_fd, name, &st);
		struct stat again;
		if (fd < 0)
			return berth_fail(err, errno, "SquashFS image: cannot open %s",
					  w->path);
		if (fstat(fd, &again) < 0)
			return berth_fail(err, errno, "SquashFS image: stat %s", w->path);
		if (!same_inode(&st, &again))
			return berth_fail(err, ESTALE, "SquashFS image: %s changed while "
					  "it was being read", w->path);
		w->stats.files++;
		return feed_file(w, fd, &again, n, err);
	}
	case S_IFLNK: {
		ssize_t len = readlinkat(dir_fd, name, w->target, sizeof(w->target));
		if (len < 0)
			return berth_fail(err, errno, "SquashFS image: cannot read symlink %s",
					  w->path);
		if ((size_t)len >= sizeof(w->target))
			return berth_fail(err, ENAMETOOLONG, "SquashFS image: symlink %s",
					  w->path);
		if (!(n->target = strndup(w->target, (size_t)len)))
			return berth_fail(err, ENOMEM, "SquashFS image: %s", w->path);
		w->stats.symlinks++;
		return 0;
	}
	case S_IFCHR:
	case S_IFBLK: {
		unsigned ma = major(st.st_rdev), mi = minor(st.st_rdev);
		n->devno = (mi & 0xffu) | (ma << 8) | ((mi & ~0xffu) << 12);
		w->stats.others++;
		return 0;
	}
	case S_IFIFO:
	case S_IFSOCK:
		w->stats.others++;
		return 0;
	default:
		return berth_fail(err, 0, "SquashFS image: %s has an unknown file type",
				  w->path);
	}
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct names {
	char **v;
	size_t n;
};

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

/* The names in a folder, sorted; the folder is closed again before its
 * children are visited, so only one fd per level stays open. */
static int list_dir(struct writer *w, int dir_fd, struct names *ns,
		    struct berth_err *err)
{
	size_t cap = 0;
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		int saved = errno;
		if (fd >= 0)
			close(fd);
		return berth_fail(err, saved, "SquashFS image: cannot list %s",
				  *w->path ? w->path : "/");
	}
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (ns->n == cap) {
			cap = cap ? cap * 2 : 16;
			char **v = reallocarray(ns->v, cap, sizeof(*v));
			if (!v)
				break;
			ns->v = v;
		}
		if (!(ns->v[ns->n] = strdup(de->d_name)))
			break;
		ns->n++;
		errno = 0;
	}
	int saved = de ? ENOMEM : errno;
	closedir(d);
	if (saved)
		return berth_fail(err, saved, "SquashFS image: cannot list %s",
				  *w->path ? w->path : "/");
	if (ns->n > 1)
		qsort(ns->v, ns->n, sizeof(*ns->v), cmp_names);
	return 0;
}

static int scan_dir(struct writer *w, int dir_fd, struct node *dir, int depth,
		    struct berth_err *err)
{
	struct names ns = {0};
	size_t dir_len = strlen(w->path);
	int rc = 0;

	if (depth > MAX_DEPTH)
		return berth_fail(err, ELOOP, "SquashFS image: %s is nested more than "
				  "%d folders deep", w->path, MAX_DEPTH);
	if (list_dir(w, dir_fd, &ns, err) < 0)
		return -1;
	for (size_t i = 0; i < ns.n && rc == 0; i++) {
		if (strlen(ns.v[i]) > 256) {
			set_path(w, dir_len, ns.v[i]);
			rc = berth_fail(err, ENAMETOOLONG, "SquashFS image: %s", w->path);
			break;
		}
		set_path(w, dir_len, ns.v[i]);
		rc = scan_entry(w, dir_fd, dir, ns.v[i], depth, err);
	}
	if (rc == 0 && dir_len < sizeof(w->path))
		w->path[dir_len] = '\0';
	names_free(&ns);
	return rc;
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
	inode->base.gid_idx = w->root_id_idx;
	sqfs_meta_writer_get_position(w->im, &block, &offset);
	n->inode_ref = (block << 16) | offset;
	int rc = sqfs_meta_writer_write_inode(w->im, inode);
	if (rc)
		return sqfs_fail(w, err, rc, "inode table");
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
		return sqfs_fail(w, err, rc, "directory table");
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

static int finish(struct writer *w, struct berth_err *err)
{
	int rc;

	if ((rc = sqfs_block_processor_finish(w->proc)))
		return sqfs_fail(w, err, rc, "data blocks");
	number(w, w->root);
	w->super.inode_table_start = w->out.size;
	if (write_dir(w, w->root, err) < 0)
		return -1;
	w->super.inode_count = w->next_ino;
	w->super.root_inode_ref = w->root->inode_ref;
	if ((rc = sqfs_meta_writer_flush(w->im)) || (rc = sqfs_meta_writer_flush(w->dm)))
		return sqfs_fail(w, err, rc, "inode table");
	w->super.directory_table_start = w->out.size;
	if ((rc = sqfs_meta_write_write_to_file(w->dm)))
		return sqfs_fail(w, err, rc, "directory table");
	if ((rc = sqfs_frag_table_write(w->frag, &w->out.base, &w->super, w->cmp)))
		return sqfs_fail(w, err, rc, "fragment table");
	if ((rc = sqfs_id_table_write(w->ids, &w->out.base, &w->super, w->cmp)))
		return sqfs_fail(w, err, rc, "id table");
	w->super.bytes_used = w->out.size;
	/* Padding first, so that the superblock is the very last write. */
	uint64_t padded = (w->out.size + BERTH_SQFS_ALIGN - 1) & ~(uint64_t)(BERTH_SQFS_ALIGN - 1);
	if (padded > w->out.size) {
		static const unsigned char zero[BERTH_SQFS_ALIGN];
		if ((rc = out_write_at(&w->out.base, w->out.size, zero,
				       (size_t)(padded - w->out.size))))
			return sqfs_fail(w, err, rc, "padding");
	}
	if ((rc = sqfs_super_write(&w->super, &w->out.base)))
		return sqfs_fail(w, err, rc, "superblock");
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
	if (writer_init(w, out_fd, offset, o, err) < 0)
		return -1;
	_cleanup_close_ int root = open_child(root_dir_fd, "", O_RDONLY | O_DIRECTORY);
	if (root < 0 || fstat(root, &st) < 0)
		return berth_fail(err, errno, "SquashFS image: cannot open the root folder");
	w->root_dev = st.st_dev;
	if (!(w->root = calloc(1, sizeof(*w->root))))
		return berth_fail(err, ENOMEM, "SquashFS image");
	w->root->mode = S_IFDIR | 0755; /* as Apptainer's builds have it */
	w->root->mtime = clamp_time(st.st_mtime);
	w->root->nlink = 2;
	w->stats.dirs = 1;
	if (scan_dir(w, root, w->root, 0, err) < 0 || finish(w, err) < 0)
		return -1;
	if (stats)
		*stats = w->stats;
	return 0;
}

int berth_squashfs_write(const char *rootfs_dir, const char *out_path,
			 const struct berth_sqfs_opts *o,
			 struct berth_sqfs_stats *stats, struct berth_err *err)
{
	_cleanup_close_ int dir = open(rootfs_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return berth_fail(err, errno, "cannot open rootfs folder %s", rootfs_dir);
	_cleanup_close_ int fd = open(out_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
				      O_CLOEXEC, 0644);
	if (fd < 0)
		return berth_fail(err, errno, "cannot create %s", out_path);
	if (berth_squashfs_write_tree(dir, fd, 0, o, stats, err) < 0) {
		unlink(out_path);
		return berth_wrap(err, "%s", out_path);
	}
	if (close(berth_steal_fd(fd)) < 0) {
		int saved = errno;
		unlink(out_path);
		return berth_fail(err, saved, "cannot write %s", out_path);
	}
	return 0;
}
