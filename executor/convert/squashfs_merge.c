/* berth: a SquashFS image written from an in-memory index of the merged
 * tree, with no file created on disk (the flattener's other target, see
 * flatten.c and squashfs.h).
 *
 * The index is the SquashFS writer's own tree of nodes (squashfs_int.h),
 * changed in place as entries arrive: path operations with the semantics
 * of the folder the flattener would write (a symlink or a file on the way
 * is ELOOP or ENOTDIR, never followed; a missing folder is ENOENT or made;
 * a name is at most 255 bytes).  Each folder's children stay sorted by
 * name, so a lookup is a binary search and pass 2 needs no sort.
 *
 * A regular file's bytes go through the block processor while they arrive
 * (begin, data, end), so nothing is read twice.  A file that a later entry
 * replaces or a whiteout removes leaves its blocks in the image unreferenced
 * (the image grows by the compressed size of the bytes lower layers had that
 * upper layers replaced).  A removed node is never freed before the end: the
 * block processor may still write its inode's block list, and a hard link
 * may still name it.  Peak memory therefore grows with the number of entries
 * of all layers together (one node, about 120 bytes with its name, plus 4
 * bytes per data block of each file), plus the block processor's bounded
 * backlog; it does not grow with the files' sizes. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "executor/convert/squashfs_int.h"

#define MAX_NAME 255
/* As deep as a path the folder takes can go ("a/" per level below
 * PATH_MAX): the tree has no other depth limit, and the image must take
 * what the tree takes (a depth of 512 here refused images the tree took).
 * The writer's passes recurse once per level, with small frames. */
#define MAX_DEPTH (PATH_MAX / 2 + 1)

struct berth_sqfs_merge {
	struct writer *w;
	struct node **grave;      /* removed subtrees, freed after the image */
	size_t n_grave, cap_grave;
	struct node *cur;         /* the file whose data is arriving */
	uint64_t cur_off;
	time_t now;
	bool finished;
};

/* ---- the tree ------------------------------------------------------------ */

static struct node *holder_of(struct node *n)
{
	return n->link ? n->link : n;
}

static size_t child_pos(const struct node *dir, const char *name, bool *found)
{
	size_t lo = 0, hi = dir->n_children;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(dir->children[mid]->name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct node *child(const struct node *dir, const char *name)
{
	bool found;
	size_t i = child_pos(dir, name, &found);

	return found ? dir->children[i] : NULL;
}

/* Room for one more child of dir. */
static int reserve(struct node *dir)
{
	if (dir->n_children < dir->cap)
		return 0;
	size_t cap = dir->cap ? dir->cap * 2 : 8;
	struct node **c = reallocarray(dir->children, cap, sizeof(struct node *));
	if (!c)
		return -1;
	dir->children = c;
	dir->cap = cap;
	return 0;
}

/* n into dir's children at its sorted place (room reserved, name free). */
static void insert(struct node *dir, struct node *n)
{
	bool found;
	size_t at = child_pos(dir, n->name, &found);

	memmove(dir->children + at + 1, dir->children + at,
		(dir->n_children - at) * sizeof(struct node *));
	dir->children[at] = n;
	dir->n_children++;
	n->parent = dir;
}

static void detach(struct node *dir, struct node *n)
{
	bool found;
	size_t at = child_pos(dir, n->name, &found);

	memmove(dir->children + at, dir->children + at + 1,
		(dir->n_children - at - 1) * sizeof(struct node *));
	dir->n_children--;
	n->parent = NULL;
}

/* A new child `name` (len bytes) of dir, not there yet. */
static struct node *add_child(struct node *dir, const char *name, size_t len)
{
	if (!dir) { /* the root has no name to add */
		errno = EEXIST;
		return NULL;
	}
	if (len > MAX_NAME) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	struct node *n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strndup(name, len)) || reserve(dir) < 0) {
		if (n)
			free(n->name);
		free(n);
		errno = ENOMEM;
		return NULL;
	}
	n->nlink = 1;
	insert(dir, n);
	return n;
}

/* Removed entries stop counting as links of the files they name. */
static void unlink_tree(struct node *n)
{
	if (S_ISREG(n->mode))
		holder_of(n)->nlink--;
	for (size_t i = 0; i < n->n_children; i++)
		unlink_tree(n->children[i]);
}

static int bury(struct berth_sqfs_merge *m, struct node *n)
{
	if (m->n_grave == m->cap_grave) {
		size_t cap = m->cap_grave ? m->cap_grave * 2 : 64;
		struct node **g = reallocarray(m->grave, cap, sizeof(struct node *));
		if (!g) {
			errno = ENOMEM;
			return -1;
		}
		m->grave = g;
		m->cap_grave = cap;
	}
	detach(n->parent, n);
	unlink_tree(n);
	m->grave[m->n_grave++] = n;
	return 0;
}

/* Walk `path` (cleaned, relative; "" is the root).  With `make` >= 0 a
 * missing folder is created with that mode; *parent gets the folder of the
 * last component, *last the node there (NULL when missing), *base its
 * name.  -1 with errno as the folder's openat2(RESOLVE_NO_SYMLINKS) would
 * give: ELOOP at a symlink, ENOTDIR at a file, ENOENT when missing. */
static int walk(struct berth_sqfs_merge *m, const char *path, int make,
		struct node **parent, struct node **last, const char **base)
{
	struct node *dir = m->w->root;
	int depth = 0;

	/* the folder must fit in a path, as the tree's openat2() of it; the
	 * last name is taken relative to it (openat, mkdirat), so the whole
	 * path may be longer */
	const char *slash = strrchr(path, '/');
	if (slash && slash - path >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	*parent = NULL;
	*base = path;
	*last = dir;
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, "/");
		if (len > MAX_NAME || ++depth > MAX_DEPTH) {
			errno = len > MAX_NAME ? ENAMETOOLONG : ELOOP;
			return -1;
		}
		if (!S_ISDIR(dir->mode)) {
			errno = S_ISLNK(dir->mode) ? ELOOP : ENOTDIR;
			return -1;
		}
		char name[MAX_NAME + 1];
		memcpy(name, p, len);
		name[len] = '\0';
		struct node *n = child(dir, name);
		*parent = dir;
		*base = p;
		p += len;
		p += *p == '/';
		if (!n && make >= 0 && *p) {
			if (!(n = add_child(dir, name, len)))
				return -1;
			n->mode = (uint16_t)(S_IFDIR | (unsigned)make);
			n->mtime = berth_sqfs_clamp_time(m->now);
			n->nlink = 2;
		}
		if (!n && *p) {
			errno = ENOENT;
			return -1;
		}
		*last = n;
		dir = n;
	}
	return 0;
}

/* The folder `dir` itself, not made: ELOOP/ENOTDIR/ENOENT as above. */
static struct node *find_dir(struct berth_sqfs_merge *m, const char *dir)
{
	struct node *parent, *n;
	const char *base;

	if (walk(m, dir, -1, &parent, &n, &base) < 0)
		return NULL;
	if (!n) {
		errno = ENOENT;
		return NULL;
	}
	if (!S_ISDIR(n->mode)) {
		errno = S_ISLNK(n->mode) ? ELOOP : ENOTDIR;
		return NULL;
	}
	return n;
}

/* ---- path operations ----------------------------------------------------- */

int berth_sqfs_merge_stat(struct berth_sqfs_merge *m, const char *path, mode_t *mode)
{
	struct node *parent, *n;
	const char *base;

	if (walk(m, path, -1, &parent, &n, &base) < 0)
		return -1;
	if (!n) {
		errno = ENOENT;
		return -1;
	}
	*mode = holder_of(n)->mode;
	return 0;
}

int berth_sqfs_merge_mkdirs(struct berth_sqfs_merge *m, const char *dir, mode_t mode)
{
	struct node *parent, *n;
	const char *base;

	if (walk(m, dir, (int)(mode & 07777), &parent, &n, &base) < 0)
		return -1;
	if (!n) {
		if (!(n = add_child(parent, base, strlen(base))))
			return -1;
		n->mode = (uint16_t)(S_IFDIR | (mode & 07777));
		n->mtime = berth_sqfs_clamp_time(m->now);
		n->nlink = 2;
		return 0;
	}
	if (!S_ISDIR(n->mode)) {
		errno = ENOTDIR; /* as open(O_PATH | O_DIRECTORY | O_NOFOLLOW) */
		return -1;
	}
	return 0;
}

int berth_sqfs_merge_remove(struct berth_sqfs_merge *m, const char *path)
{
	struct node *parent, *n;
	const char *base;

	if (walk(m, path, -1, &parent, &n, &base) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!n || !parent)
		return 0; /* absent; the root itself is never removed */
	return bury(m, n);
}

int berth_sqfs_merge_clear(struct berth_sqfs_merge *m, const char *dir,
			   bool (*keep)(void *arg, const char *path), void *arg)
{
	struct node *d = find_dir(m, dir);
	char path[PATH_MAX];

	if (!d)
		return errno == ENOENT ? 0 : -1;
	for (size_t i = d->n_children; i-- > 0;) {
		snprintf(path, sizeof(path), "%s%s%s", dir, *dir ? "/" : "",
			 d->children[i]->name);
		if (!keep(arg, path) && bury(m, d->children[i]) < 0)
			return -1;
	}
	return 1;
}

/* A new entry at `path`: its folder must exist, the name be free. */
static struct node *new_entry(struct berth_sqfs_merge *m, const char *path, mode_t mode,
			      time_t mtime)
{
	struct node *parent, *n;
	const char *base;

	if (walk(m, path, -1, &parent, &n, &base) < 0)
		return NULL;
	if (n) {
		errno = EEXIST;
		return NULL;
	}
	if (!(n = add_child(parent, base, strlen(base))))
		return NULL;
	n->mode = (uint16_t)mode;
	n->mtime = berth_sqfs_clamp_time(mtime);
	return n;
}

int berth_sqfs_merge_dir(struct berth_sqfs_merge *m, const char *path, mode_t mode,
			 time_t mtime)
{
	struct node *parent, *n;
	const char *base;

	if (walk(m, path, -1, &parent, &n, &base) < 0)
		return -1;
	if (n && !S_ISDIR(n->mode)) {
		errno = EEXIST;
		return -1;
	}
	if (!n && !(n = new_entry(m, path, S_IFDIR, mtime)))
		return -1;
	n->mode = (uint16_t)(S_IFDIR | (mode & 07777));
	n->mtime = berth_sqfs_clamp_time(mtime);
	if (n->nlink < 2)
		n->nlink = 2;
	return 0;
}

int berth_sqfs_merge_symlink(struct berth_sqfs_merge *m, const char *path,
			     const char *target, time_t mtime)
{
	char *copy = strdup(target);
	struct node *n = copy ? new_entry(m, path, S_IFLNK | 0777, mtime) : NULL;

	if (!n) {
		if (!copy)
			errno = ENOMEM;
		free(copy);
		return -1;
	}
	n->target = copy;
	return 0;
}

/* `path` becomes another name of `target`'s file, as linkat() without
 * AT_SYMLINK_FOLLOW: a folder is EPERM, a symlink is linked itself (here:
 * copied, as the tree writer stores a hard-linked symlink). */
int berth_sqfs_merge_link(struct berth_sqfs_merge *m, const char *path, const char *target)
{
	struct node *parent, *t;
	const char *base;

	if (walk(m, target, -1, &parent, &t, &base) < 0)
		return -1;
	if (!t) {
		errno = ENOENT;
		return -1;
	}
	if (!parent || S_ISDIR(t->mode)) {
		errno = EPERM;
		return -1;
	}
	if (S_ISLNK(t->mode))
		return berth_sqfs_merge_symlink(m, path, t->target, t->mtime);
	struct node *h = holder_of(t);
	struct node *n = new_entry(m, path, h->mode, h->mtime);
	if (!n)
		return -1;
	n->link = h;
	h->nlink++;
	return 0;
}

/* The node itself moves (its address stays: the block processor may still
 * write its file's block list). */
int berth_sqfs_merge_rename(struct berth_sqfs_merge *m, const char *from, const char *to)
{
	struct node *fp, *f, *tp, *t;
	const char *fbase, *tbase;

	if (walk(m, from, -1, &fp, &f, &fbase) < 0 || walk(m, to, -1, &tp, &t, &tbase) < 0)
		return -1;
	if (!f || !fp) {
		errno = ENOENT;
		return -1;
	}
	if (t || !tp) {
		errno = EEXIST; /* berth renames to a free name only */
		return -1;
	}
	if (S_ISDIR(f->mode)) {
		errno = EISDIR; /* a folder could be moved into itself */
		return -1;
	}
	char *name = strdup(tbase);
	if (!name || reserve(tp) < 0) {
		free(name);
		errno = ENOMEM;
		return -1;
	}
	detach(fp, f);
	free(f->name);
	f->name = name;
	insert(tp, f);
	return 0;
}

int berth_sqfs_merge_count(struct berth_sqfs_merge *m, const char *dir, size_t *n)
{
	struct node *d = find_dir(m, dir);

	if (!d)
		return -1;
	*n = d->n_children;
	return 0;
}

/* ---- file data ----------------------------------------------------------- */

int berth_sqfs_merge_file_begin(struct berth_sqfs_merge *m, const char *path, mode_t mode,
				time_t mtime, struct berth_err *err)
{
	struct node *n = new_entry(m, path, S_IFREG | (mode & 07777), mtime);

	if (!n)
		return -1;
	int rc = sqfs_block_processor_begin_file(m->w->proc, &n->inode, NULL, 0);
	if (rc) {
		berth_sqfs_fail(m->w, err, rc, path);
		errno = 0;
		return -1;
	}
	m->cur = n;
	m->cur_off = 0;
	return 0;
}

static int append(struct berth_sqfs_merge *m, const void *buf, size_t len,
		  struct berth_err *err)
{
	int rc = len ? sqfs_block_processor_append(m->w->proc, buf, len) : 0;

	if (rc)
		return berth_sqfs_fail(m->w, err, rc, m->cur ? m->cur->name : "file");
	m->cur_off += len;
	m->w->stats.input_bytes += len;
	return 0;
}

/* Zeros up to `to` (a hole of a sparse entry: stored as sparse blocks). */
static int fill_to(struct berth_sqfs_merge *m, uint64_t to, struct berth_err *err)
{
	static const unsigned char zeros[65536];

	while (m->cur_off < to) {
		uint64_t n = to - m->cur_off;
		if (append(m, zeros, n < sizeof(zeros) ? (size_t)n : sizeof(zeros), err) < 0)
			return -1;
	}
	return 0;
}

int berth_sqfs_merge_file_data(struct berth_sqfs_merge *m, uint64_t offset,
			       const void *buf, size_t len, struct berth_err *err)
{
	if (offset < m->cur_off)
		return berth_fail(err, 0, "SquashFS image: data of %s goes backwards "
				  "(offset %llu after %llu)", m->cur ? m->cur->name : "file",
				  (unsigned long long)offset, (unsigned long long)m->cur_off);
	if (fill_to(m, offset, err) < 0)
		return -1;
	return append(m, buf, len, err);
}

int berth_sqfs_merge_file_end(struct berth_sqfs_merge *m, uint64_t size,
			      struct berth_err *err)
{
	if (fill_to(m, size, err) < 0)
		return -1;
	int rc = sqfs_block_processor_end_file(m->w->proc);
	m->cur = NULL;
	if (rc)
		return berth_sqfs_fail(m->w, err, rc, "file end");
	return 0;
}

/* ---- the image ----------------------------------------------------------- */

int berth_sqfs_merge_new(int out_fd, off_t offset, const struct berth_sqfs_opts *o,
			 struct berth_sqfs_merge **out, struct berth_err *err)
{
	struct berth_sqfs_merge *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m || !(m->w = calloc(1, sizeof(*m->w)))) {
		free(m);
		return berth_fail(err, ENOMEM, "SquashFS writer");
	}
	m->now = o && o->mkfs_time ? o->mkfs_time : time(NULL);
	if (berth_sqfs_writer_init(m->w, out_fd, offset, o, err) < 0 ||
	    !(m->w->root = calloc(1, sizeof(*m->w->root)))) {
		if (m->w->proc && !m->w->root)
			berth_fail(err, ENOMEM, "SquashFS image");
		berth_sqfs_merge_free(m);
		return -1;
	}
	m->w->root->mode = S_IFDIR | 0755; /* as Apptainer's builds have it */
	m->w->root->mtime = berth_sqfs_clamp_time(m->now);
	m->w->root->nlink = 2;
	*out = m;
	return 0;
}

/* Folders' link counts and the counters, from the final tree (a regular
 * file's devno, unused in its inode, marks it counted). */
static void count(struct writer *w, struct node *dir)
{
	dir->nlink = 2;
	w->stats.dirs++;
	for (size_t i = 0; i < dir->n_children; i++) {
		struct node *c = dir->children[i];
		if (S_ISDIR(c->mode)) {
			dir->nlink++;
			count(w, c);
		} else if (S_ISLNK(c->mode)) {
			w->stats.symlinks++;
		} else if (holder_of(c)->devno) { /* a file's mark: seen */
			w->stats.hardlinks++;
		} else {
			holder_of(c)->devno = 1;
			w->stats.files++;
		}
	}
}

int berth_sqfs_merge_finish(struct berth_sqfs_merge *m, struct berth_sqfs_stats *stats,
			    struct berth_err *err)
{
	m->w->stats.dirs = m->w->stats.files = 0;
	count(m->w, m->w->root);
	m->finished = true;
	if (berth_sqfs_writer_finish(m->w, err) < 0)
		return -1;
	if (stats)
		*stats = m->w->stats;
	return 0;
}

void berth_sqfs_merge_free(struct berth_sqfs_merge *m)
{
	if (!m)
		return;
	/* Given up half way: libsquashfs 1.2's serial block processor (one
	 * worker) leaks the blocks it holds when destroyed unfinished, so it
	 * is finished first; what it writes is thrown away with the output. */
	if (!m->finished && m->w->proc) {
		if (m->cur)
			sqfs_block_processor_end_file(m->w->proc);
		sqfs_block_processor_finish(m->w->proc);
	}
	berth_sqfs_writer_free(m->w); /* stops the block processor first */
	for (size_t i = 0; i < m->n_grave; i++)
		berth_sqfs_node_free(m->grave[i]);
	free(m->grave);
	free(m);
}
