/* berth: the SquashFS writer's in-memory tree and pass 1, which fills it:
 * one node per entry, kept until its inode is written, and the hard-link
 * map from (device, inode) to the first node of a file; pass 1 reads the
 * rootfs in sorted order, never leaving it, and streams each regular
 * file's data through the block processor as it is met (see squashfs.c). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/convert/squashfs_int.h"

/* ---- the in-memory tree -------------------------------------------------- */

void berth_sqfs_node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n_children; i++)
		berth_sqfs_node_free(n->children[i]);
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

/* ---- pass 1: read the tree, stream file data ------------------------------ */

#define MAX_DEPTH 512

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
			return berth_sqfs_fail(w, err, rc, w->path);
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
		ssize_t n = berth_pread_full(fd, w->buf, want, (off_t)from);
		if (n < 0)
			return berth_fail(err, errno, "SquashFS image: cannot read %s",
					  w->path);
		if (n == 0)
			return berth_fail(err, 0, "SquashFS image: %s shrank while it "
					  "was being read", w->path);
		int rc = sqfs_block_processor_append(w->proc, w->buf, (size_t)n);
		if (rc)
			return berth_sqfs_fail(w, err, rc, w->path);
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
		return berth_sqfs_fail(w, err, rc, w->path);
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
		return berth_sqfs_fail(w, err, rc, w->path);
	w->stats.input_bytes += size;
	return 0;
}

static bool same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

/* Open a regular file for reading.  The tree is the converting user's own
 * (flatten wrote it with the image's modes): a file its owner may not read,
 * like the mode 0000 /etc/shadow of RHEL-family images, is made readable
 * for the moment of the open through its O_PATH fd (so exactly that inode,
 * never a symlink) and its mode put back at once; the image records the
 * original mode. */
static int open_file(int dir_fd, const char *name, const struct stat *st)
{
	int fd = berth_open_child(dir_fd, name, O_RDONLY);

	if (fd >= 0 || errno != EACCES || st->st_uid != geteuid())
		return fd;
	_cleanup_close_ int pfd = berth_open_child(dir_fd, name, O_PATH);
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
	n->mtime = berth_sqfs_clamp_time(st.st_mtime);
	n->nlink = 1;
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR: {
		/* Without openat2() berth_open_child crosses a mount: the
		 * device number tells one. */
		if (st.st_dev != w->root_dev) {
			return berth_fail(err, EXDEV, "SquashFS image: cannot open folder "
					  "%s (a mount point inside the tree is not "
					  "followed)", w->path);
		}
		_cleanup_close_ int fd = berth_open_child(dir_fd, name, O_RDONLY | O_DIRECTORY);
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
		return berth_sqfs_scan_dir(w, fd, n, depth + 1, err);
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

int berth_sqfs_scan_dir(struct writer *w, int dir_fd, struct node *dir, int depth,
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
