/* berth: the content manifest of a cache artifact (see manifest.h). */
#define _GNU_SOURCE
#include "executor/cache/manifest.h"
#include "executor/base/fs.h"
#include "executor/base/hex.h"
#include "executor/base/xxh64.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HASH_CHUNK (256 * 1024)

void berth_manifest_free(struct berth_manifest *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->items[i].path);
	free(m->items);
	memset(m, 0, sizeof(*m));
}

/* A new item at the end; it owns `path` from here on. */
static struct berth_manifest_item *add_item(struct berth_manifest *m, char *path,
					    struct berth_err *err)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		struct berth_manifest_item *bigger = realloc(m->items, cap * sizeof(*bigger));
		if (!bigger) {
			free(path);
			berth_fail(err, ENOMEM, "manifest");
			return NULL;
		}
		m->items = bigger;
		m->cap = cap;
	}
	struct berth_manifest_item *it = &m->items[m->n++];
	memset(it, 0, sizeof(*it));
	it->path = path;
	snprintf(it->hash, sizeof(it->hash), "-");
	return it;
}

/* 16 hex digits, the most significant first (as "%016" PRIx64 writes). */
static void hex_of(uint64_t h, char out[65])
{
	unsigned char be[8];

	for (int i = 0; i < 8; i++)
		be[i] = (unsigned char)(h >> (56 - 8 * i));
	berth_hex_encode(be, sizeof(be), out);
}

/* XXH64 of a regular file's contents (see xxh64.h for why not a
 * cryptographic digest).  A file its owner cannot read keeps "-" (its mode
 * is still compared). */
static int hash_file(int parent_fd, const char *name, const char *path, char out[65],
		     struct berth_err *err)
{
	_cleanup_close_ int fd = openat(parent_fd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY |
					O_CLOEXEC);
	if (fd < 0 && errno == EACCES)
		return 0;
	if (fd < 0)
		return berth_fail(err, errno, "cannot open %s", path);
	_cleanup_free_ unsigned char *buf = malloc(HASH_CHUNK);
	struct berth_xxh64 h;
	if (!buf)
		return berth_fail(err, ENOMEM, "cannot hash %s", path);
	berth_xxh64_init(&h);
	ssize_t n;
	while ((n = berth_read_full(fd, buf, HASH_CHUNK)) > 0)
		berth_xxh64_update(&h, buf, (size_t)n);
	if (n < 0)
		return berth_fail(err, errno, "cannot read %s", path);
	hex_of(berth_xxh64_digest(&h), out);
	return 0;
}

static int hash_link(int parent_fd, const char *name, const char *path, off_t size,
		     struct berth_manifest_item *it, struct berth_err *err)
{
	char target[PATH_MAX];

	ssize_t n = readlinkat(parent_fd, name, target, sizeof(target));
	if (n < 0)
		return berth_fail(err, errno, "cannot read link %s", path);
	hex_of(berth_xxh64(target, (size_t)n), it->hash);
	it->size = (unsigned long long)(size > n ? size : n);
	return 0;
}

static char type_of(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return 'f';
	case S_IFDIR: return 'd';
	case S_IFLNK: return 'l';
	case S_IFIFO: return 'p';
	case S_IFCHR: return 'c';
	case S_IFBLK: return 'b';
	default: return 's';
	}
}

static int scan_at(int parent_fd, const char *name, const char *path,
		   struct berth_manifest *m, struct berth_err *err);

/* Every child of the folder `name`; one its owner cannot list stays a
 * leaf (its mode is compared). */
static int scan_children(int parent_fd, const char *name, const char *path,
			 struct berth_manifest *m, struct berth_err *err)
{
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES)
		return 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int saved = errno;
		if (fd >= 0)
			close(fd);
		return berth_fail(err, saved, "cannot list %s", path);
	}
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *child = NULL;
		if (asprintf(&child, "%s/%s", path, de->d_name) < 0) {
			child = NULL;
			rc = berth_fail(err, ENOMEM, "manifest");
			break;
		}
		rc = scan_at(dirfd(d), de->d_name, child, m, err);
	}
	closedir(d);
	return rc;
}

static int scan_at(int parent_fd, const char *name, const char *path,
		   struct berth_manifest *m, struct berth_err *err)
{
	struct stat st;

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_fail(err, errno, "cannot stat %s", path);
	char *own = strdup(path);
	struct berth_manifest_item *it = own ? add_item(m, own, err) : NULL;
	if (!it)
		return own ? -1 : berth_fail(err, ENOMEM, "manifest");
	it->type = type_of(st.st_mode);
	it->mode = (unsigned)(st.st_mode & 07777);
	switch (it->type) {
	case 'f':
		it->size = (unsigned long long)st.st_size;
		return hash_file(parent_fd, name, path, it->hash, err);
	case 'l':
		return hash_link(parent_fd, name, path, st.st_size, it, err);
	case 'd':
		return scan_children(parent_fd, name, path, m, err);
	default:
		return 0;
	}
}

static int by_path(const void *a, const void *b)
{
	const struct berth_manifest_item *x = a, *y = b;

	return strcmp(x->path, y->path);
}

int berth_manifest_scan(int dir_fd, const char *leaf, struct berth_manifest *m,
			struct berth_err *err)
{
	if (scan_at(dir_fd, leaf, leaf, m, err) < 0)
		return -1;
	if (m->n)
		qsort(m->items, m->n, sizeof(*m->items), by_path);
	return 0;
}

/* Append to a growing buffer (open_memstream keeps it simple). */
static void put_escaped(FILE *out, const char *path)
{
	for (const char *p = path; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
}

int berth_manifest_format(const struct berth_manifest *m, char **text, size_t *len,
			  struct berth_err *err)
{
	*text = NULL;
	*len = 0;
	FILE *out = open_memstream(text, len);
	if (!out)
		return berth_fail(err, errno, "manifest");
	fputs(BERTH_MANIFEST_HEADER, out);
	for (size_t i = 0; i < m->n; i++) {
		const struct berth_manifest_item *it = &m->items[i];
		fprintf(out, "%c %04o %llu %s ", it->type, it->mode, it->size, it->hash);
		put_escaped(out, it->path);
		fputc('\n', out);
	}
	if (fclose(out) != 0) {
		free(*text);
		*text = NULL;
		return berth_fail(err, ENOMEM, "manifest");
	}
	return 0;
}

/* PATH with its escapes undone (malloc'd); NULL on a bad escape. */
static char *unescape(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\\') {
			*o++ = s[i];
			continue;
		}
		if (++i == len || (s[i] != '\\' && s[i] != 'n')) {
			free(out);
			return NULL;
		}
		*o++ = s[i] == 'n' ? '\n' : '\\';
	}
	*o = '\0';
	return out;
}

/* "TYPE MODE SIZE HASH " of a line; *rest gets the PATH that follows. */
static bool parse_fields(const char *s, struct berth_manifest_item *it, const char **rest)
{
	char *end = NULL;

	if (!s[0] || !strchr("fdlpcbs", s[0]) || s[1] != ' ' || s[2] < '0' || s[2] > '7')
		return false;
	it->type = s[0];
	unsigned long mode = strtoul(s + 2, &end, 8);
	if (*end != ' ' || mode > 07777 || end[1] < '0' || end[1] > '9')
		return false;
	it->mode = (unsigned)mode;
	it->size = strtoull(end + 1, &end, 10);
	if (*end != ' ')
		return false;
	size_t hash_len = strcspn(end + 1, " ");
	const char *hash = end + 1;
	bool dash = hash_len == 1 && hash[0] == '-';
	if (!dash && (hash_len != 16 || !berth_is_hex(hash, 16)))
		return false;
	snprintf(it->hash, sizeof(it->hash), "%.*s", (int)hash_len, hash);
	*rest = hash + hash_len + (hash[hash_len] == ' ');
	return hash[hash_len] == ' ' && **rest != '\0';
}

static int parse_line(const char *line, size_t len, size_t lineno,
		      struct berth_manifest *m, struct berth_err *err)
{
	struct berth_manifest_item fields;
	const char *rest = NULL;
	_cleanup_free_ char *copy = strndup(line, len);

	if (!copy)
		return berth_fail(err, ENOMEM, "manifest");
	if (!parse_fields(copy, &fields, &rest))
		return berth_fail(err, 0, "manifest line %zu is malformed", lineno);
	char *path = unescape(rest, strlen(rest));
	if (!path)
		return berth_fail(err, 0, "manifest line %zu has a bad escape", lineno);
	struct berth_manifest_item *it = add_item(m, path, err);
	if (!it)
		return -1;
	it->type = fields.type;
	it->mode = fields.mode;
	it->size = fields.size;
	memcpy(it->hash, fields.hash, sizeof(it->hash));
	return 0;
}

int berth_manifest_parse(const char *text, size_t len, struct berth_manifest *m,
			 struct berth_err *err)
{
	static const char magic[] = "berth-manifest ";
	size_t hlen = strlen(BERTH_MANIFEST_HEADER), lineno = 1;

	if (len >= hlen && !memcmp(text, magic, sizeof(magic) - 1) &&
	    memcmp(text, BERTH_MANIFEST_HEADER, hlen) != 0)
		return 1;
	if (len < hlen || memcmp(text, BERTH_MANIFEST_HEADER, hlen) != 0)
		return berth_fail(err, 0, "not a berth manifest (no '%.*s' header)",
				  (int)hlen - 1, BERTH_MANIFEST_HEADER);
	for (size_t pos = hlen; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		if (!nl)
			return berth_fail(err, 0, "manifest line %zu is cut short", lineno + 1);
		size_t line_len = (size_t)(nl - (text + pos));
		if (parse_line(text + pos, line_len, ++lineno, m, err) < 0)
			return -1;
		pos += line_len + 1;
	}
	if (m->n)
		qsort(m->items, m->n, sizeof(*m->items), by_path);
	return 0;
}

static const char *item_differs(const struct berth_manifest_item *want,
				const struct berth_manifest_item *have)
{
	if (want->type != have->type)
		return "type";
	if (want->mode != have->mode)
		return "mode";
	if (want->size != have->size)
		return "size";
	if (strcmp(want->hash, have->hash) != 0)
		return "content";
	return NULL;
}

const char *berth_manifest_diff(const struct berth_manifest *want,
				const struct berth_manifest *have, const char **how)
{
	size_t i = 0, j = 0;

	while (i < want->n || j < have->n) {
		int order = i == want->n ? 1
			    : j == have->n ? -1
			    : strcmp(want->items[i].path, have->items[j].path);
		if (order < 0) {
			*how = "missing";
			return want->items[i].path;
		}
		if (order > 0) {
			*how = "unexpected";
			return have->items[j].path;
		}
		if ((*how = item_differs(&want->items[i], &have->items[j])))
			return want->items[i].path;
		i++;
		j++;
	}
	*how = NULL;
	return NULL;
}
