/* berth: apply image layers into a rootfs folder, safely.
 *
 * Every path is resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
 * relative to the rootfs, so no entry can reach outside it: not with "..",
 * not with an absolute name, not through a symlink or a chain of them (the
 * layers may create symlinks; we never follow one while writing).  New files
 * are created with O_EXCL | O_NOFOLLOW after removing what was there, which
 * is also the layer-replaces-lower semantics.  Device nodes, fifos and
 * sockets are skipped and counted; setuid/setgid bits are dropped.  Folders
 * get u+rwx so later layers (and cache eviction) can change them as the
 * unprivileged owner.
 *
 * Whiteouts follow the OCI rules: ".wh.NAME" deletes NAME from lower layers,
 * ".wh..wh..opq" empties its folder of everything lower layers put there.
 * To honour "lower layers" exactly, paths created by the current layer are
 * remembered as 64-bit hashes (8 bytes each, the layer's entry count bounds
 * it), not as strings.
 *
 * The same merge has two targets: a folder on disk (berth_image_flatten)
 * or the in-memory index of a SquashFS image written as the layers stream
 * (berth_image_flatten_squashfs, squashfs_merge.c), which creates no file.
 * Everything up to the change itself is shared: reading and checking the
 * layers, names, whiteout rules, what is refused or skipped, the modes; only
 * the last step, the change of the tree, has one function per target
 * (the merge_* ones below the folder's). */
#define _GNU_SOURCE
#include "executor/base/dl/archive_lazy.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "executor/source/tarmember.h"
#include "executor/base/fs.h"
#include "executor/convert/flatten.h"
#include "executor/convert/squashfs.h"

#define WHITEOUT ".wh."
#define OPAQUE ".wh..wh..opq"
#define BLOCK (256 * 1024)

/* ---- set of path hashes created in the current layer ---------------------- */

struct hashset {
	uint64_t *slots; /* 0 = empty */
	size_t cap, used;
};

static uint64_t path_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ? h : 1;
}

static int hashset_add(struct hashset *set, uint64_t h)
{
	if ((set->used + 1) * 2 > set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 1024;
		uint64_t *slots = calloc(cap, sizeof(*slots));
		if (!slots)
			return -1;
		for (size_t i = 0; i < set->cap; i++) {
			if (!set->slots[i])
				continue;
			size_t j = set->slots[i] & (cap - 1);
			while (slots[j])
				j = (j + 1) & (cap - 1);
			slots[j] = set->slots[i];
		}
		free(set->slots);
		set->slots = slots;
		set->cap = cap;
	}
	size_t j = h & (set->cap - 1);
	while (set->slots[j] && set->slots[j] != h)
		j = (j + 1) & (set->cap - 1);
	if (!set->slots[j]) {
		set->slots[j] = h;
		set->used++;
	}
	return 0;
}

static bool hashset_has(const struct hashset *set, uint64_t h)
{
	if (!set->cap)
		return false;
	for (size_t j = h & (set->cap - 1); set->slots[j]; j = (j + 1) & (set->cap - 1))
		if (set->slots[j] == h)
			return true;
	return false;
}

static void hashset_clear(struct hashset *set)
{
	if (set->slots)
		memset(set->slots, 0, set->cap * sizeof(*set->slots));
	set->used = 0;
}

/* ---- state ------------------------------------------------------------------ */

struct flatten {
	int root_fd;
	const char *layer;        /* member name, for messages */
	struct hashset created;   /* this layer's paths */
	struct berth_flatten_stats *stats;
	/* cache of the last parent folder opened: entries come grouped */
	char parent_path[PATH_MAX];
	int parent_fd;
	/* the SquashFS target instead of the folder (root_fd is then -1) */
	struct berth_sqfs_merge *merge;
	mode_t dir_mode;          /* of a folder made for a missing parent */
};

static void forget_parent(struct flatten *f);

/* ---- path handling -------------------------------------------------------- */

/* Normalise a member name in place: strip "./" and "/" runs, refuse "..",
 * absolute names and empty names.  Returns -1 with a message naming it. */
static int clean_name(char *name, const struct flatten *f, struct berth_err *err)
{
	char *out = name;
	const char *p = name;

	if (*p == '/')
		return berth_fail(err, 0, "layer %s: absolute entry '%s' refused; "
				  "image layers hold relative paths only",
				  f->layer, name);
	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return berth_fail(err, 0, "layer %s: entry with '..' refused "
					  "(it would write outside the image)",
					  f->layer);
		if (len && !(len == 1 && p[0] == '.')) {
			if (out != name)
				*out++ = '/';
			memmove(out, p, len);
			out += len;
		}
		p = *end ? end + 1 : end;
	}
	*out = '\0';
	return 0;
}

static int resolve(int root_fd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)flags | O_CLOEXEC | O_NOFOLLOW,
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};

	return (int)syscall(SYS_openat2, root_fd, *path ? path : ".", &how,
			    sizeof(how));
}

static int dir_fail(const struct flatten *f, const char *dir, struct berth_err *err)
{
	return berth_fail(err, errno, "layer %s: cannot use folder '%s'%s",
			  f->layer, dir,
			  errno == ELOOP || errno == EXDEV || errno == ENOTDIR
				  ? " (a component is a symlink or not a folder; "
				    "berth never writes through symlinks)"
				  : "");
}

/* Open (creating as needed) the folder `dir` under the root, one component
 * at a time: mkdirat() gets a single name relative to a folder already
 * resolved without symlinks, so a symlinked component can never redirect it. */
static int open_dir_p(struct flatten *f, const char *dir, struct berth_err *err)
{
	char name[PATH_MAX];
	int fd = resolve(f->root_fd, dir, O_PATH | O_DIRECTORY, 0);

	if (fd >= 0)
		return fd;
	if (errno == ENOENT) {
		fd = resolve(f->root_fd, "", O_PATH | O_DIRECTORY, 0);
		for (const char *p = dir; fd >= 0 && *p;) {
			size_t len = strcspn(p, "/");
			snprintf(name, sizeof(name), "%.*s", (int)len, p);
			if (mkdirat(fd, name, 0755) < 0 && errno != EEXIST)
				break;
			int next = resolve(fd, name, O_PATH | O_DIRECTORY, 0);
			int saved = errno;
			close(fd);
			fd = next;
			errno = saved;
			p += len;
			p += *p == '/';
		}
		if (fd >= 0)
			return fd;
	}
	return dir_fail(f, dir, err);
}

/* Split "a/b/c" into the parent's fd and "c".  The parent fd is cached. */
static int parent_of(struct flatten *f, char *path, const char **base,
		     struct berth_err *err)
{
	char *slash = strrchr(path, '/');
	const char *dir = slash ? path : "";

	if (slash)
		*slash = '\0';
	*base = slash ? slash + 1 : path;
	if (f->parent_fd >= 0 && strcmp(f->parent_path, dir) == 0)
		goto out;
	if (f->parent_fd >= 0)
		close(f->parent_fd);
	f->parent_fd = -1;
	f->parent_path[0] = '\0';
	int fd = open_dir_p(f, dir, err);
	if (fd < 0) {
		if (slash)
			*slash = '/';
		return -1;
	}
	f->parent_fd = fd;
	snprintf(f->parent_path, sizeof(f->parent_path), "%s", dir);
out:
	if (slash)
		*slash = '/';
	return f->parent_fd;
}

static void forget_parent(struct flatten *f)
{
	if (f->parent_fd >= 0)
		close(f->parent_fd);
	f->parent_fd = -1;
	f->parent_path[0] = '\0';
}

/* ---- whiteouts -------------------------------------------------------------- */

static bool created_here(void *arg, const char *path)
{
	const struct flatten *f = arg;

	return hashset_has(&f->created, path_hash(path));
}

static int merge_opaque(struct flatten *f, const char *dir, struct berth_err *err)
{
	int rc = berth_sqfs_merge_clear(f->merge, dir, created_here, f);

	if (rc < 0)
		return berth_fail(err, errno, "layer %s: opaque folder '%s'", f->layer, dir);
	f->stats->whiteouts += (uint64_t)rc;
	return 0;
}

static int apply_opaque(struct flatten *f, char *path, struct berth_err *err)
{
	char *slash = strrchr(path, '/');
	const char *dir = slash ? (*slash = '\0', path) : "";

	if (f->merge)
		return merge_opaque(f, dir, err);
	int fd = resolve(f->root_fd, dir, O_RDONLY | O_DIRECTORY, 0);

	if (fd < 0 && errno == ENOENT)
		return 0; /* nothing below to hide */
	if (fd < 0)
		return berth_fail(err, errno, "layer %s: opaque folder '%s'",
				  f->layer, dir);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return berth_fail(err, errno, "layer %s: opaque folder '%s'", f->layer, dir);
	}
	struct dirent *de;
	char child[PATH_MAX];
	int rc = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(child, sizeof(child), "%s%s%s", dir, *dir ? "/" : "", de->d_name);
		if (created_here(f, child))
			continue; /* this layer's own entry */
		if (berth_remove_tree(dirfd(d), de->d_name) < 0)
			rc = berth_fail(err, errno, "layer %s: cannot clear '%s'",
					f->layer, child);
	}
	closedir(d);
	forget_parent(f); /* folders below may be gone */
	f->stats->whiteouts++;
	return rc;
}

/* The folder part of `path` ("" at the top) into buf; NULL with
 * ENAMETOOLONG when it does not fit, as the tree's openat2() of that folder
 * fails (cut short, it would name another folder). */
static const char *dir_part(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	snprintf(buf, len, "%.*s", (int)n, path);
	if (n >= len) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return buf;
}

static int merge_whiteout(struct flatten *f, const char *path, const char *victim,
			  struct berth_err *err)
{
	char dir[PATH_MAX], gone[PATH_MAX + NAME_MAX + 2];

	if (!dir_part(path, dir, sizeof(dir)) ||
	    berth_sqfs_merge_mkdirs(f->merge, dir, f->dir_mode) < 0)
		return dir_fail(f, dir, err);
	/* room for the folder and a whole name: the tree's unlinkat() takes
	 * the name alone, so a cut one here would remove another entry */
	if (snprintf(gone, sizeof(gone), "%s%s%s", dir, *dir ? "/" : "", victim) >=
	    (int)sizeof(gone)) {
		errno = ENAMETOOLONG;
		return berth_fail(err, errno, "layer %s: whiteout '%s'", f->layer, path);
	}
	if (berth_sqfs_merge_remove(f->merge, gone) < 0)
		return berth_fail(err, errno, "layer %s: whiteout '%s'", f->layer, path);
	f->stats->whiteouts++;
	return 0;
}

static int apply_whiteout(struct flatten *f, char *path, struct berth_err *err)
{
	const char *last = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	const char *victim = last + strlen(WHITEOUT);

	/* checked before any change, the same for both targets */
	if (!*victim || !strcmp(victim, ".") || !strcmp(victim, "..") ||
	    strchr(victim, '/'))
		return berth_fail(err, 0, "layer %s: invalid whiteout '%s' refused "
				  "(a whiteout must name one entry of its own "
				  "folder, not '.', '..' or a path); the image is "
				  "malformed or malicious", f->layer, path);
	if (f->merge)
		return merge_whiteout(f, path, victim, err);
	const char *base;
	int pfd = parent_of(f, path, &base, err);
	if (pfd < 0)
		return -1;
	victim = base + strlen(WHITEOUT);
	if (berth_remove_tree(pfd, victim) < 0)
		return berth_fail(err, errno, "layer %s: whiteout '%s'", f->layer, path);
	f->stats->whiteouts++;
	return 0;
}

/* Record `path` and its ancestors as this layer's (an opaque marker must
 * keep "a/b" when this layer wrote "a/b/c", even without an entry "a/b"). */
static int remember_created(struct flatten *f, const char *path)
{
	uint64_t h = 1469598103934665603ull;

	for (const char *p = path;; p++) {
		if (*p == '/' || !*p) {
			if (hashset_add(&f->created, h ? h : 1) < 0)
				return -1;
			if (!*p)
				return 0;
		}
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	}
}

/* ---- entries ------------------------------------------------------------------ */

static mode_t safe_mode(struct flatten *f, mode_t mode)
{
	if (mode & (S_ISUID | S_ISGID))
		f->stats->dropped_setid++;
	return mode & 01777;
}

/* Make room for a new entry `base` in pfd: anything there goes, except a
 * folder when a folder is wanted (folders merge). */
static int make_room(int pfd, const char *base, bool want_dir)
{
	struct stat st;

	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (want_dir && S_ISDIR(st.st_mode))
		return 0;
	return berth_remove_tree(pfd, base);
}

static int write_data(struct archive *layer, int fd, struct flatten *f,
		      const char *path, struct berth_err *err)
{
	const void *buf;
	size_t size;
	la_int64_t offset, written = 0;
	int rc;

	while ((rc = archive_read_data_block(layer, &buf, &size, &offset)) == ARCHIVE_OK) {
		if (offset != written && lseek(fd, offset, SEEK_SET) < 0)
			return berth_fail(err, errno, "layer %s: seek in '%s'", f->layer, path);
		if (berth_write_all(fd, buf, size) < 0)
			return berth_fail(err, errno, "layer %s: cannot write '%s'", f->layer, path);
		written = offset + (la_int64_t)size;
		f->stats->bytes += size;
	}
	if (rc != ARCHIVE_EOF)
		return berth_fail(err, 0,
				  "layer %s is damaged or the image archive is "
				  "truncated inside '%s' (%s); download, save or "
				  "pull the image again", f->layer, path,
				  archive_error_string(layer));
	if (ftruncate(fd, written) < 0) /* sparse tail */
		return berth_fail(err, errno, "layer %s: '%s'", f->layer, path);
	return 0;
}

static void set_mtime(int pfd, const char *base, struct archive_entry *e)
{
	struct timespec ts[2] = {
		{.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)},
		{.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)},
	};

	utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW);
}

static int put_file(struct flatten *f, struct archive *layer, struct archive_entry *e,
		    int pfd, const char *base, const char *path, struct berth_err *err)
{
	mode_t mode = safe_mode(f, archive_entry_perm(e));
	_cleanup_close_ int fd = openat(pfd, base,
					O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					0600);

	if (fd < 0)
		return berth_fail(err, errno, "layer %s: cannot create '%s'", f->layer, path);
	if (write_data(layer, fd, f, path, err) < 0)
		return -1;
	if (fchmod(fd, mode) < 0)
		return berth_fail(err, errno, "layer %s: chmod '%s'", f->layer, path);
	struct timespec ts[2] = {
		{.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)},
		{.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)},
	};
	futimens(fd, ts);
	return 0;
}

/* A hard link's target, cleaned like every name (malloc'd). */
static char *link_target(struct flatten *f, struct archive_entry *e, const char *path,
			 struct berth_err *err)
{
	char *target = strdup(archive_entry_hardlink(e));

	if (!target) {
		berth_fail(err, ENOMEM, "hard link");
		return NULL;
	}
	if (clean_name(target, f, err) < 0) {
		berth_wrap(err, "hard link '%s'", path);
		free(target);
		return NULL;
	}
	if (!*target) {
		berth_fail(err, 0, "layer %s: hard link '%s' has no target", f->layer, path);
		free(target);
		return NULL;
	}
	return target;
}

static int put_hardlink(struct flatten *f, struct archive_entry *e, int pfd,
			const char *base, const char *path, struct berth_err *err)
{
	_cleanup_free_ char *target = link_target(f, e, path, err);
	const char *tbase;

	if (!target)
		return -1;
	/* The target's folder is resolved without symlinks as well; keep our
	 * own parent fd, because parent_of() caches only one folder. */
	_cleanup_close_ int own = dup(pfd);
	int tfd = parent_of(f, target, &tbase, err);
	if (tfd < 0 || own < 0)
		return berth_wrap(err, "hard link '%s' -> '%s'", path, target);
	if (linkat(tfd, tbase, own, base, 0) < 0)
		return berth_fail(err, errno, "layer %s: hard link '%s' -> '%s'",
				  f->layer, path, target);
	return 0;
}

/* ---- entries into the SquashFS index ----------------------------------------- */

static int merge_hardlink(struct flatten *f, struct archive_entry *e, const char *path,
			  struct berth_err *err)
{
	_cleanup_free_ char *target = link_target(f, e, path, err);
	char dir[PATH_MAX];

	if (!target)
		return -1;
	/* the target's folder is made when missing, as parent_of() does */
	if (!dir_part(target, dir, sizeof(dir)) ||
	    berth_sqfs_merge_mkdirs(f->merge, dir, f->dir_mode) < 0) {
		dir_fail(f, dir, err);
		return berth_wrap(err, "hard link '%s' -> '%s'", path, target);
	}
	if (berth_sqfs_merge_link(f->merge, path, target) < 0)
		return berth_fail(err, errno, "layer %s: hard link '%s' -> '%s'",
				  f->layer, path, target);
	return 0;
}

static int merge_file(struct flatten *f, struct archive *layer, struct archive_entry *e,
		      const char *path, struct berth_err *err)
{
	const void *buf;
	size_t size;
	la_int64_t offset, written = 0;
	int rc;

	if (berth_sqfs_merge_file_begin(f->merge, path, safe_mode(f, archive_entry_perm(e)),
					archive_entry_mtime(e), err) < 0)
		return errno ? berth_fail(err, errno, "layer %s: cannot create '%s'",
					  f->layer, path) : -1;
	while ((rc = archive_read_data_block(layer, &buf, &size, &offset)) == ARCHIVE_OK) {
		if (offset < 0 || berth_sqfs_merge_file_data(f->merge, (uint64_t)offset, buf,
							     size, err) < 0)
			return offset < 0 ? berth_fail(err, 0, "layer %s: '%s' has a "
						       "negative offset", f->layer, path)
					  : berth_wrap(err, "layer %s", f->layer);
		written = offset + (la_int64_t)size;
		f->stats->bytes += size;
	}
	if (rc != ARCHIVE_EOF)
		return berth_fail(err, 0,
				  "layer %s is damaged or the image archive is "
				  "truncated inside '%s' (%s); download, save or "
				  "pull the image again", f->layer, path,
				  archive_error_string(layer));
	return berth_sqfs_merge_file_end(f->merge, (uint64_t)written, err);
}

/* apply_entry's change, into the index: the same steps as on the folder
 * (parent made, room made, the entry put). */
static int merge_entry(struct flatten *f, struct archive *layer, struct archive_entry *e,
		       const char *path, mode_t type, struct berth_err *err)
{
	char dir[PATH_MAX];
	mode_t have;

	if (!dir_part(path, dir, sizeof(dir)) ||
	    berth_sqfs_merge_mkdirs(f->merge, dir, f->dir_mode) < 0)
		return dir_fail(f, dir, err);
	/* a name the folder refuses (too long) fails here, as make_room()'s
	 * unlinkat() does on the tree */
	int found = berth_sqfs_merge_stat(f->merge, path, &have);
	if ((found < 0 && errno != ENOENT) ||
	    (found == 0 && !(type == AE_IFDIR && S_ISDIR(have)) &&
	     berth_sqfs_merge_remove(f->merge, path) < 0))
		return berth_fail(err, errno, "layer %s: cannot replace '%s'", f->layer, path);
	if (archive_entry_hardlink(e))
		return merge_hardlink(f, e, path, err);
	time_t mtime = archive_entry_mtime(e);
	const char *target = archive_entry_symlink(e) ?: "";
	switch (type) {
	case AE_IFDIR:
		if (berth_sqfs_merge_dir(f->merge, path,
					 safe_mode(f, archive_entry_perm(e)) | 0700, mtime) < 0)
			return berth_fail(err, errno, "layer %s: mkdir '%s'", f->layer, path);
		return 0;
	case AE_IFLNK:
		/* what symlinkat() refuses */
		errno = !*target ? ENOENT : strlen(target) >= PATH_MAX ? ENAMETOOLONG : 0;
		if (errno || berth_sqfs_merge_symlink(f->merge, path, target, mtime) < 0)
			return berth_fail(err, errno, "layer %s: symlink '%s'", f->layer, path);
		return 0;
	default:
		return merge_file(f, layer, e, path, err);
	}
}

static int apply_entry(struct flatten *f, struct archive *layer,
		       struct archive_entry *e, struct berth_err *err)
{
	_cleanup_free_ char *path = strdup(archive_entry_pathname(e) ?: "");
	const char *base;
	mode_t type = archive_entry_filetype(e);

	if (!path)
		return berth_fail(err, ENOMEM, "entry");
	if (clean_name(path, f, err) < 0)
		return -1;
	if (!*path)
		return 0; /* "./" itself: the root folder */
	f->stats->entries++;
	const char *last = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!strcmp(last, OPAQUE))
		return apply_opaque(f, path, err);
	if (!strncmp(last, WHITEOUT, strlen(WHITEOUT)))
		return apply_whiteout(f, path, err);
	if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK &&
	    !archive_entry_hardlink(e)) {
		f->stats->skipped_devices++;
		return 0;
	}
	if (remember_created(f, path) < 0)
		return berth_fail(err, ENOMEM, "entry set");
	if (f->merge)
		return merge_entry(f, layer, e, path, type, err);
	int pfd = parent_of(f, path, &base, err);
	if (pfd < 0)
		return -1;
	if (make_room(pfd, base, type == AE_IFDIR) < 0)
		return berth_fail(err, errno, "layer %s: cannot replace '%s'", f->layer, path);
	if (archive_entry_hardlink(e))
		return put_hardlink(f, e, pfd, base, path, err);
	switch (type) {
	case AE_IFDIR:
		if (mkdirat(pfd, base, 0700) < 0 && errno != EEXIST)
			return berth_fail(err, errno, "layer %s: mkdir '%s'", f->layer, path);
		if (fchmodat(pfd, base, safe_mode(f, archive_entry_perm(e)) | 0700, 0) < 0)
			return berth_fail(err, errno, "layer %s: chmod '%s'", f->layer, path);
		set_mtime(pfd, base, e);
		/* a cached fd for this path may now be stale (replaced folder) */
		if (!strcmp(f->parent_path, path))
			forget_parent(f);
		return 0;
	case AE_IFLNK:
		if (symlinkat(archive_entry_symlink(e) ?: "", pfd, base) < 0)
			return berth_fail(err, errno, "layer %s: symlink '%s'", f->layer, path);
		set_mtime(pfd, base, e);
		return 0;
	default:
		return put_file(f, layer, e, pfd, base, path, err);
	}
}

/* ---- one layer ----------------------------------------------------------------- */

/* Three readers are chained: `outer` (the docker-save tar, positioned at the
 * layer member), `middle` (raw format: undoes any gzip) and `inner` (the
 * layer's tar).  The stored bytes are hashed on their way into `middle`
 * (blob digest), the uncompressed ones on their way into `inner` (diff_id),
 * so a gzipped layer is checked against both.  A layer of a layout folder
 * is a file of its own: `fd` replaces `outer`, the rest is the same. */
struct member_reader {
	struct archive *outer, *middle;
	int fd;                 /* the blob file, or -1: read `outer` */
	EVP_MD_CTX *stored, *plain;
	bool uncompressed;      /* the two byte streams are one: hash it once */
	/* A compressed blob of the user's own store was checked against its
	 * digest when it was downloaded, and its uncompressed bytes are still
	 * checked against the config's diff_id here: hashing the stored bytes
	 * again cost a fifth of a cold pull (bench/registry.sh). */
	bool skip_stored;
	char buf[BLOCK];
	char pbuf[BLOCK];
};

static la_ssize_t stored_next(struct member_reader *r)
{
	if (r->fd < 0)
		return archive_read_data(r->outer, r->buf, sizeof(r->buf));
	return berth_read_full(r->fd, r->buf, sizeof(r->buf));
}

static la_ssize_t stored_read(struct archive *middle, void *data, const void **out)
{
	struct member_reader *r = data;
	la_ssize_t n = stored_next(r);

	if (n < 0) {
		if (middle && r->fd >= 0)
			archive_set_error(middle, errno, "reading the blob: %s",
					  strerror(errno));
		else if (middle)
			archive_set_error(middle, archive_errno(r->outer), "%s",
					  archive_error_string(r->outer));
		return -1;
	}
	if (!r->skip_stored)
		EVP_DigestUpdate(r->stored, r->buf, (size_t)n);
	*out = r->buf;
	return n;
}

static la_ssize_t plain_read(struct archive *inner, void *data, const void **out)
{
	struct member_reader *r = data;
	la_ssize_t n = archive_read_data(r->middle, r->pbuf, sizeof(r->pbuf));

	if (n < 0) {
		if (inner)
			archive_set_error(inner, archive_errno(r->middle), "%s",
					  archive_error_string(r->middle));
		return -1;
	}
	if (!r->uncompressed)
		EVP_DigestUpdate(r->plain, r->pbuf, (size_t)n);
	*out = r->pbuf;
	return n;
}

/* Read what the inner reader left (tar padding, gzip trailer) so both
 * hashes cover everything. */
static int drain(struct member_reader *r)
{
	const void *ignored;
	la_ssize_t n;

	while ((n = plain_read(NULL, r, &ignored)) > 0)
		;
	if (n < 0)
		return -1;
	while ((n = stored_read(NULL, r, &ignored)) > 0)
		;
	return n < 0 ? -1 : 0;
}

static void reader_free(struct member_reader *r)
{
	if (!r)
		return;
	if (r->middle)
		archive_read_free(r->middle);
	EVP_MD_CTX_free(r->stored);
	EVP_MD_CTX_free(r->plain);
	free(r);
}

/* Set up middle and inner on top of the positioned outer reader. */
static int reader_open(struct member_reader *r, struct archive *inner,
		       const char *entry, struct berth_err *err)
{
	struct archive_entry *raw;

	if (!(r->stored = EVP_MD_CTX_new()) || !(r->plain = EVP_MD_CTX_new()) ||
	    !(r->middle = archive_read_new()))
		return berth_fail(err, ENOMEM, "layer reader");
	EVP_DigestInit_ex(r->stored, EVP_sha256(), NULL);
	EVP_DigestInit_ex(r->plain, EVP_sha256(), NULL);
	berth_archive_read_filters(r->middle); /* built-in decompressors only */
	archive_read_support_format_raw(r->middle);
	archive_read_support_format_tar(inner);
	archive_read_support_format_gnutar(inner);
	if (archive_read_open(r->middle, r, NULL, stored_read, NULL) != ARCHIVE_OK ||
	    archive_read_next_header(r->middle, &raw) != ARCHIVE_OK)
		return berth_fail(err, 0, "layer %s cannot be read (%s); the image "
				  "archive is damaged: save or pull it again", entry,
				  archive_error_string(r->middle));
	r->uncompressed = archive_filter_count(r->middle) <= 1;
	r->skip_stored = r->fd >= 0 && !r->uncompressed;
	if (archive_read_open(inner, r, NULL, plain_read, NULL) != ARCHIVE_OK)
		return berth_fail(err, 0, "layer %s is not a tar (%s); the image "
				  "archive is damaged: save or pull it again", entry,
				  archive_error_string(inner));
	return 0;
}

static int check_digest(const char *entry, const char *what,
			const char *expected, const char *seen, bool pulled,
			struct berth_err *err)
{
	if (!expected || !expected[0] || strcmp(expected, seen) == 0)
		return 0;
	return berth_fail(err, 0, "layer %s does not match its %s (expected %s, "
			  "content is %s); %s", entry, what, expected, seen,
			  pulled ? "the cached blob is corrupt, pull the image again"
				 : "the archive is corrupt or was edited, save the "
				   "image again");
}

/* Both digests of a fully read layer: the stored bytes against a blob
 * name, the uncompressed tar against the config's diff_id (which is also
 * what a legacy layer's digest field holds). */
static int check_layer(struct member_reader *r, const struct berth_layer *layer,
		       const char *diff_id, struct berth_err *err)
{
	bool pulled = r->fd >= 0;
	char stored[72], plain[72];
	bool named_blob = !strncmp(layer->entry, "blobs/sha256/", 13);

	berth_sha256_final(r->stored, stored);
	if (r->uncompressed)
		memcpy(plain, stored, sizeof(plain));
	else
		berth_sha256_final(r->plain, plain);
	if (named_blob && !r->skip_stored &&
	    check_digest(layer->entry, "digest", layer->digest, stored, pulled, err) < 0)
		return -1;
	if (!named_blob &&
	    check_digest(layer->entry, "diff_id", layer->digest, plain, pulled, err) < 0)
		return -1;
	return check_digest(layer->entry, "diff_id", diff_id, plain, pulled, err);
}

static int apply_entries(struct flatten *f, struct archive *inner,
			 struct berth_err *err)
{
	struct archive_entry *e;
	int hrc;

	while ((hrc = archive_read_next_header(inner, &e)) == ARCHIVE_OK ||
	       hrc == ARCHIVE_WARN) {
		if (apply_entry(f, inner, e, err) < 0)
			return -1;
	}
	if (hrc != ARCHIVE_EOF)
		return berth_fail(err, 0, "layer %s is damaged or the image archive "
				  "is truncated (%s); download, save or pull the "
				  "image again", f->layer, archive_error_string(inner));
	return 0;
}

static int apply_layer(struct flatten *f, const struct berth_image *img,
		       const struct berth_layer *layer, const char *diff_id,
		       struct berth_err *err)
{
	_cleanup_archive_ struct archive *outer = NULL;
	_cleanup_archive_ struct archive *inner = NULL;
	_cleanup_close_ int fd = -1;
	struct member_reader *r = NULL;
	int rc = -1;

	if (berth_archive_load(err) < 0 || berth_crypto_load(err) < 0)
		return -1;
	if (img->layout_dir)
		fd = berth_layout_blob_open(img->layout_dir, layer->digest, err);
	else
		outer = berth_tar_seek_member(img->archive, layer->entry, NULL, err);
	if (!outer && fd < 0)
		return berth_wrap(err, "missing layer");
	if (!(r = calloc(1, sizeof(*r))) || !(inner = archive_read_new())) {
		berth_fail(err, ENOMEM, "layer reader");
		goto out;
	}
	r->outer = outer;
	r->fd = fd;
	if (reader_open(r, inner, layer->entry, err) < 0)
		goto out;
	f->layer = layer->entry;
	hashset_clear(&f->created);
	forget_parent(f);
	if (apply_entries(f, inner, err) < 0)
		goto out;
	if (drain(r) < 0) {
		berth_fail(err, 0, "layer %s is truncated (%s); download, save or "
			   "pull the image again", layer->entry,
			   archive_error_string(r->middle));
		goto out;
	}
	rc = check_layer(r, layer, diff_id, err);
out:
	forget_parent(f);
	reader_free(r);
	return rc;
}

/* The config's rootfs.diff_ids (NULL entries where it lists none). */
static struct json_object *config_diff_ids(const struct berth_image *img)
{
	struct json_object *root, *rootfs, *ids;

	if (!img->config_json)
		return NULL;
	root = json_tokener_parse(img->config_json);
	if (json_object_object_get_ex(root, "rootfs", &rootfs) &&
	    json_object_object_get_ex(rootfs, "diff_ids", &ids) &&
	    json_object_is_type(ids, json_type_array) &&
	    json_object_array_length(ids) == img->n_layers) {
		json_object_get(ids);
		json_object_put(root);
		return ids;
	}
	json_object_put(root);
	return NULL;
}

static const char *diff_id_at(struct json_object *ids, size_t i)
{
	return ids ? bj_string(json_object_array_get_idx(ids, i)) : NULL;
}

/* Every layer, in order, into f's target. */
static int apply_layers(struct flatten *f, const struct berth_image *img,
			struct berth_err *err)
{
	struct json_object *ids = config_diff_ids(img);
	int rc = 0;

	for (size_t i = 0; i < img->n_layers && rc == 0; i++)
		rc = apply_layer(f, img, &img->layers[i], diff_id_at(ids, i), err);
	json_object_put(ids);
	free(f->created.slots);
	return rc;
}

static int has_layers(const struct berth_image *img, struct berth_err *err)
{
	if (!img->archive && !img->layout_dir)
		return berth_fail(err, 0, "image %s: neither an archive nor a layout "
				  "folder to read its layers from", img->digest);
	return 0;
}

int berth_image_flatten(const struct berth_image *img, const char *root_dir,
			struct berth_flatten_stats *stats, struct berth_err *err)
{
	struct flatten f = {.parent_fd = -1, .stats = stats};

	memset(stats, 0, sizeof(*stats));
	if (has_layers(img, err) < 0)
		return -1;
	f.root_fd = open(root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (f.root_fd < 0)
		return berth_fail(err, errno, "cannot open rootfs folder %s", root_dir);
	int rc = apply_layers(&f, img, err);
	close(f.root_fd);
	return rc;
}

int berth_image_flatten_squashfs(const struct berth_image *img, struct berth_sqfs_merge *m,
				 struct berth_flatten_stats *stats, struct berth_err *err)
{
	struct flatten f = {.root_fd = -1, .parent_fd = -1, .stats = stats, .merge = m};
	mode_t mask = umask(0);

	umask(mask);
	f.dir_mode = 0755 & ~mask; /* what mkdirat(0755) makes on the folder */
	memset(stats, 0, sizeof(*stats));
	if (has_layers(img, err) < 0)
		return -1;
	return apply_layers(&f, img, err);
}

/* ---- mount points ------------------------------------------------------------ */

int berth_rootfs_add_mountpoints(const char *root_dir, struct berth_err *err)
{
	static const char *const dirs[] = {"dev", "proc", "sys", "tmp", "home",
					   "etc", "mnt", ".berth", ".berth/batch"};
	static const char *const files[] = {"etc/hosts", "etc/resolv.conf",
					    "etc/passwd", "etc/group"};
	struct berth_flatten_stats stats = {0};
	struct flatten f = {.parent_fd = -1, .stats = &stats, .layer = "(mount points)"};
	int rc = 0;

	f.root_fd = open(root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (f.root_fd < 0)
		return berth_fail(err, errno, "cannot open rootfs folder %s", root_dir);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs) && rc == 0; i++) {
		int fd = open_dir_p(&f, dirs[i], err);
		if (fd < 0 && errno != ELOOP && errno != ENOTDIR) /* image's own choice */
			rc = -1;
		if (fd >= 0)
			close(fd);
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(*files) && rc == 0; i++) {
		int pfd = resolve(f.root_fd, "etc", O_PATH | O_DIRECTORY, 0);
		if (pfd < 0)
			break; /* /etc is a symlink in this image: leave it */
		int fd = openat(pfd, files[i] + 4, O_WRONLY | O_CREAT | O_EXCL |
				O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			rc = berth_fail(err, errno, "cannot create mount point /%s in %s",
					files[i], root_dir);
		if (fd >= 0)
			close(fd);
		close(pfd);
	}
	close(f.root_fd);
	return rc;
}

/* ---- one SquashFS file for the charliecloud runtime -------------------------- */

/* The mount points berth_rootfs_add_mountpoints makes in a folder, made in
 * the merged index: ch-run binds onto them and cannot make them itself. */
static int sqfs_add_mountpoints(struct berth_sqfs_merge *m, struct berth_err *err)
{
	static const char *const dirs[] = {"dev", "proc", "sys", "tmp", "home",
					   "etc", "mnt", ".berth", ".berth/batch"};
	static const char *const files[] = {"etc/hosts", "etc/resolv.conf",
					    "etc/passwd", "etc/group"};
	time_t now = time(NULL);
	mode_t mode;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++)
		if (berth_sqfs_merge_mkdirs(m, dirs[i], 0755) < 0 && errno != ELOOP &&
		    errno != ENOTDIR && errno != EEXIST) /* the image's own choice */
			return berth_fail(err, errno, "cannot create mount point /%s", dirs[i]);
	if (berth_sqfs_merge_stat(m, "etc", &mode) < 0 || !S_ISDIR(mode))
		return 0; /* /etc is a symlink in this image: leave it */
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		if (berth_sqfs_merge_stat(m, files[i], &mode) == 0)
			continue;
		if (berth_sqfs_merge_file_begin(m, files[i], 0644, now, err) < 0 ||
		    berth_sqfs_merge_file_end(m, 0, err) < 0)
			return berth_wrap(err, "cannot create mount point /%s", files[i]);
	}
	return 0;
}

int berth_image_squashfs_file(const struct berth_image *img, const char *out_path,
			      struct berth_flatten_stats *stats, struct berth_err *err)
{
	/* zstd 3: about as fast as lz4 to write here, and smaller than the
	 * gzip layers; every squashfuse Debian ships reads it */
	struct berth_sqfs_opts o = {.compressor = "zstd", .level = BERTH_SQFS_DEFAULT_ZSTD_LEVEL,
				    /* the user's, as the tree's files are */
				    .owned = true, .uid = getuid(), .gid = getgid()};
	struct berth_sqfs_merge *m = NULL;
	int fd = open(out_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		return berth_fail(err, errno, "cannot create %s", out_path);
	int rc = berth_sqfs_merge_new(fd, 0, &o, &m, err);
	if (rc == 0)
		rc = berth_image_flatten_squashfs(img, m, stats, err);
	if (rc == 0)
		rc = sqfs_add_mountpoints(m, err);
	if (rc == 0)
		rc = berth_sqfs_merge_finish(m, NULL, err);
	berth_sqfs_merge_free(m);
	if (close(fd) < 0 && rc == 0)
		rc = berth_fail(err, errno, "cannot write %s", out_path);
	if (rc < 0)
		unlink(out_path);
	return rc;
}
