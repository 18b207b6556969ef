/* berth: registry image references (see imageref.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "executor/base/sha256.h"
#include "executor/source/imageref.h"

#define HINT "; write [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST], e.g. ubuntu:22.04"

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+ joined by '.', '_', "__" or '-'+. */
static bool valid_component(const char *s, size_t len)
{
	if (len == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return false;
	for (size_t i = 1; i < len; i++) {
		if (is_lower_alnum(s[i]))
			continue;
		if (s[i] == '.' || s[i] == '_') {
			/* '.', '_' or "__", then an alphanumeric */
			size_t run = s[i] == '_' && s[i + 1] == '_' ? 2 : 1;
			if (!is_lower_alnum(s[i + run]))
				return false;
			i += run - 1;
		} else if (s[i] == '-') {
			while (s[i + 1] == '-')
				i++;
			if (!is_lower_alnum(s[i + 1]))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

static bool valid_repository(const char *repo)
{
	const char *p = repo;

	if (!*repo)
		return false;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (!valid_component(p, len))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

/* [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static bool valid_tag(const char *tag)
{
	size_t len = strlen(tag);

	if (len == 0 || len > 128 || !(isalnum((unsigned char)tag[0]) || tag[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!(isalnum((unsigned char)tag[i]) || strchr("_.-", tag[i])))
			return false;
	return true;
}

/* host[:port]: letters, digits, '-', '.', an optional numeric port, or a
 * bracketed IPv6 address. */
static bool valid_registry(const char *r)
{
	const char *colon = strrchr(r, ':');
	size_t host_len = strlen(r);

	if (r[0] == '[') {
		const char *close = strchr(r, ']');
		if (!close || close == r + 1)
			return false;
		for (const char *c = r + 1; c < close; c++) /* an IPv6 address */
			if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
				return false;
		colon = close[1] == ':' ? close + 1 : NULL;
		if (!colon && close[1])
			return false;
		host_len = 0; /* not checked further */
	} else if (colon) {
		host_len = (size_t)(colon - r);
	}
	if (colon && (!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
		      strlen(colon + 1) > 5))
		return false;
	if (r[0] != '[' && host_len == 0)
		return false;
	for (size_t i = 0; i < host_len; i++)
		if (!(isalnum((unsigned char)r[i]) || r[i] == '-' || r[i] == '.'))
			return false;
	return true;
}

/* Docker's rule: the first component names a registry when it has a '.'
 * or a ':' or is "localhost" (and there is a second one). */
static bool looks_like_registry(const char *first, size_t len)
{
	return memchr(first, '.', len) || memchr(first, ':', len) ||
	       (len == 9 && !strncmp(first, "localhost", 9));
}

static int copy_part(char *dst, size_t cap, const char *src, size_t len, const char *what,
		     const char *text, struct berth_err *err)
{
	if (len >= cap)
		return berth_fail(err, 0, "image reference '%.100s': %s is too long", text, what);
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

int berth_imageref_parse(const char *text, const char *default_registry,
			 struct berth_imageref *ref, struct berth_err *err)
{
	const char *p = text, *hash, *at, *slash, *colon;
	bool docker_scheme = !strncmp(text, "docker://", 9);
	char name[512] = {0};

	memset(ref, 0, sizeof(*ref));
	if (docker_scheme)
		p += 9;
	if (!*p)
		return berth_fail(err, 0, "image reference '%.100s' is empty" HINT, text);
	/* pyxis/enroot: REGISTRY#REPO */
	hash = docker_scheme ? NULL : strchr(p, '#');
	if (hash) {
		if (copy_part(ref->registry, sizeof(ref->registry), p, (size_t)(hash - p),
			      "the registry", text, err) < 0)
			return -1;
		if (!valid_registry(ref->registry))
			return berth_fail(err, 0, "image reference '%.100s': '%s' is not a registry "
					  "host[:port]" HINT, text, ref->registry);
		p = hash + 1;
	}
	/* @sha256:DIGEST */
	at = strchr(p, '@');
	if (at) {
		if (copy_part(ref->digest, sizeof(ref->digest), at + 1, strlen(at + 1),
			      "the digest", text, err) < 0 || !berth_digest_valid(ref->digest))
			return berth_fail(err, 0, "image reference '%.100s': the digest must be "
					  "sha256: and 64 lowercase hex digits", text);
	}
	if (copy_part(name, sizeof(name), p, at ? (size_t)(at - p) : strlen(p), "the name", text,
		      err) < 0)
		return -1;
	/* :TAG after the last '/' (a ':' before it is a registry port) */
	slash = strrchr(name, '/');
	colon = strrchr(slash ? slash : name, ':');
	if (colon) {
		if (copy_part(ref->tag, sizeof(ref->tag), colon + 1, strlen(colon + 1), "the tag",
			      text, err) < 0)
			return -1;
		if (!valid_tag(ref->tag))
			return berth_fail(err, 0, "image reference '%.100s': '%s' is not a valid tag "
					  "(letters, digits, '_', '.', '-'; at most 128)", text, ref->tag);
		name[colon - name] = '\0';
	}
	/* REGISTRY/ in the docker:// and bare forms */
	char *repo = name;
	slash = strchr(name, '/');
	if (!hash && slash && looks_like_registry(name, (size_t)(slash - name))) {
		if (copy_part(ref->registry, sizeof(ref->registry), name, (size_t)(slash - name),
			      "the registry", text, err) < 0)
			return -1;
		if (!valid_registry(ref->registry))
			return berth_fail(err, 0, "image reference '%.100s': '%s' is not a registry "
					  "host[:port]" HINT, text, ref->registry);
		repo = (char *)slash + 1;
	}
	if (!ref->registry[0])
		snprintf(ref->registry, sizeof(ref->registry), "%s",
			 default_registry && *default_registry ? default_registry : BERTH_DOCKER_HUB);
	if (!strcmp(ref->registry, "docker.io") || !strcmp(ref->registry, "index.docker.io"))
		snprintf(ref->registry, sizeof(ref->registry), "%s", BERTH_DOCKER_HUB);
	if (!valid_repository(repo))
		return berth_fail(err, 0, "image reference '%.100s': '%s' is not a valid repository "
				  "name (lowercase letters, digits, and '.', '_', '-' between them, "
				  "'/' between parts)" HINT, text, repo);
	bool hub = !strcmp(ref->registry, BERTH_DOCKER_HUB);
	int n = snprintf(ref->repository, sizeof(ref->repository), "%s%s",
			 hub && !strchr(repo, '/') ? "library/" : "", repo);
	if (n < 0 || (size_t)n >= sizeof(ref->repository))
		return berth_fail(err, 0, "image reference '%.100s': the repository is too long", text);
	if (!ref->tag[0] && !ref->digest[0])
		snprintf(ref->tag, sizeof(ref->tag), "latest");
	return 0;
}

/* REG/REPO names the registry only when REG has a '.' or ':' or is
 * "localhost"; a registry such as pyxis's "myreg#lab/tool" keeps the '#'
 * form, or the nodes would read the pinned text as a Docker Hub path
 * (found by tests/fuzz/fuzz_imageref.c). */
void berth_imageref_format(const struct berth_imageref *ref, char *out, size_t len)
{
	bool slash_ok = strpbrk(ref->registry, ".:") || !strcmp(ref->registry, "localhost");

	snprintf(out, len, "%s%s%s%s%s%s%s", ref->registry, slash_ok ? "/" : "#",
		 ref->repository, ref->tag[0] ? ":" : "", ref->tag, ref->digest[0] ? "@" : "",
		 ref->digest);
}

bool berth_imageref_looks_like_path(const char *text)
{
	static const char *const exts[] = {".tar", ".tar.gz", ".tgz", ".sif", ".simg",
					   ".sqsh", ".squashfs", ".sqfs", ".img"};
	size_t len = strcspn(text, "#");

	if (text[0] == '/' || text[0] == '.' || text[0] == '~')
		return true;
	for (size_t i = 0; i < sizeof(exts) / sizeof(*exts); i++) {
		size_t n = strlen(exts[i]);
		if (len > n && !strncmp(text + len - n, exts[i], n))
			return true;
	}
	return false;
}

static bool pin_plain(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr(":._~/+-", c);
}

void berth_pin_encode(const char *pin, char *out, size_t cap)
{
	size_t n = 0;

	for (; *pin && n + 4 < cap; pin++) {
		if (pin_plain(*pin))
			out[n++] = *pin;
		else
			n += (size_t)snprintf(out + n, cap - n, "%%%02X", (unsigned char)*pin);
	}
	out[n] = '\0';
}

static int hex_value(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
		: c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int berth_pin_decode(const char *word, char *out, size_t cap)
{
	size_t n = 0;

	for (; *word; word++) {
		int c = (unsigned char)*word;
		if (c == '%') {
			int hi = hex_value(word[1]), lo = hi < 0 ? -1 : hex_value(word[2]);
			if (lo < 0)
				return -1;
			c = hi * 16 + lo;
			word += 2;
		}
		if (n + 1 >= cap || c == 0)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

/* ---- URLs as messages show them ---------------------------------------- */

static bool scheme_char(char c)
{
	return isalnum((unsigned char)c) || c == '+' || c == '-' || c == '.';
}

/* Length of the scheme of a URL starting at s ("http" of "http://..."),
 * 0 when s does not start with "scheme://". */
static size_t url_scheme_len(const char *s)
{
	size_t n = 0;

	if (!isalpha((unsigned char)s[0]))
		return 0;
	while (scheme_char(s[n]))
		n++;
	return strncmp(s + n, "://", 3) ? 0 : n;
}

/* Append len bytes of s to out (*n used of cap), cutting at the end. */
static void put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
	if (*n + 1 >= cap)
		return;
	if (len > cap - 1 - *n)
		len = cap - 1 - *n;
	memcpy(out + *n, s, len);
	*n += len;
	out[*n] = '\0';
}

static const char *span_find(const char *s, const char *end, const char *set)
{
	while (s < end && !strchr(set, *s))
		s++;
	return s;
}

/* The URL s[0..len) (scheme_len > 0) masked onto out. */
static bool mask_url(const char *s, size_t len, size_t scheme_len, char *out, size_t cap,
		     size_t *n)
{
	const char *end = s + len, *auth = s + scheme_len + 3;

	if (scheme_len == 6 && !strncasecmp(s, "docker", 6)) {
		put(out, cap, n, s, len); /* a registry reference: '@' is its digest */
		return false;
	}
	const char *auth_end = span_find(auth, end, "/?#");
	const char *at = memrchr(auth, '@', (size_t)(auth_end - auth));
	const char *host = at ? at + 1 : auth;
	const char *frag = span_find(auth_end, end, "#");
	const char *query = span_find(auth_end, frag, "?");

	put(out, cap, n, s, (size_t)(auth - s));
	if (at)
		put(out, cap, n, "***@", 4);
	put(out, cap, n, host, (size_t)(query - host));
	if (query < frag)
		put(out, cap, n, "?***", 4);
	put(out, cap, n, frag, (size_t)(end - frag));
	return at || query < frag;
}

bool berth_url_masked(const char *image, char *out, size_t cap)
{
	size_t n = 0, scheme = url_scheme_len(image);

	if (!cap)
		return false;
	out[0] = '\0';
	if (!scheme) {
		put(out, cap, &n, image, strlen(image));
		return false;
	}
	return mask_url(image, strlen(image), scheme, out, cap, &n);
}

void berth_url_scrub(const char *text, char *out, size_t cap)
{
	size_t n = 0, scheme;

	if (!cap)
		return;
	out[0] = '\0';
	for (const char *p = text; *p;) {
		if ((p == text || !scheme_char(p[-1])) && (scheme = url_scheme_len(p))) {
			size_t len = strcspn(p, " \t\r\n\"'<>`");
			mask_url(p, len, scheme, out, cap, &n);
			p += len;
		} else {
			put(out, cap, &n, p, 1);
			p++;
		}
	}
}

bool berth_url_pin_key(const char *image, char *out, size_t cap)
{
	unsigned char md[BERTH_SHA256_LEN];
	char hex[2 * BERTH_SHA256_LEN + 1];
	size_t len;

	if (!berth_url_masked(image, out, cap))
		return strlen(image) < cap;
	berth_sha256(image, strlen(image), md);
	berth_hex_encode(md, sizeof(md), hex);
	len = strlen(out);
	if (len + 1 >= cap) /* perhaps cut: no key rather than a wrong one */
		return false;
	return (size_t)snprintf(out + len, cap - len, "|sha256:%s", hex) < cap - len;
}
