#define _GNU_SOURCE
#include "conf/mounts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FORMS "write SRC, SRC:DST[:FLAGS], tmpfs:DST[:OPTIONS] or umount:DST"

static const struct {
	const char *name;
	enum berth_propagation prop;
} propagations[] = {
	{"private", BERTH_PROP_PRIVATE},       {"rprivate", BERTH_PROP_RPRIVATE},
	{"slave", BERTH_PROP_SLAVE},           {"rslave", BERTH_PROP_RSLAVE},
	{"unbindable", BERTH_PROP_UNBINDABLE}, {"runbindable", BERTH_PROP_RUNBINDABLE},
};

static const struct {
	const char *name;
	unsigned flag;
} mount_flags[] = {
	{"nosuid", BERTH_MNT_NOSUID}, {"nodev", BERTH_MNT_NODEV}, {"noexec", BERTH_MNT_NOEXEC},
};

const char *berth_propagation_name(enum berth_propagation p)
{
	for (size_t i = 0; i < sizeof(propagations) / sizeof(*propagations); i++)
		if (propagations[i].prop == p)
			return propagations[i].name;
	return "default";
}

/* `path` (absolute, or relative to base) without empty or "." components
 * and without a trailing '/'; ".." is refused rather than resolved, so
 * what the user wrote is what is bound. */
static char *clean_path(const char *item, const char *path, const char *base,
			const char *what, struct berth_err *err)
{
	_cleanup_free_ char *joined = NULL;

	if (path[0] != '/') {
		if (!base) {
			berth_fail(err, 0, "mount '%s': the %s path '%s' must be absolute", item,
				   what, path);
			return NULL;
		}
		if (asprintf(&joined, "%s/%s", base, path) < 0) {
			joined = NULL;
			berth_fail(err, ENOMEM, "mount");
			return NULL;
		}
		path = joined;
	}
	char *out = calloc(1, strlen(path) + 2);
	_cleanup_free_ char *copy = strdup(path);
	char *save = NULL;

	if (!out || !copy) {
		free(out);
		berth_fail(err, ENOMEM, "mount");
		return NULL;
	}
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			free(out);
			berth_fail(err, 0, "mount '%s': the %s path must not contain '..'; "
				   "write the folder it means", item, what);
			return NULL;
		}
		strcat(out, "/");
		strcat(out, c);
	}
	if (!out[0])
		strcpy(out, "/");
	return out;
}

/* "size=N[k|m|g]" into bytes. */
static int parse_size(const char *item, const char *text, uint64_t *bytes, struct berth_err *err)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(text, &end, 10);
	int shift = 0;

	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (errno || end == text || *end || n == 0 || n > (UINT64_MAX >> shift) ||
	    text[0] == '-')
		return berth_fail(err, 0, "mount '%s': size=%s is not a size; write "
				  "size=N with k, m or g (for example size=512m)", item, text);
	*bytes = (uint64_t)n << shift;
	return 0;
}

static int parse_mode(const char *item, const char *text, struct berth_mount *m,
		      struct berth_err *err)
{
	char *end;
	unsigned long mode = strtoul(text, &end, 8);

	if (end == text || *end || mode > 07777 || text[0] == '-')
		return berth_fail(err, 0, "mount '%s': mode=%s is not an octal mode "
				  "(for example mode=0700)", item, text);
	m->tmpfs_mode = (unsigned)mode;
	m->tmpfs_mode_set = true;
	return 0;
}

/* "N" with an optional k, m or g: tmpfs's nr_blocks= and nr_inodes=. */
static bool kernel_count(const char *text)
{
	size_t digits = strspn(text, "0123456789");

	return digits > 0 && digits < 20 &&
	       (!text[digits] || (strchr("kKmMgG", text[digits]) && !text[digits + 1]));
}

/* mpol=: default, local, prefer:N, bind:LIST, interleave[:LIST]; a LIST
 * of node numbers and ranges without ',' (the mount list's separator). */
static bool kernel_mpol(const char *text)
{
	const char *colon = strchr(text, ':');
	size_t len = colon ? (size_t)(colon - text) : strlen(text);
	static const char *const modes[] = {"default", "local", "prefer", "bind", "interleave"};

	for (size_t i = 0; i < sizeof(modes) / sizeof(*modes); i++)
		if (strlen(modes[i]) == len && !strncmp(text, modes[i], len))
			return !colon || (i >= 2 && colon[1] &&
					  strspn(colon + 1, "0123456789-:") == strlen(colon + 1));
	return false;
}

/* The tmpfs(5) options berth passes through as the kernel takes them.
 * uid=/gid= are not among them: the tmpfs is the job user's.  noswap and
 * the quota options need the node's root, which berth never uses. */
static int parse_tmpfs_extra(const char *item, const char *flag, struct berth_mount *m,
			     struct berth_err *err)
{
	static const char *const huge[] = {"never", "always", "within_size", "advise"};
	bool ok = false;

	if (!strncmp(flag, "nr_blocks=", 10) || !strncmp(flag, "nr_inodes=", 10))
		ok = kernel_count(strchr(flag, '=') + 1);
	else if (!strncmp(flag, "huge=", 5))
		for (size_t i = 0; i < sizeof(huge) / sizeof(*huge); i++)
			ok = ok || !strcmp(flag + 5, huge[i]);
	else if (!strncmp(flag, "mpol=", 5))
		ok = kernel_mpol(flag + 5);
	else if (!strncmp(flag, "size=", 5))
		ok = strspn(flag + 5, "0123456789") == strlen(flag + 5) - 1 &&
		     strlen(flag + 5) > 1 && flag[strlen(flag) - 1] == '%';
	else if (!strcmp(flag, "inode32") || !strcmp(flag, "inode64"))
		ok = true;
	else if (!strncmp(flag, "uid=", 4) || !strncmp(flag, "gid=", 4))
		return berth_fail(err, 0, "mount '%s': %.3s= is not taken: the tmpfs belongs "
				  "to you; drop it (mode= sets who may use it)", item, flag);
	else
		return 1; /* not a tmpfs(5) option at all */
	if (!ok)
		return berth_fail(err, 0, "mount '%s': '%s' is not a value tmpfs(5) takes "
				  "(nr_blocks=N[k|m|g], nr_inodes=N[k|m|g], huge=never|always|"
				  "within_size|advise, mpol=default|local|prefer:N|bind:N-M|"
				  "interleave[:N-M], size=N%%)", item, flag);
	size_t used = strlen(m->tmpfs_extra);
	if (used + strlen(flag) + 2 > sizeof(m->tmpfs_extra))
		return berth_fail(err, 0, "mount '%s': too many tmpfs options", item);
	snprintf(m->tmpfs_extra + used, sizeof(m->tmpfs_extra) - used, "%s%s",
		 used ? "," : "", flag);
	return 0;
}

static int parse_one_flag(const char *item, const char *flag, struct berth_mount *m,
			  bool *ro_seen, bool *rw_seen, struct berth_err *err)
{
	bool tmpfs = m->kind == BERTH_MOUNT_TMPFS;

	if (!strcmp(flag, "ro") || !strcmp(flag, "rw")) {
		bool ro = flag[1] == 'o';
		if (ro ? *rw_seen : *ro_seen)
			return berth_fail(err, 0, "mount '%s': both ro and rw: keep one", item);
		if (ro && tmpfs)
			return berth_fail(err, 0, "mount '%s': a read-only tmpfs is always "
					  "empty; drop ro", item);
		*(ro ? ro_seen : rw_seen) = true;
		m->read_only = ro;
		return 0;
	}
	for (size_t i = 0; i < sizeof(mount_flags) / sizeof(*mount_flags); i++)
		if (!strcmp(flag, mount_flags[i].name)) {
			m->flags |= mount_flags[i].flag;
			return 0;
		}
	for (size_t i = 0; !tmpfs && i < sizeof(propagations) / sizeof(*propagations); i++)
		if (!strcmp(flag, propagations[i].name)) {
			if (m->propagation)
				return berth_fail(err, 0, "mount '%s': two propagation flags "
						  "(%s, %s): keep one", item,
						  berth_propagation_name(m->propagation), flag);
			m->propagation = propagations[i].prop;
			return 0;
		}
	if (tmpfs && !strncmp(flag, "size=", 5) && !strchr(flag, '%'))
		return parse_size(item, flag + 5, &m->tmpfs_size, err);
	if (tmpfs && !strncmp(flag, "mode=", 5))
		return parse_mode(item, flag + 5, m, err);
	if (tmpfs) {
		int rc = parse_tmpfs_extra(item, flag, m, err);
		if (rc <= 0)
			return rc;
	}
	if (!*flag)
		return berth_fail(err, 0, "mount '%s': an empty flag; join flags with a "
				  "single '+'", item);
	return berth_fail(err, 0, tmpfs ? "mount '%s': unknown tmpfs option '%s'; use "
				  "size=N[k|m|g|%%], mode=OCTAL, nr_blocks=N, nr_inodes=N, "
				  "huge=WHEN, mpol=POLICY, inode32, inode64 (tmpfs(5)), nosuid, "
				  "nodev, noexec joined by '+'"
				: "mount '%s': unknown flag '%s'; use ro or rw, nosuid, nodev, "
				  "noexec, private, rprivate, slave, rslave, unbindable or "
				  "runbindable joined by '+' (paths containing ':' cannot be bound)",
			  item, flag);
}

static int parse_flags(const char *item, char *flags, struct berth_mount *m,
		       struct berth_err *err)
{
	bool ro_seen = false, rw_seen = false;
	char *rest = flags;

	for (char *flag = strsep(&rest, "+"); flag; flag = strsep(&rest, "+"))
		if (parse_one_flag(item, flag, m, &ro_seen, &rw_seen, err) < 0)
			return -1;
	return 0;
}

static int parse_fields(const char *item, const char *base, char *copy, struct berth_mount *m,
			struct berth_err *err)
{
	char *rest = copy;
	char *src = strsep(&rest, ":");
	char *dst = rest ? strsep(&rest, ":") : NULL;
	char *flags = rest;

	if (strchr(item, ','))
		return berth_fail(err, 0, "mount '%s': paths containing ',' cannot be bound", item);
	if (!*src || (dst && !*dst) || (flags && !*flags))
		return berth_fail(err, 0, "mount '%s': an empty field; " FORMS, item);
	if (!strcmp(src, "umount")) {
		if (!dst || flags)
			return berth_fail(err, 0, "mount '%s': write umount:/DST, with no flags, "
					  "to leave out a mount the runtime makes at DST", item);
		m->kind = BERTH_MOUNT_UMOUNT;
	} else if (!strcmp(src, "tmpfs")) {
		if (!dst)
			return berth_fail(err, 0, "mount '%s': a tmpfs needs its target: "
					  "tmpfs:/DST[:size=N]", item);
		m->kind = BERTH_MOUNT_TMPFS;
	} else if (!dst) {
		if (src[0] != '/')
			return berth_fail(err, 0, "mount '%s': the short form binds SRC at the "
					  "same path inside, so it must be absolute; write "
					  "%s:/DST", item, src);
		dst = src;
	}
	if (flags && parse_flags(item, flags, m, err) < 0)
		return -1;
	m->src = m->kind == BERTH_MOUNT_TMPFS	 ? strdup("tmpfs")
		 : m->kind == BERTH_MOUNT_UMOUNT ? strdup("umount")
						 : clean_path(item, src, base, "host", err);
	if (!m->src)
		return err->msg[0] ? -1 : berth_fail(err, ENOMEM, "mount");
	if (dst[0] != '/')
		return berth_fail(err, 0, "mount '%s': the container path '%s' must be "
				  "absolute", item, dst);
	if (!(m->dst = clean_path(item, dst, NULL, "container", err)))
		return -1;
	if (!strcmp(m->dst, "/"))
		return berth_fail(err, 0, "mount '%s': cannot mount over the container's "
				  "root; choose a folder inside it", item);
	return 0;
}

int berth_mount_parse_at(const char *item, const char *base_dir, struct berth_mount *m,
			 struct berth_err *err)
{
	_cleanup_free_ char *copy = strdup(item);

	memset(m, 0, sizeof(*m));
	if (!copy)
		return berth_fail(err, ENOMEM, "mount");
	if (parse_fields(item, base_dir, copy, m, err) < 0) {
		free(m->src);
		free(m->dst);
		memset(m, 0, sizeof(*m));
		return -1;
	}
	return 0;
}

int berth_mount_parse(const char *item, struct berth_mount *m, struct berth_err *err)
{
	return berth_mount_parse_at(item, NULL, m, err);
}

void berth_mounts_free(struct berth_mount *mounts, size_t n)
{
	for (size_t i = 0; mounts && i < n; i++) {
		free(mounts[i].src);
		free(mounts[i].dst);
	}
	free(mounts);
}

int berth_mounts_parse_list_at(const char *list, const char *base_dir,
			       struct berth_mount **mounts, size_t *n, struct berth_err *err)
{
	_cleanup_free_ char *copy = strdup(list);
	struct berth_mount *out = calloc(BERTH_MOUNT_LIST_MAX, sizeof(*out));
	size_t count = 0;
	char *rest = copy;

	if (!copy || !out) {
		free(out);
		return berth_fail(err, ENOMEM, "mounts");
	}
	for (char *item = strsep(&rest, ","); item; item = strsep(&rest, ",")) {
		if (!*item) {
			berth_mounts_free(out, count);
			return berth_fail(err, 0, "an empty item in the mount list '%s'; "
					  "separate mounts with a single ','", list);
		}
		if (count == BERTH_MOUNT_LIST_MAX) {
			berth_mounts_free(out, count);
			return berth_fail(err, 0, "more than %d mounts", BERTH_MOUNT_LIST_MAX);
		}
		if (berth_mount_parse_at(item, base_dir, &out[count], err) < 0) {
			berth_mounts_free(out, count);
			return -1;
		}
		count++;
	}
	*mounts = out;
	*n = count;
	return 0;
}

int berth_mounts_parse_list(const char *list, struct berth_mount **mounts,
			    size_t *n, struct berth_err *err)
{
	return berth_mounts_parse_list_at(list, NULL, mounts, n, err);
}

static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;

	if (!*buf)
		return;
	for (;;) {
		va_start(ap, fmt);
		int w = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (w < 0) {
			free(*buf);
			*buf = NULL;
			return;
		}
		if ((size_t)w < *cap - *len) {
			*len += (size_t)w;
			return;
		}
		char *more = realloc(*buf, *cap * 2 + (size_t)w);
		if (!more) {
			free(*buf);
			*buf = NULL;
			return;
		}
		*buf = more;
		*cap = *cap * 2 + (size_t)w;
	}
}

char *berth_mounts_format(const struct berth_mount *mounts, size_t n)
{
	size_t len = 0, cap = 256;
	char *buf = calloc(1, cap);

	for (size_t i = 0; i < n; i++) {
		const struct berth_mount *m = &mounts[i];
		if (m->kind == BERTH_MOUNT_UMOUNT) {
			append(&buf, &len, &cap, "%sumount:%s", i ? "," : "", m->dst);
			continue;
		}
		append(&buf, &len, &cap, "%s%s:%s:%s", i ? "," : "", m->src, m->dst,
		       m->read_only ? "ro" : "rw");
		for (size_t f = 0; f < sizeof(mount_flags) / sizeof(*mount_flags); f++)
			if (m->flags & mount_flags[f].flag)
				append(&buf, &len, &cap, "+%s", mount_flags[f].name);
		if (m->propagation)
			append(&buf, &len, &cap, "+%s", berth_propagation_name(m->propagation));
		if (m->tmpfs_size)
			append(&buf, &len, &cap, "+size=%" PRIu64, m->tmpfs_size);
		if (m->tmpfs_mode_set)
			append(&buf, &len, &cap, "+mode=%04o", m->tmpfs_mode & 07777);
		for (const char *o = m->tmpfs_extra; *o; o += strcspn(o, ","), o += *o == ',')
			append(&buf, &len, &cap, "+%.*s", (int)strcspn(o, ","), o);
	}
	return buf;
}

static size_t depth(const char *path)
{
	size_t n = 0;

	for (; *path; path++)
		n += *path == '/';
	return n;
}

void berth_mounts_sort(struct berth_mount *mounts, size_t n)
{
	/* insertion sort: stable, and a list holds at most 64 */
	for (size_t i = 1; i < n; i++) {
		struct berth_mount m = mounts[i];
		size_t d = depth(m.dst), j = i;
		for (; j > 0 && depth(mounts[j - 1].dst) > d; j--)
			mounts[j] = mounts[j - 1];
		mounts[j] = m;
	}
}

/* Is `path` `top` or inside it?  Both clean absolute paths. */
static bool within(const char *path, const char *top, bool strict)
{
	size_t len = strlen(top);

	if (strncmp(path, top, len) != 0)
		return false;
	return path[len] == '/' || (!strict && !path[len]);
}

ssize_t berth_mount_holding(const struct berth_mount *mounts, size_t n, const char *path)
{
	for (size_t j = n; j-- > 0;)
		if (within(path, mounts[j].dst, false))
			return (ssize_t)j;
	return -1;
}

ssize_t berth_mount_parent(const struct berth_mount *mounts, size_t i)
{
	for (size_t j = i; j-- > 0;)
		if (within(mounts[i].dst, mounts[j].dst, true))
			return (ssize_t)j;
	return -1;
}

int berth_mount_check_source(const struct berth_mount *m, bool parent_seen,
			     struct berth_err *err)
{
	struct stat st;

	if (m->kind != BERTH_MOUNT_BIND || stat(m->src, &st) == 0 ||
	    (errno != ENOENT && errno != ENOTDIR))
		return 0;
	if (parent_seen) {
		_cleanup_free_ char *parent = strdup(m->src);
		if (!parent)
			return 0;
		*(strrchr(parent, '/') == parent ? parent + 1 : strrchr(parent, '/')) = '\0';
		if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode))
			return 0;
	}
	return berth_fail(err, 0, "source path does not exist: %s; create it, or fix the "
			  "path in the mount '%s:%s'", m->src, m->src, m->dst);
}
