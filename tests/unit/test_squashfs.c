/* Unit tests for executor/convert/squashfs*.c: a tree written as SquashFS
 * and read back with libsquashfs's own reader, entry by entry against the
 * tree. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqfs/compressor.h>
#include <sqfs/data_reader.h>
#include <sqfs/dir_reader.h>
#include <sqfs/error.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/super.h>

#include "executor/base/fs.h"
#include "executor/convert/squashfs.h"
#include "helpers.h"

#define MKFS_TIME 1700000000
#define BLK 131072

/* Each test: tree/ and the images beside it. */
static int setup(void **state)
{
	return fixture_setup(state, "/tmp/berth-test-sqfs-XXXXXX", "tree", "out.sqfs");
}

/* ---- building trees --------------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;

static void fill_random(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		p[i] = (unsigned char)rng;
	}
}

static void set_mtime(const char *path, time_t t)
{
	struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};

	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void put(const char *root, const char *rel, const void *data, size_t len,
		mode_t mode)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	if (len)
		assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	set_mtime(path, 1600000000);
}

static void put_random(const char *root, const char *rel, size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	fill_random(buf, len);
	put(root, rel, buf, len, 0644);
	free(buf);
}

static void mk(const char *root, const char *rel, mode_t mode)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void ln_s(const char *root, const char *target, const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(symlink(target, path), 0);
	set_mtime(path, 1500000000);
}

static void ln(const char *root, const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];

	snprintf(a, sizeof(a), "%s/%s", root, from);
	snprintf(b, sizeof(b), "%s/%s", root, to);
	assert_int_equal(link(a, b), 0);
}

/* Everything the writer has to get right. */
static void build_tree(const char *t)
{
	static unsigned char zeros[200000];
	char name[300], path[PATH_MAX];

	put(t, "empty", "", 0, 0644);
	put(t, "one", "x", 1, 0644);
	put_random(t, "block-1", BLK - 1);
	put_random(t, "block", BLK);
	put_random(t, "block+1", BLK + 1);
	put_random(t, "multi", 3 * BLK + 17);
	put(t, "zeros", zeros, sizeof(zeros), 0644);
	/* sparse: data at both ends and in the middle of 4 MiB of hole */
	snprintf(path, sizeof(path), "%s/sparse", t);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "head", 4, 0), 4);
	assert_int_equal(pwrite(fd, "mid", 3, 2 << 20), 3);
	assert_int_equal(pwrite(fd, "tail", 4, (4 << 20) - 4), 4);
	assert_int_equal(close(fd), 0);

	/* modes, kept as they are (the image is all root's) */
	put(t, "m0000", "secret", 6, 0000);
	put(t, "m4755", "#!/bin/sh\n", 10, 04755);
	put(t, "m2711", "#!/bin/sh\n", 10, 02711);
	mk(t, "sticky", 01777);
	mk(t, "private", 0700);
	mk(t, "ro-dir", 0755);
	put(t, "ro-dir/inside", "in", 2, 0444);
	snprintf(path, sizeof(path), "%s/ro-dir", t);
	assert_int_equal(chmod(path, 0555), 0);

	/* mtimes: epoch, past 2^31, before 1970 (clamped to 0) */
	put(t, "t-epoch", "e", 1, 0644);
	put(t, "t-2100", "f", 1, 0644);
	put(t, "t-neg", "n", 1, 0644);
	snprintf(path, sizeof(path), "%s/t-epoch", t);
	set_mtime(path, 0);
	snprintf(path, sizeof(path), "%s/t-2100", t);
	set_mtime(path, 4102444800);
	snprintf(path, sizeof(path), "%s/t-neg", t);
	set_mtime(path, -5);

	/* symlinks, never followed */
	mk(t, "links", 0755);
	ln_s(t, "../one", "links/rel");
	ln_s(t, "/etc/passwd", "links/abs");
	ln_s(t, "nowhere", "links/dangling");
	ln_s(t, "../sticky", "links/dirlink");
	ln_s(t, "/", "escape");
	memset(name, 'L', 255);
	name[255] = '\0';
	char target[1024];
	memset(target, 't', sizeof(target) - 1);
	target[sizeof(target) - 1] = '\0';
	snprintf(path, sizeof(path), "links/%.200s", name);
	ln_s(t, target, path);

	/* hard links, across folders */
	mk(t, "hl", 0755);
	mk(t, "hl2", 0755);
	put_random(t, "hl/a", 5000);
	ln(t, "hl/a", "hl/b");
	ln(t, "hl/a", "hl2/c");
	ln(t, "one", "hl2/one-again");

	/* names */
	snprintf(path, sizeof(path), "%s", name);
	put(t, path, "long", 4, 0644);
	put(t, "sp ace\nnl \xc3\xbc\xe6\x97\xa5", "u", 1, 0644);
	snprintf(path, sizeof(path), "%s/fifo", t);
	assert_int_equal(mkfifo(path, 0640), 0);

	/* folders: empty, deep, one with a listing over several blocks */
	mk(t, "emptydir", 0755);
	snprintf(path, sizeof(path), "deep");
	for (int i = 0; i < 40; i++) {
		mk(t, path, 0755);
		strcat(path, "/d");
	}
	strcat(path, "ile");
	put(t, path, "bottom", 6, 0644);
	mk(t, "many", 0755);
	for (int i = 0; i < 700; i++) {
		snprintf(path, sizeof(path), "many/file-with-a-longer-name-%04d", i);
		put(t, path, path, strlen(path), 0644);
	}
	assert_int_equal(chmod(t, 0700), 0); /* the image root is 0755 anyway */
}

/* ---- reading an image back ---------------------------------------------------- */

struct img {
	sqfs_file_t *file;
	sqfs_super_t super;
	sqfs_compressor_t *cmp;
	sqfs_id_table_t *ids;
	sqfs_dir_reader_t *dr;
	sqfs_data_reader_t *data;
	sqfs_tree_node_t *root;
};

static void img_open(struct img *im, const char *path)
{
	sqfs_compressor_config_t cfg;

	memset(im, 0, sizeof(*im));
	im->file = sqfs_open_file(path, SQFS_FILE_OPEN_READ_ONLY);
	assert_non_null(im->file);
	assert_int_equal(sqfs_super_read(&im->super, im->file), 0);
	assert_int_equal(sqfs_compressor_config_init(&cfg, im->super.compression_id,
						     im->super.block_size,
						     SQFS_COMP_FLAG_UNCOMPRESS), 0);
	assert_int_equal(sqfs_compressor_create(&cfg, &im->cmp), 0);
	if (im->super.flags & SQFS_FLAG_COMPRESSOR_OPTIONS)
		assert_true(im->cmp->read_options(im->cmp, im->file) >= 0);
	im->ids = sqfs_id_table_create(0);
	assert_non_null(im->ids);
	assert_int_equal(sqfs_id_table_read(im->ids, im->file, &im->super, im->cmp), 0);
	im->dr = sqfs_dir_reader_create(&im->super, im->cmp, im->file, 0);
	assert_non_null(im->dr);
	im->data = sqfs_data_reader_create(im->file, im->super.block_size, im->cmp, 0);
	assert_non_null(im->data);
	assert_int_equal(sqfs_data_reader_load_fragment_table(im->data, &im->super), 0);
	assert_int_equal(sqfs_dir_reader_get_full_hierarchy(im->dr, im->ids, NULL, 0,
							    &im->root), 0);
}

static void img_close(struct img *im)
{
	sqfs_dir_tree_destroy(im->root);
	sqfs_destroy(im->data);
	sqfs_destroy(im->dr);
	sqfs_destroy(im->ids);
	sqfs_destroy(im->cmp);
	sqfs_destroy(im->file);
}

static const sqfs_tree_node_t *child(const sqfs_tree_node_t *dir, const char *name)
{
	for (const sqfs_tree_node_t *c = dir->children; c; c = c->next)
		if (!strcmp((const char *)c->name, name))
			return c;
	return NULL;
}

static const sqfs_tree_node_t *lookup(const struct img *im, const char *path)
{
	const sqfs_tree_node_t *n = im->root;
	char buf[PATH_MAX], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strtok_r(buf, "/", &save); n && p; p = strtok_r(NULL, "/", &save))
		n = child(n, p);
	return n;
}

static uint32_t inode_nlink(const sqfs_inode_generic_t *in)
{
	switch (in->base.type) {
	case SQFS_INODE_DIR: return in->data.dir.nlink;
	case SQFS_INODE_EXT_DIR: return in->data.dir_ext.nlink;
	case SQFS_INODE_FILE: return 1;
	case SQFS_INODE_EXT_FILE: return in->data.file_ext.nlink;
	case SQFS_INODE_SLINK:
	case SQFS_INODE_EXT_SLINK: return in->data.slink.nlink;
	default: return in->data.ipc.nlink;
	}
}

/* Hard links: the host inode of each image inode seen so far. */
struct seen {
	uint32_t img_ino;
	ino_t host_ino;
};

struct walk {
	struct img *im;
	struct seen *seen;
	size_t n_seen;
	size_t entries;
};

static void check_link_identity(struct walk *w, uint32_t img_ino, ino_t host_ino)
{
	for (size_t i = 0; i < w->n_seen; i++) {
		if (w->seen[i].img_ino == img_ino)
			assert_true(w->seen[i].host_ino == host_ino);
		if (w->seen[i].host_ino == host_ino)
			assert_int_equal(w->seen[i].img_ino, img_ino);
	}
	w->seen = realloc(w->seen, (w->n_seen + 1) * sizeof(*w->seen));
	assert_non_null(w->seen);
	w->seen[w->n_seen++] = (struct seen){img_ino, host_ino};
}

static void compare_file(struct walk *w, int dfd, const char *name,
			 const sqfs_inode_generic_t *in, off_t size)
{
	sqfs_u64 isize;
	assert_int_equal(sqfs_inode_get_file_size(in, &isize), 0);
	assert_true(isize == (sqfs_u64)size);
	int fd = openat(dfd, name, O_RDONLY);
	assert_true(fd >= 0);
	unsigned char *a = malloc(BLK), *b = malloc(BLK);
	assert_non_null(a);
	assert_non_null(b);
	for (sqfs_u64 off = 0; off < isize; off += BLK) {
		size_t n = isize - off < BLK ? (size_t)(isize - off) : BLK;
		assert_int_equal(pread(fd, a, n, (off_t)off), (ssize_t)n);
		assert_int_equal(sqfs_data_reader_read(w->im->data, in, off, b, (sqfs_u32)n),
				 (sqfs_s32)n);
		assert_memory_equal(a, b, n);
	}
	free(a);
	free(b);
	close(fd);
}

/* Every entry of the host folder against the image folder, both ways. */
static void compare_dir(struct walk *w, int dfd, const sqfs_tree_node_t *dir,
			bool is_root)
{
	struct stat st;
	size_t n_host = 0, n_img = 0, subdirs = 0;

	assert_int_equal(fstat(dfd, &st), 0);
	assert_int_equal(dir->inode->base.mode & 07777, is_root ? 0755 : st.st_mode & 07777);
	assert_true(S_ISDIR(dir->inode->base.mode));
	for (const sqfs_tree_node_t *c = dir->children; c; c = c->next) {
		n_img++;
		if (c->next) /* listings are sorted */
			assert_true(strcmp((const char *)c->name, (const char *)c->next->name) < 0);
	}
	DIR *d = fdopendir(dup(dfd));
	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n_host++;
		w->entries++;
		const sqfs_tree_node_t *c = child(dir, de->d_name);
		if (!c) {
			fail_msg("'%s' is missing from the image", de->d_name);
			break;
		}
		const sqfs_inode_generic_t *in = c->inode;
		assert_int_equal(fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(in->base.mode & S_IFMT, st.st_mode & S_IFMT);
		assert_int_equal(in->base.mode & 07777, st.st_mode & 07777);
		assert_int_equal(c->uid, 0);
		assert_int_equal(c->gid, 0);
		assert_int_equal(in->base.mod_time,
				 st.st_mtime < 0 ? 0 : (uint32_t)st.st_mtime);
		if (S_ISREG(st.st_mode)) {
			compare_file(w, dfd, de->d_name, in, st.st_size);
			assert_int_equal(inode_nlink(in), st.st_nlink);
			check_link_identity(w, in->base.inode_number, st.st_ino);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t len = readlinkat(dfd, de->d_name, target, sizeof(target));
			assert_true(len > 0);
			assert_int_equal(in->data.slink.target_size, len);
			assert_memory_equal(in->extra, target, (size_t)len);
			assert_null(c->children);
		} else if (S_ISDIR(st.st_mode)) {
			subdirs++;
			int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			assert_true(sub >= 0);
			compare_dir(w, sub, c, false);
			close(sub);
		} else {
			assert_int_equal(inode_nlink(in), 1);
		}
	}
	closedir(d);
	assert_int_equal(n_host, n_img);
	assert_int_equal(inode_nlink(dir->inode), 2 + subdirs);
}

static void compare_tree(const char *tree, const char *image, size_t *entries)
{
	struct img im;
	struct walk w = {.im = &im};

	img_open(&im, image);
	int fd = open(tree, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	compare_dir(&w, fd, im.root, true);
	close(fd);
	/* inode numbers: 1..inode_count, each used once (hard links share) */
	assert_true(w.n_seen <= im.super.inode_count);
	if (entries)
		*entries = w.entries;
	free(w.seen);
	img_close(&im);
}

/* ---- tests ------------------------------------------------------------------ */

static void write_ok(struct fixture *fx, const struct berth_sqfs_opts *o,
		     struct berth_sqfs_stats *st)
{
	unlink(fx->out);
	if (berth_squashfs_write(fx->tree, fx->out, o, st, &fx->err) < 0)
		fail_msg("write: %s", fx->err.msg);
}

static void test_tree_roundtrip(void **state)
{
	struct fixture *fx = *state;
	struct berth_sqfs_stats st;
	struct stat fst;
	size_t entries;

	build_tree(fx->tree);
	if (geteuid() != 0) { /* only root reads a 0000 file */
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/m0000", fx->tree);
		unlink(p);
	}
	struct berth_sqfs_opts o = {.mkfs_time = MKFS_TIME};
	write_ok(fx, &o, &st);
	compare_tree(fx->tree, fx->out, &entries);
	assert_int_equal(stat(fx->out, &fst), 0);
	assert_true(fst.st_size % 4096 == 0);
	assert_true((uint64_t)fst.st_size == st.image_size);
	assert_true(st.bytes_used <= st.image_size && st.bytes_used > st.image_size - 4096);
	/* every entry is an inode but the extra names of hard links */
	assert_int_equal(st.inodes, entries + 1 - st.hardlinks);
	assert_int_equal(st.hardlinks, 3);
	assert_int_equal(st.others, 1); /* the fifo */
	assert_int_equal(st.symlinks, 6);

	struct img im;
	img_open(&im, fx->out);
	assert_int_equal(im.super.magic, SQFS_MAGIC);
	assert_int_equal(im.super.version_major, 4);
	assert_int_equal(im.super.version_minor, 0);
	assert_int_equal(im.super.compression_id, SQFS_COMP_ZSTD);
	assert_int_equal(im.super.block_size, BLK);
	assert_int_equal(im.super.modification_time, MKFS_TIME);
	assert_int_equal(im.super.inode_count, st.inodes);
	assert_int_equal(im.super.id_count, 1);
	assert_true(im.super.bytes_used == st.bytes_used);
	assert_true(im.super.flags & SQFS_FLAG_NO_XATTRS);
	assert_true(im.super.xattr_id_table_start == 0xFFFFFFFFFFFFFFFFull);
	/* the root: last inode, 0755, its parent one past the last */
	assert_int_equal(im.root->inode->base.inode_number, im.super.inode_count);
	assert_int_equal(im.root->inode->base.mode, S_IFDIR | 0755);
	/* the escape symlink is a symlink, not the host's root */
	const sqfs_tree_node_t *esc = lookup(&im, "escape");
	assert_non_null(esc);
	assert_true(S_ISLNK(esc->inode->base.mode));
	assert_null(esc->children);
	/* hard links: one inode, nlink 3 */
	const sqfs_tree_node_t *a = lookup(&im, "hl/a"), *c = lookup(&im, "hl2/c");
	assert_non_null(a);
	assert_non_null(c);
	assert_int_equal(a->inode->base.inode_number, c->inode->base.inode_number);
	assert_int_equal(inode_nlink(c->inode), 3);
	/* the big folder got a lookup index (an extended inode) */
	const sqfs_tree_node_t *many = lookup(&im, "many");
	assert_non_null(many);
	assert_int_equal(many->inode->base.type, SQFS_INODE_EXT_DIR);
	assert_true(many->inode->data.dir_ext.inodex_count > 0);
	assert_true(many->inode->data.dir_ext.xattr_idx == 0xFFFFFFFFu);
	const sqfs_tree_node_t *fifo = lookup(&im, "fifo");
	assert_non_null(fifo);
	assert_int_equal(fifo->inode->base.type, SQFS_INODE_FIFO);
	img_close(&im);
}

/* The id table's metadata block (one id: 4 bytes) is stored uncompressed
 * when compressing does not make it smaller, as unsquashfs insists: it
 * calls a longer "compressed" block corrupt (libsquashfs 1.2.0's lz4 wrote
 * one, and SingularityCE's --fakeroot unpacks SIFs with unsquashfs). */
static void assert_no_grown_block(const char *path, const sqfs_super_t *super)
{
	uint8_t ptr[8], hdr[2];
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, ptr, 8, (off_t)super->id_table_start), 8);
	uint64_t at = 0;
	for (int b = 7; b >= 0; b--)
		at = at << 8 | ptr[b];
	assert_int_equal(pread(fd, hdr, 2, (off_t)at), 2);
	close(fd);
	unsigned h = hdr[0] | (unsigned)hdr[1] << 8;
	unsigned len = h & 0x7fff, raw = 4u * super->id_count;
	if (!(h & 0x8000))
		assert_true(len < raw);
	else
		assert_int_equal(len, raw);
}

static void test_compressors(void **state)
{
	static const struct berth_sqfs_opts opts[] = {
		{.compressor = "gzip", .level = 1, .block_size = 4096},
		{.compressor = "lz4", .workers = 1},
		{.compressor = "lz4", .level = 1, .workers = 3, .backlog = 1},
		{.compressor = "xz", .block_size = 1 << 20},
		{.compressor = "zstd", .level = 19, .block_size = 8192, .workers = 2},
	};
	static const int ids[] = {SQFS_COMP_GZIP, SQFS_COMP_LZ4, SQFS_COMP_LZ4,
				  SQFS_COMP_XZ, SQFS_COMP_ZSTD};
	struct fixture *fx = *state;

	/* a smaller tree: files around the block sizes, a hard link, a symlink */
	put_random(fx->tree, "r1", 3 * 4096 + 5);
	put_random(fx->tree, "r2", 70000);
	put(fx->tree, "text", "hello hello hello hello\n", 24, 0755);
	ln(fx->tree, "r1", "r1-link");
	ln_s(fx->tree, "text", "sym");
	mk(fx->tree, "d", 0750);
	put_random(fx->tree, "d/inner", 9000);
	for (size_t i = 0; i < sizeof(opts) / sizeof(*opts); i++) {
		struct berth_sqfs_stats st;
		write_ok(fx, &opts[i], &st);
		compare_tree(fx->tree, fx->out, NULL);
		struct img im;
		img_open(&im, fx->out);
		assert_int_equal(im.super.compression_id, ids[i]);
		assert_int_equal(im.super.block_size,
				 opts[i].block_size ? opts[i].block_size : BLK);
		assert_no_grown_block(fx->out, &im.super);
		img_close(&im);
	}
}

static void test_sparse_and_zero_blocks(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX];
	struct berth_sqfs_stats st;

	snprintf(path, sizeof(path), "%s/hole", fx->tree);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 << 20), 0); /* 64 MiB, all hole */
	assert_int_equal(pwrite(fd, "end", 3, (64 << 20) - 3), 3);
	close(fd);
	write_ok(fx, NULL, &st);
	compare_tree(fx->tree, fx->out, NULL);
	assert_true(st.input_bytes == 64u << 20);
	/* the holes take no room in the image */
	assert_true(st.image_size < 64 * 1024);
}

static void test_offset_and_padding(void **state)
{
	struct fixture *fx = *state;
	struct berth_sqfs_stats st;
	unsigned char pre[5000], back[5000], magic[4];

	put_random(fx->tree, "f", 10000);
	memset(pre, 0xAB, sizeof(pre));
	int fd = open(fx->out, O_RDWR | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, pre, sizeof(pre)), (ssize_t)sizeof(pre));
	int dir = open(fx->tree, O_PATH | O_DIRECTORY);
	assert_true(dir >= 0);
	assert_int_equal(berth_squashfs_write_tree(dir, fd, sizeof(pre), NULL, &st, &fx->err), 0);
	struct stat fst;
	assert_int_equal(fstat(fd, &fst), 0);
	assert_true((uint64_t)fst.st_size == sizeof(pre) + st.image_size);
	assert_true(st.image_size % 4096 == 0);
	assert_int_equal(pread(fd, back, sizeof(back), 0), (ssize_t)sizeof(back));
	assert_memory_equal(pre, back, sizeof(pre));
	assert_int_equal(pread(fd, magic, 4, sizeof(pre)), 4);
	assert_memory_equal(magic, "hsqs", 4);
	/* zero padding after bytes_used */
	size_t pad = (size_t)(st.image_size - st.bytes_used);
	unsigned char *z = calloc(1, pad + 1), *r = malloc(pad + 1);
	assert_non_null(z);
	assert_non_null(r);
	assert_int_equal(pread(fd, r, pad, (off_t)(sizeof(pre) + st.bytes_used)), (ssize_t)pad);
	assert_memory_equal(z, r, pad);
	free(z);
	free(r);
	close(dir);
	close(fd);
}

/* berth_squashfs_has: a path looked up in an image written at an offset
 * (as in a SIF); only a missing component says "missing". */
static void test_has_path(void **state)
{
	struct fixture *fx = *state;
	struct berth_sqfs_stats st;
	char pre[8192] = {0};

	mk(fx->tree, "a", 0755);
	mk(fx->tree, "a/b", 0755);
	put_random(fx->tree, "a/f", 10);
	ln_s(fx->tree, "a", "l");
	int fd = open(fx->out, O_RDWR | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, pre, sizeof(pre)), (ssize_t)sizeof(pre));
	int dir = open(fx->tree, O_PATH | O_DIRECTORY);
	assert_true(dir >= 0);
	assert_int_equal(berth_squashfs_write_tree(dir, fd, sizeof(pre), NULL, &st, &fx->err), 0);
	static const struct { const char *path; int want; } cases[] = {
		{"/", 1}, {"/a", 1}, {"/a/b", 1}, {"/a/f", 1}, {"/l", 1},
		{"/nope", 0}, {"/a/nope", 0}, {"/a/b/c/d", 0},
		{"/a/f/x", 1}, /* through a file: not known to be missing */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int got = berth_squashfs_has(fd, sizeof(pre), st.image_size, cases[i].path, &fx->err);
		if (got != cases[i].want)
			fail_msg("%s: %d, not %d (%s)", cases[i].path, got, cases[i].want, fx->err.msg);
	}
	/* not a SquashFS there: an error, never "missing" */
	assert_int_equal(berth_squashfs_has(fd, 0, st.image_size, "/nope", &fx->err), -1);
	close(dir);
	close(fd);
}

static void test_deterministic(void **state)
{
	struct fixture *fx = *state;
	struct berth_sqfs_opts o = {.mkfs_time = MKFS_TIME, .workers = 2};
	char other[128];

	put_random(fx->tree, "a", 300000);
	put_random(fx->tree, "b", 1000);
	mk(fx->tree, "d", 0755);
	put_random(fx->tree, "d/c", 200000);
	write_ok(fx, &o, NULL);
	snprintf(other, sizeof(other), "%s/again.sqfs", fx->dir);
	assert_int_equal(berth_squashfs_write(fx->tree, other, &o, NULL, &fx->err), 0);
	FILE *f1 = fopen(fx->out, "rb"), *f2 = fopen(other, "rb");
	assert_non_null(f1);
	assert_non_null(f2);
	int c1, c2;
	do {
		c1 = fgetc(f1);
		c2 = fgetc(f2);
		assert_int_equal(c1, c2);
	} while (c1 != EOF);
	fclose(f1);
	fclose(f2);
}

static void test_bad_options(void **state)
{
	struct fixture *fx = *state;
	static const struct berth_sqfs_opts bad[] = {
		{.compressor = "lzo"},
		{.compressor = "bzip2"},
		{.block_size = 3000},
		{.block_size = 2 << 20},
		{.block_size = 2048},
		{.compressor = "zstd", .level = 23},
		{.compressor = "gzip", .level = 10},
		{.compressor = "xz", .level = 10},
		{.level = -1},
	};

	put(fx->tree, "f", "x", 1, 0644);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		memset(&fx->err, 0, sizeof(fx->err));
		assert_int_equal(berth_sqfs_opts_check(&bad[i], &fx->err), -1);
		assert_non_null(strstr(fx->err.msg, "SquashFS"));
		assert_int_equal(berth_squashfs_write(fx->tree, fx->out, &bad[i], NULL,
						      &fx->err), -1);
		assert_int_equal(access(fx->out, F_OK), -1); /* removed again */
	}
	assert_int_equal(berth_sqfs_opts_check(NULL, &fx->err), 0);
	struct berth_sqfs_opts good = {.compressor = "xz", .level = 9,
				       .block_size = 1 << 20};
	assert_int_equal(berth_sqfs_opts_check(&good, &fx->err), 0);
}

static void test_refusals(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX];

	/* an existing output is never overwritten */
	put(fx->dir, "out.sqfs", "keep", 4, 0644);
	assert_int_equal(berth_squashfs_write(fx->tree, fx->out, NULL, NULL, &fx->err), -1);
	assert_int_equal(fx->err.errnum, EEXIST);
	struct stat st;
	assert_int_equal(stat(fx->out, &st), 0);
	assert_int_equal(st.st_size, 4);
	/* a symlink at the output name is not followed either */
	snprintf(path, sizeof(path), "%s/link.sqfs", fx->dir);
	assert_int_equal(symlink(fx->out, path), 0);
	assert_int_equal(berth_squashfs_write(fx->tree, path, NULL, NULL, &fx->err), -1);
	assert_int_equal(stat(fx->out, &st), 0);
	assert_int_equal(st.st_size, 4);
	/* the root must be a folder */
	snprintf(path, sizeof(path), "%s/new.sqfs", fx->dir);
	assert_int_equal(berth_squashfs_write(fx->out, path, NULL, NULL, &fx->err), -1);
	assert_int_equal(fx->err.errnum, ENOTDIR);
	assert_non_null(strstr(fx->err.msg, fx->out));
	assert_int_equal(berth_squashfs_write("/nonexistent/x", path, NULL, NULL, &fx->err), -1);
	assert_int_equal(fx->err.errnum, ENOENT);
	assert_int_equal(access(path, F_OK), -1);
	/* a bad output fd: reported with its cause */
	int dir = open(fx->tree, O_PATH | O_DIRECTORY);
	assert_int_equal(berth_squashfs_write_tree(dir, -1, 0, NULL, NULL, &fx->err), -1);
	assert_int_equal(fx->err.errnum, EBADF);
	assert_int_equal(berth_squashfs_write_tree(dir, 1, -5, NULL, NULL, &fx->err), -1);
	close(dir);
}

static void test_root_only_dev(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX];

	if (geteuid() != 0)
		skip();
	snprintf(path, sizeof(path), "%s/null", fx->tree);
	assert_int_equal(mknod(path, S_IFCHR | 0666, makedev(1, 3)), 0);
	snprintf(path, sizeof(path), "%s/big", fx->tree);
	assert_int_equal(mknod(path, S_IFBLK | 0600, makedev(259, 300)), 0);
	write_ok(fx, NULL, NULL);
	compare_tree(fx->tree, fx->out, NULL);
	struct img im;
	img_open(&im, fx->out);
	const sqfs_tree_node_t *n = lookup(&im, "null"), *b = lookup(&im, "big");
	assert_non_null(n);
	assert_non_null(b);
	assert_int_equal(n->inode->base.type, SQFS_INODE_CDEV);
	assert_int_equal(n->inode->data.dev.devno, (1u << 8) | 3);
	assert_int_equal(b->inode->base.type, SQFS_INODE_BDEV);
	/* new_encode_dev: minor low byte, major, minor high bits << 12 */
	assert_int_equal(b->inode->data.dev.devno,
			 (300u & 0xff) | (259u << 8) | ((300u & ~0xffu) << 12));
	img_close(&im);
}

/* The converting user owns the tree; a file it may not read (mode 0000, as
 * /etc/shadow in RHEL-family images) is still read, and keeps mode 0000. */
static void test_unreadable_own_file(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX];
	const uid_t nobody = 65534;

	put(fx->tree, "shadow", "root:*:1::::::\n", 15, 0000);
	put(fx->tree, "plain", "x", 1, 0644);
	snprintf(path, sizeof(path), "%s/shadow", fx->tree);
	if (geteuid() == 0) {
		/* as root nothing is unreadable: write as an unprivileged owner */
		assert_int_equal(chown(fx->dir, nobody, nobody), 0);
		assert_int_equal(chown(fx->tree, nobody, nobody), 0);
		assert_int_equal(chown(path, nobody, nobody), 0);
		snprintf(path, sizeof(path), "%s/plain", fx->tree);
		assert_int_equal(chown(path, nobody, nobody), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct berth_err err;
			if (setgroups(0, NULL) < 0 || setresgid(nobody, nobody, nobody) < 0 ||
			    setresuid(nobody, nobody, nobody) < 0)
				_exit(3);
			int rc = berth_squashfs_write(fx->tree, fx->out, NULL, NULL, &err);
			if (rc < 0)
				fprintf(stderr, "child: %s\n", err.msg);
			_exit(rc < 0 ? 1 : 0);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	} else {
		write_ok(fx, NULL, NULL);
	}
	struct stat st;
	snprintf(path, sizeof(path), "%s/shadow", fx->tree);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0); /* put back */
	struct img im;
	img_open(&im, fx->out);
	const sqfs_tree_node_t *n = lookup(&im, "shadow");
	assert_non_null(n);
	assert_int_equal(n->inode->base.mode, S_IFREG | 0000);
	char buf[32] = {0};
	assert_int_equal(sqfs_data_reader_read(im.data, n->inode, 0, buf, 15), 15);
	assert_string_equal(buf, "root:*:1::::::\n");
	img_close(&im);
}


static bool keep_c2(void *arg, const char *path)
{
	(void)arg;
	return strcmp(path, "c/2") == 0;
}

/* ---- the merged index (squashfs_merge.c) ------------------------------------ */

static void merge_file(struct berth_sqfs_merge *m, const char *path, const char *data,
		       uint64_t at, uint64_t size, struct berth_err *err)
{
	if (berth_sqfs_merge_file_begin(m, path, 0644, 1600000000, err) < 0 ||
	    berth_sqfs_merge_file_data(m, at, data, strlen(data), err) < 0 ||
	    berth_sqfs_merge_file_end(m, size, err) < 0)
		fail_msg("%s: %s (%s)", path, err->msg, strerror(errno));
}

static void assert_errno(int rc, int e)
{
	assert_int_equal(rc, -1);
	assert_int_equal(errno, e);
}

static void assert_content(const struct img *im, const char *path, const char *want)
{
	const sqfs_tree_node_t *n = lookup(im, path);
	char buf[64] = {0};

	assert_non_null(n);
	assert_true(S_ISREG(n->inode->base.mode));
	assert_int_equal(sqfs_data_reader_read(im->data, n->inode, 0, buf, sizeof(buf) - 1),
			 (sqfs_s32)strlen(want));
	assert_string_equal(buf, want);
}

/* The path operations follow what the same change on a folder does: a
 * symlink on the way is refused, never followed; hard links share one
 * inode that outlives its first name; removed and replaced files leave
 * the listing; folders' link counts come from the final tree. */
static void test_merge_index(void **state)
{
	struct fixture *fx = *state;
	struct berth_sqfs_opts o = {.mkfs_time = MKFS_TIME};
	struct berth_sqfs_merge *m;
	struct berth_sqfs_stats st;
	char long_name[300];
	mode_t mode;
	size_t n;

	int fd = open(fx->out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	if (berth_sqfs_merge_new(fd, 0, &o, &m, &fx->err) < 0)
		fail_msg("%s", fx->err.msg);
	assert_int_equal(berth_sqfs_merge_mkdirs(m, "a/b", 0755), 0);
	assert_int_equal(berth_sqfs_merge_symlink(m, "l", "/etc", 1600000000), 0);
	assert_errno(berth_sqfs_merge_mkdirs(m, "l/x", 0755), ELOOP);
	assert_errno(berth_sqfs_merge_mkdirs(m, "l", 0755), ENOTDIR);
	assert_errno(berth_sqfs_merge_stat(m, "l/passwd", &mode), ELOOP);
	assert_errno(berth_sqfs_merge_symlink(m, "l", "x", 0), EEXIST);
	merge_file(m, "a/b/f", "hello", 0, 5, &fx->err);
	assert_errno(berth_sqfs_merge_mkdirs(m, "a/b/f/x", 0755), ENOTDIR);
	assert_errno(berth_sqfs_merge_clear(m, "l", NULL, NULL), ELOOP);
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_errno(berth_sqfs_merge_mkdirs(m, long_name, 0755), ENAMETOOLONG);
	/* hard links: one inode; the first name removed, the other stays */
	assert_int_equal(berth_sqfs_merge_link(m, "g", "a/b/f"), 0);
	assert_int_equal(berth_sqfs_merge_link(m, "h", "g"), 0);
	assert_errno(berth_sqfs_merge_link(m, "x", "a"), EPERM);
	assert_errno(berth_sqfs_merge_link(m, "x", "missing"), ENOENT);
	assert_int_equal(berth_sqfs_merge_link(m, "l2", "l"), 0); /* a symlink: copied */
	assert_int_equal(berth_sqfs_merge_remove(m, "a"), 0);
	assert_int_equal(berth_sqfs_merge_remove(m, "a"), 0); /* gone already */
	assert_errno(berth_sqfs_merge_stat(m, "a/b/f", &mode), ENOENT);
	/* an opaque folder: only what the predicate keeps stays */
	assert_int_equal(berth_sqfs_merge_mkdirs(m, "c", 0700), 0);
	merge_file(m, "c/1", "one", 0, 3, &fx->err);
	merge_file(m, "c/2", "two", 0, 3, &fx->err);
	assert_int_equal(berth_sqfs_merge_clear(m, "c", keep_c2, NULL), 1);
	assert_int_equal(berth_sqfs_merge_clear(m, "nope", keep_c2, NULL), 0);
	assert_int_equal(berth_sqfs_merge_count(m, "c", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(berth_sqfs_merge_rename(m, "c/2", "d"), 0);
	assert_int_equal(berth_sqfs_merge_count(m, "c", &n), 0);
	assert_int_equal(n, 0);
	/* replaced: the new content only; a sparse file with a hole */
	merge_file(m, "r", "first", 0, 5, &fx->err);
	assert_int_equal(berth_sqfs_merge_remove(m, "r"), 0);
	merge_file(m, "r", "second", 0, 6, &fx->err);
	merge_file(m, "sp", "x", 200000, 300000, &fx->err);
	assert_int_equal(berth_sqfs_merge_dir(m, "c", 01755, 1500000000), 0);
	assert_errno(berth_sqfs_merge_dir(m, "r", 0755, 0), EEXIST);
	if (berth_sqfs_merge_finish(m, &st, &fx->err) < 0)
		fail_msg("%s", fx->err.msg);
	berth_sqfs_merge_free(m);
	close(fd);

	struct img im;
	img_open(&im, fx->out);
	assert_null(lookup(&im, "a"));
	assert_null(lookup(&im, "c/1"));
	assert_content(&im, "g", "hello");
	assert_content(&im, "d", "two");
	assert_content(&im, "r", "second");
	const sqfs_tree_node_t *g = lookup(&im, "g"), *h = lookup(&im, "h");
	assert_int_equal(g->inode->base.inode_number, h->inode->base.inode_number);
	assert_int_equal(inode_nlink(g->inode), 2);
	const sqfs_tree_node_t *l2 = lookup(&im, "l2"), *c = lookup(&im, "c");
	assert_true(S_ISLNK(l2->inode->base.mode));
	assert_int_equal(c->inode->base.mode, S_IFDIR | 01755);
	assert_int_equal(c->inode->base.mod_time, 1500000000);
	assert_int_equal(inode_nlink(im.root->inode), 3); /* ".", "..", c */
	const sqfs_tree_node_t *sp = lookup(&im, "sp");
	uint64_t size = 0;
	sqfs_inode_get_file_size(sp->inode, &size);
	assert_int_equal(size, 300000);
	char byte = 0;
	assert_int_equal(sqfs_data_reader_read(im.data, sp->inode, 200000, &byte, 1), 1);
	assert_int_equal(byte, 'x');
	assert_int_equal(sqfs_data_reader_read(im.data, sp->inode, 100, &byte, 1), 1);
	assert_int_equal(byte, 0);
	img_close(&im);
	assert_int_equal(st.hardlinks, 1);
	assert_int_equal(st.symlinks, 2);
}

/* As deep and as long as the tree goes: 1200 levels (a depth of 512 was
 * refused, where the flattened tree took it), a file whose path is longer
 * than PATH_MAX in a folder whose path is not (refused, where the tree
 * made it); a folder of PATH_MAX bytes is ENAMETOOLONG, as on the tree. */
static void test_merge_deep(void **state)
{
	struct fixture *fx = *state;
	struct berth_sqfs_opts o = {.mkfs_time = MKFS_TIME};
	struct berth_sqfs_merge *m;
	struct berth_sqfs_stats st;
	char path[PATH_MAX + 256];
	size_t len = 0;

	int fd = open(fx->out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	if (berth_sqfs_merge_new(fd, 0, &o, &m, &fx->err) < 0)
		fail_msg("%s", fx->err.msg);
	for (int i = 0; i < 1200; i++)
		len += (size_t)snprintf(path + len, sizeof(path) - len, "%sd", i ? "/" : "");
	assert_int_equal(berth_sqfs_merge_mkdirs(m, path, 0755), 0);
	snprintf(path + len, sizeof(path) - len, "/bottom");
	merge_file(m, path, "deep", 0, 4, &fx->err);
	/* a folder of 4000 bytes and a name of 200: the whole path is longer
	 * than PATH_MAX, but the tree makes it (openat in the folder) */
	memset(path, 'e', sizeof(path));
	for (size_t i = 200; i < 4000; i += 200)
		path[i] = '/';
	path[4000] = '\0';
	assert_int_equal(berth_sqfs_merge_mkdirs(m, path, 0755), 0);
	path[4000] = '/';
	path[4201] = '\0';
	merge_file(m, path, "long", 0, 4, &fx->err);
	/* a folder of PATH_MAX bytes or more: ENAMETOOLONG, as the kernel has it */
	for (size_t i = 0; i < PATH_MAX + 2; i++)
		path[i] = i % 2 ? '/' : 'a';
	path[PATH_MAX + 2] = '\0';
	assert_errno(berth_sqfs_merge_mkdirs(m, path, 0755), ENAMETOOLONG);
	assert_errno(berth_sqfs_merge_file_begin(m, path, 0644, 0, &fx->err), ENAMETOOLONG);
	if (berth_sqfs_merge_finish(m, &st, &fx->err) < 0)
		fail_msg("%s", fx->err.msg);
	berth_sqfs_merge_free(m);
	close(fd);
	assert_int_equal(st.dirs, 1201 + 20); /* and the root, and the long path's */
	assert_int_equal(st.files, 2);
	struct img im;
	img_open(&im, fx->out);
	const sqfs_tree_node_t *n = im.root;
	for (int i = 0; i < 1200 && n; i++)
		n = n->children;
	assert_non_null(n);
	assert_string_equal((const char *)n->children->name, "bottom");
	img_close(&im);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(test_tree_roundtrip),
		T(test_compressors),
		T(test_sparse_and_zero_blocks),
		T(test_offset_and_padding),
		T(test_has_path),
		T(test_deterministic),
		T(test_bad_options),
		T(test_refusals),
		T(test_root_only_dev),
		T(test_unreadable_own_file),
		T(test_merge_index),
		T(test_merge_deep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
