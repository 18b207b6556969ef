/* berth: download an image archive by URL (see fetch.h). */
#define _GNU_SOURCE
#include "executor/source/fetch.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "executor/base/dl/curl_lazy.h"
#include "executor/base/fs.h"
#include "executor/base/hex.h"
#include "executor/base/dl/crypto_lazy.h"
#include "executor/source/imageref.h"

#ifndef BERTH_VERSION
#define BERTH_VERSION "dev"
#endif

#define FETCH_LOW_SPEED_BPS 1024L   /* below this for timeout_s seconds: abort */
#define FETCH_MAX_REDIRS 5L
#define FETCH_MAX_DELAY_MS 30000u
#define FETCH_VALIDATOR_MAX 256     /* longer ETag / Last-Modified: not kept */
#define FETCH_META_MAX 16384
#define FETCH_SHOWN_MAX 512
#define FETCH_HASH_BUF 65536

static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static CURLcode fetch_init_rc = CURLE_FAILED_INIT;

static void fetch_global_init(void)
{
	fetch_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* What <hex>.meta says about <hex>.tar. */
struct fetch_meta {
	char etag[FETCH_VALIDATOR_MAX];
	char last_modified[FETCH_VALIDATOR_MAX];
	char sha256[72];
	uint64_t size;
};

enum fetch_outcome {
	FETCH_DONE,
	FETCH_NOT_MODIFIED,
	FETCH_RETRY,   /* transient: try again, resuming what is on disk */
	FETCH_RESTART, /* the partial body is useless: truncate and try again */
	FETCH_FATAL,
};

/* One berth_fetch call. */
struct fetch_xfer {
	CURL *curl;
	const struct berth_fetch_opts *opts;
	const char *shown;        /* the URL for messages (secrets masked) */
	int dir_fd;
	int fd;                   /* the temporary file */
	char tmp_name[128];       /* its name in dir_fd; "" once renamed */
	EVP_MD_CTX *md;
	uint64_t have;            /* bytes in fd, all of them hashed */
	uint64_t start;           /* have when this attempt began */
	/* set by the callbacks during one attempt */
	bool first_write;
	long http_error;          /* a status >= 400 that came with a body */
	bool cap_hit;
	int write_errno;
	/* the last response's status line and validators */
	long status;
	char reason[96];
	char etag[FETCH_VALIDATOR_MAX];
	char last_modified[FETCH_VALIDATOR_MAX];
	unsigned retry_after;     /* a 429/503's Retry-After, seconds */
	long last_status;         /* of the last attempt, for the caller */
	/* validators of the response whose body is on disk (for If-Range) */
	char range_etag[FETCH_VALIDATOR_MAX];
	char range_lm[FETCH_VALIDATOR_MAX];
	/* progress throttle */
	bool progress_started;
	struct timespec progress_last;
	/* why the last attempt failed, composed into *err at the end */
	char why[640];
	const char *hint;
	char errbuf[CURL_ERROR_SIZE];
};

void berth_fetch_opts_init(struct berth_fetch_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->timeout_s = BERTH_FETCH_DEFAULT_TIMEOUT;
	opts->retries = BERTH_FETCH_DEFAULT_RETRIES;
	opts->retry_delay_ms = BERTH_FETCH_DEFAULT_DELAY_MS;
}

/* ---- small helpers ------------------------------------------------------ */

static int fetch_sha256_hex(const char *s, char out[65])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (!EVP_Digest(s, strlen(s), d, &dlen, EVP_sha256(), NULL) || dlen != 32)
		return -1;
	berth_hex_encode(d, dlen, out);
	return 0;
}

/* Accept http, https and file only, before libcurl sees the URL. */
static int fetch_check_url(const char *url, const char *shown, struct berth_err *err)
{
	size_t n = 0;

	for (const char *p = url; *p; p++)
		if (iscntrl((unsigned char)*p) || *p == ' ')
			return berth_fail(err, 0,
					  "cannot fetch %s: the URL contains a space or control character; percent-encode it",
					  shown);
	while (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.')
		n++;
	if (n == 0 || strncmp(url + n, "://", 3) != 0)
		return berth_fail(err, 0,
				  "cannot fetch %s: not a URL; use an http://, https:// or file:// URL",
				  shown);
	if ((n == 4 && !strncasecmp(url, "http", 4)) || (n == 5 && !strncasecmp(url, "https", 5)) ||
	    (n == 4 && !strncasecmp(url, "file", 4)))
		return 0;
	return berth_fail(err, 0,
			  "cannot fetch %s: the URL scheme \"%.*s\" is not supported; use an http://, https:// or file:// URL",
			  shown, (int)(n > 32 ? 32 : n), url);
}

static bool fetch_is_file_url(const char *url)
{
	return !strncasecmp(url, "file://", 7);
}

/* Create dir_fd/<prefix><suffix>-<random> with O_EXCL and O_NOFOLLOW. */
static int fetch_open_temp(int dir_fd, const char *prefix, const char *suffix, char *name,
			   size_t size, struct berth_err *err)
{
	for (int i = 0; i < 64; i++) {
		uint32_t r = 0;
		int fd;

		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
			r = (uint32_t)getpid() * 2654435761u + (uint32_t)time(NULL) + (uint32_t)i;
		snprintf(name, size, "%s%s-%08" PRIx32, prefix, suffix, r);
		fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return berth_fail(err, errno,
					  "cannot create the temporary file %s in the cache folder; check that the folder is yours and writable",
					  name);
	}
	name[0] = '\0';
	return berth_fail(err, EEXIST, "cannot create a temporary file in the cache folder");
}

static void fetch_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the sidecar ---------------------------------------------------------- */

/* Copy one "key value" line's value when the key matches. */
static void fetch_meta_field(const char *line, const char *key, char *out, size_t size)
{
	size_t k = strlen(key);

	if (strncmp(line, key, k) == 0 && line[k] == ' ' && strlen(line + k + 1) < size)
		snprintf(out, size, "%s", line + k + 1);
}

/* Read <hex>.meta and check it against <hex>.tar.  Returns true when the
 * file is there, belongs to url and has a validator to send. */
static bool fetch_read_meta(int dir_fd, const char *meta_name, const char *tar_name,
			    const char *hex, struct fetch_meta *m)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -1;
	struct stat st, tst;
	char size_str[32] = "";
	bool url_ok = false;
	ssize_t n;
	char *save = NULL;

	memset(m, 0, sizeof(*m));
	if (fstatat(dir_fd, tar_name, &tst, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(tst.st_mode))
		return false;
	fd = openat(dir_fd, meta_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size >= FETCH_META_MAX)
		return false;
	buf = malloc(FETCH_META_MAX);
	if (!buf)
		return false;
	n = read(fd, buf, FETCH_META_MAX - 1);
	if (n < 0)
		return false;
	buf[n] = '\0';
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "url-sha256 ", 11) == 0 && strcmp(line + 11, hex) == 0)
			url_ok = true;
		fetch_meta_field(line, "etag", m->etag, sizeof(m->etag));
		fetch_meta_field(line, "last-modified", m->last_modified, sizeof(m->last_modified));
		fetch_meta_field(line, "sha256", m->sha256, sizeof(m->sha256));
		fetch_meta_field(line, "size", size_str, sizeof(size_str));
	}
	if (!url_ok || strlen(m->sha256) != 71 || strncmp(m->sha256, "sha256:", 7) != 0 ||
	    !size_str[0] || (!m->etag[0] && !m->last_modified[0]))
		return false;
	errno = 0;
	m->size = strtoull(size_str, &save, 10);
	if (errno || *save || m->size != (uint64_t)tst.st_size)
		return false;
	return true;
}

/* Publish the sidecar with a temporary file and rename(). */
static int fetch_write_meta(int dir_fd, const char *hex, const char *meta_name,
			    const struct fetch_xfer *x, const char *sha256, uint64_t size,
			    struct berth_err *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *text = NULL;
	char tmp[128];
	int len;

	fd = fetch_open_temp(dir_fd, hex, ".meta", tmp, sizeof(tmp), err);
	if (fd < 0)
		return -1;
	/* The URL as shown and its hash, never the URL: it may hold a
	 * password or a signature, and a file keeps what a message forgets. */
	len = asprintf(&text, "url %s\nurl-sha256 %s\netag %s\nlast-modified %s\nsha256 %s\n"
		       "size %" PRIu64 "\n", x->shown, hex, x->etag, x->last_modified, sha256, size);
	if (len < 0) {
		text = NULL;
		unlinkat(dir_fd, tmp, 0);
		return berth_fail(err, ENOMEM, "cannot record the download's validators");
	}
	if (berth_write_all(fd, text, (size_t)len) < 0 || renameat(dir_fd, tmp, dir_fd, meta_name) < 0) {
		int e = errno;

		unlinkat(dir_fd, tmp, 0);
		return berth_fail(err, e,
				  "cannot write %s in the cache folder; check the free space there",
				  meta_name);
	}
	return 0;
}

/* ---- libcurl callbacks ---------------------------------------------------- */

/* Keep `name: value` of one header line when the name matches. */
static void fetch_header_value(const char *line, size_t len, const char *name, char *out,
			       size_t size)
{
	size_t k = strlen(name);
	const char *v, *end = line + len;

	if (len <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return;
	v = line + k + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	out[0] = '\0';
	if ((size_t)(end - v) >= size)
		return; /* too long to send back: no validator */
	for (const char *p = v; p < end; p++)
		if (iscntrl((unsigned char)*p))
			return;
	memcpy(out, v, (size_t)(end - v));
	out[end - v] = '\0';
}

static size_t fetch_header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct fetch_xfer *x = userdata;
	size_t len = size * nitems, l = len;

	while (l > 0 && (buf[l - 1] == '\r' || buf[l - 1] == '\n'))
		l--;
	if (l >= 5 && strncasecmp(buf, "HTTP/", 5) == 0) {
		/* a new response (a redirect, 100 Continue or the real one) */
		const char *p = memchr(buf, ' ', l), *end = buf + l;

		x->status = 0;
		x->reason[0] = x->etag[0] = x->last_modified[0] = '\0';
		if (!p)
			return len;
		while (p < end && *p == ' ')
			p++;
		while (p < end && isdigit((unsigned char)*p) && x->status < 1000)
			x->status = x->status * 10 + (*p++ - '0');
		while (p < end && *p == ' ')
			p++;
		char said[sizeof(x->reason)];
		snprintf(said, sizeof(said), "%.*s", (int)(end - p), p);
		berth_url_scrub(said, x->reason, sizeof(x->reason)); /* it ends in messages */
		for (char *r = x->reason; *r; r++)
			if (iscntrl((unsigned char)*r))
				*r = '?';
		return len;
	}
	char after[16] = "";
	fetch_header_value(buf, l, "Retry-After", after, sizeof(after));
	if (after[0])
		x->retry_after = (unsigned)strtoul(after, NULL, 10);
	fetch_header_value(buf, l, "ETag", x->etag, sizeof(x->etag));
	fetch_header_value(buf, l, "Last-Modified", x->last_modified, sizeof(x->last_modified));
	return len;
}

static int fetch_reset_hash(struct fetch_xfer *x)
{
	return EVP_DigestInit_ex(x->md, EVP_sha256(), NULL) ? 0 : -1;
}

/* Drop the partial body: the next bytes start the file again. */
static int fetch_truncate(struct fetch_xfer *x)
{
	if (ftruncate(x->fd, 0) < 0 || lseek(x->fd, 0, SEEK_SET) < 0)
		return -1;
	x->have = 0;
	x->start = 0;
	x->range_etag[0] = x->range_lm[0] = '\0';
	if (fetch_reset_hash(x) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* The first body bytes of an attempt: look at the status and the length. */
static int fetch_first_body(struct fetch_xfer *x)
{
	long code = 0;
	curl_off_t cl = -1;
	uint64_t max = x->opts->max_bytes;

	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 400) {
		x->http_error = code; /* do not store an error page */
		return -1;
	}
	if (code == 200 && x->have > 0 && fetch_truncate(x) < 0) {
		/* the server sent the whole body although we asked for a range */
		x->write_errno = errno;
		return -1;
	}
	curl_easy_getinfo(x->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	if (max && cl >= 0 && ((uint64_t)cl > max || x->have > max - (uint64_t)cl)) {
		x->cap_hit = true;
		return -1;
	}
	return 0;
}

static size_t fetch_write_cb(char *buf, size_t size, size_t nmemb, void *userdata)
{
	struct fetch_xfer *x = userdata;
	size_t len = size * nmemb;
	uint64_t max = x->opts->max_bytes;

	if (x->first_write) {
		x->first_write = false;
		if (fetch_first_body(x) < 0)
			return 0;
	}
	if (max && (uint64_t)len > max - x->have) {
		x->cap_hit = true;
		return 0;
	}
	if (berth_write_all(x->fd, buf, len) < 0) {
		x->write_errno = errno;
		return 0;
	}
	if (!EVP_DigestUpdate(x->md, buf, len)) {
		x->write_errno = ENOMEM;
		return 0;
	}
	x->have += len;
	return len;
}

static int fetch_xferinfo_cb(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
			     curl_off_t ultotal, curl_off_t ulnow)
{
	struct fetch_xfer *x = clientp;
	struct timespec now;

	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (x->have == x->start)
		return 0; /* no body yet: nothing to say */
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (x->progress_started &&
	    (now.tv_sec - x->progress_last.tv_sec) * 1000000000LL + (now.tv_nsec - x->progress_last.tv_nsec) <
		    1000000000LL)
		return 0;
	x->progress_started = true;
	x->progress_last = now;
	x->opts->progress(x->opts->progress_ctx, x->have, dltotal > 0 ? x->start + (uint64_t)dltotal : 0);
	return 0;
}

/* ---- one attempt ---------------------------------------------------------- */

/* Make the hash cover exactly what is in the temporary file (the prefix a
 * resumed attempt builds on) and put the file offset at its end. */
static int fetch_rehash(struct fetch_xfer *x, struct berth_err *err)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	off_t off = 0;

	if (fstat(x->fd, &st) < 0)
		return berth_fail(err, errno, "cannot stat the temporary download %s", x->tmp_name);
	if (fetch_reset_hash(x) < 0)
		return berth_fail(err, ENOMEM, "cannot start a sha256 digest");
	if (st.st_size > 0) {
		buf = malloc(FETCH_HASH_BUF);
		if (!buf)
			return berth_fail(err, ENOMEM, "cannot hash the partial download");
	}
	while (off < st.st_size) {
		ssize_t n = berth_pread_full(x->fd, buf, FETCH_HASH_BUF, off);

		if (n <= 0)
			return berth_fail(err, n < 0 ? errno : EIO,
					  "cannot read back the partial download %s", x->tmp_name);
		if (!EVP_DigestUpdate(x->md, buf, (size_t)n))
			return berth_fail(err, ENOMEM, "cannot hash the partial download");
		off += n;
	}
	if (lseek(x->fd, st.st_size, SEEK_SET) < 0)
		return berth_fail(err, errno, "cannot seek in the temporary download %s", x->tmp_name);
	x->have = (uint64_t)st.st_size;
	return 0;
}

static bool fetch_transient_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
		return true;
	default:
		return false;
	}
}

static const char *fetch_curl_hint(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return "check the host name in the image URL and the node's DNS";
	case CURLE_COULDNT_CONNECT:
		return "check that the server is up and that the URL's host and port are right";
	case CURLE_OPERATION_TIMEDOUT:
		return "the connection or the transfer stalled for FetchTimeout seconds; check the network or raise FetchTimeout";
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		return "the connection broke; check the network and the server";
	case CURLE_TOO_MANY_REDIRECTS:
		return "the server redirects more than 5 times; check the image URL";
	case CURLE_UNSUPPORTED_PROTOCOL:
		return "berth fetches http://, https:// and file:// URLs and follows redirects to http:// and https:// only";
	case CURLE_FILE_COULDNT_READ_FILE:
		return "check that the file exists and that you can read it";
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return "check the server's TLS certificate and the node's CA bundle";
	default:
		return "check the image URL";
	}
}

static const char *fetch_reason(long code, const char *given)
{
	if (given && *given)
		return given;
	switch (code) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "";
	}
}

static enum fetch_outcome fetch_http_error(struct fetch_xfer *x, long code)
{
	const char *reason = fetch_reason(code, code == x->status ? x->reason : NULL);

	snprintf(x->why, sizeof(x->why), "the server answered %ld%s%s", code, *reason ? " " : "",
		 reason);
	x->last_status = code;
	if ((code == 429 || code == 503) && x->retry_after > FETCH_MAX_DELAY_MS / 1000) {
		snprintf(x->why, sizeof(x->why), "the server answered %ld %s and asks to retry "
			 "after %u s", code, reason, x->retry_after);
		x->hint = "it is rate limiting: wait that long, or use a mirror or credentials";
		return FETCH_FATAL;
	}
	if (code >= 500 || code == 408 || code == 429) {
		x->hint = "the server has a problem; try again later or tell its operator";
		return FETCH_RETRY;
	}
	if (code == 416 && x->have > 0)
		return FETCH_RESTART; /* our partial body no longer fits */
	if (code == 412 && x->opts->pin) {
		snprintf(x->why, sizeof(x->why), "the file changed after the job was submitted "
			 "(the server answered 412 to the pinned %s)",
			 !strncmp(x->opts->pin, "etag:", 5) ? "ETag" : "Last-Modified");
		x->hint = "resubmit the job to run the new file, or give a URL that does not change";
		return FETCH_FATAL;
	}
	if (code == 401 || code == 403)
		x->hint = "check the image URL and that it needs no credentials";
	else
		x->hint = "check the image URL";
	return FETCH_FATAL;
}

static enum fetch_outcome fetch_attempt(struct fetch_xfer *x, const struct fetch_meta *cond,
					bool is_file, struct berth_err *err)
{
	struct curl_slist *hdrs = NULL, *tmp;
	char line[FETCH_VALIDATOR_MAX + 32];
	bool conditional = false;
	long code = 0;
	CURLcode rc;

	x->why[0] = '\0';
	x->hint = "check the image URL";
	x->errbuf[0] = '\0';
	x->http_error = 0;
	x->cap_hit = false;
	x->write_errno = 0;
	x->first_write = true;
	x->status = 0;
	x->retry_after = 0;
	x->reason[0] = x->etag[0] = x->last_modified[0] = '\0';

	if (fetch_rehash(x, err) < 0)
		return FETCH_FATAL;
	x->start = x->have;
	/* Validators: conditional while nothing is on disk; If-Range when
	 * resuming, so a changed resource comes back whole. */
	if (x->have == 0 && cond) {
		if (cond->etag[0]) {
			snprintf(line, sizeof(line), "If-None-Match: %s", cond->etag);
			tmp = curl_slist_append(hdrs, line);
			hdrs = tmp ? tmp : hdrs;
			conditional = tmp != NULL;
		}
		if (cond->last_modified[0]) {
			snprintf(line, sizeof(line), "If-Modified-Since: %s", cond->last_modified);
			tmp = curl_slist_append(hdrs, line);
			hdrs = tmp ? tmp : hdrs;
			conditional = conditional || tmp != NULL;
		}
	} else if (x->have > 0 && (x->range_etag[0] || x->range_lm[0])) {
		snprintf(line, sizeof(line), "If-Range: %s",
			 x->range_etag[0] ? x->range_etag : x->range_lm);
		tmp = curl_slist_append(hdrs, line);
		hdrs = tmp ? tmp : hdrs;
	}
	if (x->opts->pin) {
		bool etag = !strncmp(x->opts->pin, "etag:", 5);
		snprintf(line, sizeof(line), "%s: %s", etag ? "If-Match" : "If-Unmodified-Since",
			 x->opts->pin + (etag ? 5 : 3));
		tmp = curl_slist_append(hdrs, line);
		hdrs = tmp ? tmp : hdrs;
	}
	for (const char *const *h = x->opts->headers; h && *h; h++) {
		tmp = curl_slist_append(hdrs, *h);
		hdrs = tmp ? tmp : hdrs;
	}
	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(x->curl, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)x->have);

	rc = curl_easy_perform(x->curl);

	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);

	if (x->have > x->start) {
		/* the body on disk now comes from this response */
		snprintf(x->range_etag, sizeof(x->range_etag), "%s",
			 strncmp(x->etag, "W/", 2) ? x->etag : "");
		snprintf(x->range_lm, sizeof(x->range_lm), "%s", x->last_modified);
	}
	if (x->write_errno) {
		berth_fail(err, x->write_errno,
			   "cannot write the download of %s to the cache folder (check the free space there)",
			   x->shown);
		return FETCH_FATAL;
	}
	if (x->cap_hit) {
		berth_fail(err, 0,
			   "cannot fetch %s: the image is larger than the fetch cap of %" PRIu64
			   " bytes (CacheMaxSize); use a smaller image or raise CacheMaxSize",
			   x->shown, x->opts->max_bytes);
		return FETCH_FATAL;
	}
	if (x->http_error)
		return fetch_http_error(x, x->http_error);
	if (rc == CURLE_RANGE_ERROR) {
		snprintf(x->why, sizeof(x->why), "the server cannot resume the download");
		return FETCH_RESTART;
	}
	if (rc != CURLE_OK) {
		/* libcurl's words may quote a URL: the one followed may be a
		 * redirect's Location, with a signature of its own. */
		berth_url_scrub(x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc), x->why,
				sizeof(x->why));
		x->hint = fetch_curl_hint(rc);
		return fetch_transient_curl(rc) ? FETCH_RETRY : FETCH_FATAL;
	}
	if (code >= 400)
		return fetch_http_error(x, code);
	if (code == 304) {
		if (conditional)
			return FETCH_NOT_MODIFIED;
		snprintf(x->why, sizeof(x->why), "the server answered 304 to a request that was not conditional");
		x->hint = "tell the server's operator";
		return FETCH_FATAL;
	}
	if (!is_file && code != 200 && code != 206) {
		snprintf(x->why, sizeof(x->why), "the server answered %ld %s instead of the file", code,
			 x->reason);
		x->hint = "check the image URL";
		return FETCH_FATAL;
	}
	return FETCH_DONE;
}

/* ---- the whole fetch ------------------------------------------------------ */

static int fetch_setup_curl(struct fetch_xfer *x, const char *url)
{
	long timeout = (long)x->opts->timeout_s;
	int bad = 0;

	x->curl = curl_easy_init();
	if (!x->curl)
		return -1;
	bad |= curl_easy_setopt(x->curl, CURLOPT_URL, url) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https,file") != CURLE_OK;
	/* A web server must not make us read a local file: no file:// redirects. */
	bad |= curl_easy_setopt(x->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_MAXREDIRS, FETCH_MAX_REDIRS) != CURLE_OK;
	/* No CURLOPT_TIMEOUT: a total limit would kill a big image on a slow
	 * link.  Connecting may take timeout seconds; after that the transfer
	 * must move FETCH_LOW_SPEED_BPS every timeout seconds. */
	bad |= curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT, timeout) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_LOW_SPEED_LIMIT, FETCH_LOW_SPEED_BPS) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_LOW_SPEED_TIME, timeout) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_USERAGENT, "berth/" BERTH_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, fetch_write_cb) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, x) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_HEADERFUNCTION, fetch_header_cb) != CURLE_OK;
	bad |= curl_easy_setopt(x->curl, CURLOPT_HEADERDATA, x) != CURLE_OK;
	if (x->opts->ca_file)
		bad |= curl_easy_setopt(x->curl, CURLOPT_CAINFO, x->opts->ca_file) != CURLE_OK;
	if (x->opts->progress) {
		bad |= curl_easy_setopt(x->curl, CURLOPT_XFERINFOFUNCTION, fetch_xferinfo_cb) != CURLE_OK;
		bad |= curl_easy_setopt(x->curl, CURLOPT_XFERINFODATA, x) != CURLE_OK;
		bad |= curl_easy_setopt(x->curl, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
	}
	return bad ? -1 : 0;
}

/* Move the complete body into place and record its validators. */
static int fetch_publish(struct fetch_xfer *x, const char *url, const char *hex,
			 const char *tar_name, const char *meta_name,
			 struct berth_fetch_result *res, struct berth_err *err)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	char digest[65];

	if (!EVP_DigestFinal_ex(x->md, d, &dlen) || dlen != 32)
		return berth_fail(err, ENOMEM, "cannot finish the sha256 digest of %s", x->shown);
	berth_hex_encode(d, dlen, digest);
	snprintf(res->sha256, sizeof(res->sha256), "sha256:%s", digest);
	res->bytes = x->have;
	if (x->opts->expect_digest && strcmp(x->opts->expect_digest, res->sha256) != 0)
		return berth_fail(err, 0, "%s does not match its digest (it should be %s, the "
				  "bytes received are %s); nothing was kept: the server or something "
				  "between it and this node altered it, tell the registry's operator",
				  x->shown, x->opts->expect_digest, res->sha256);
	if (fsync(x->fd) < 0)
		return berth_fail(err, errno,
				  "cannot write the download of %s to the cache folder (check the free space there)",
				  x->shown);
	/* Old validators must never describe the new file: drop them first. */
	if (!x->opts->dest_name && unlinkat(x->dir_fd, meta_name, 0) < 0 && errno != ENOENT)
		return berth_fail(err, errno, "cannot replace %s in the cache folder", meta_name);
	if (renameat(x->dir_fd, x->tmp_name, x->dir_fd, tar_name) < 0)
		return berth_fail(err, errno, "cannot move the download into place as %s", tar_name);
	x->tmp_name[0] = '\0';
	/* file:// answers carry a Last-Modified too, but a local copy is cheap
	 * and an mtime alone is a weak validator: always copy those. */
	if (!x->opts->dest_name && !fetch_is_file_url(url) && (x->etag[0] || x->last_modified[0]) &&
	    fetch_write_meta(x->dir_fd, hex, meta_name, x, res->sha256, res->bytes, err) < 0)
		return -1;
	fsync(x->dir_fd);
	return 0;
}

static int fetch_run(struct fetch_xfer *x, const char *url, const char *hex, const char *tar_name,
		     const char *meta_name, struct berth_fetch_result *res, struct berth_err *err)
{
	struct fetch_meta meta;
	bool conditional = !x->opts->dest_name &&
			   fetch_read_meta(x->dir_fd, meta_name, tar_name, hex, &meta);

	/* Pinned: the copy here is the pinned one, or it is not used at all. */
	if (conditional && x->opts->pin) {
		if (!strncmp(x->opts->pin, "etag:", 5) && !strcmp(meta.etag, x->opts->pin + 5)) {
			res->not_modified = true;
			res->bytes = meta.size;
			snprintf(res->sha256, sizeof(res->sha256), "%s", meta.sha256);
			return 0;
		}
		conditional = false;
	}
	bool is_file = fetch_is_file_url(url);
	bool free_restart = true;
	unsigned delay = x->opts->retry_delay_ms;
	unsigned attempt = 0;

	x->fd = fetch_open_temp(x->dir_fd, x->opts->dest_name ? x->opts->dest_name : hex, ".part", x->tmp_name, sizeof(x->tmp_name), err);
	if (x->fd < 0)
		return -1;
	if (fetch_setup_curl(x, url) < 0)
		return berth_fail(err, ENOMEM, "cannot set up libcurl to fetch %s", x->shown);

	for (;;) {
		enum fetch_outcome out = fetch_attempt(x, conditional ? &meta : NULL, is_file, err);

		attempt++;
		if (out == FETCH_DONE) {
			if (fetch_publish(x, url, hex, tar_name, meta_name, res, err) < 0)
				return -1;
			if (x->opts->progress)
				x->opts->progress(x->opts->progress_ctx, res->bytes, res->bytes);
			return 0;
		}
		if (out == FETCH_NOT_MODIFIED) {
			res->not_modified = true;
			res->bytes = meta.size;
			snprintf(res->sha256, sizeof(res->sha256), "%s", meta.sha256);
			return 0;
		}
		if (out == FETCH_FATAL) {
			if (x->why[0])
				berth_fail(err, 0, "cannot fetch %s: %s; %s", x->shown, x->why, x->hint);
			return -1;
		}
		if (out == FETCH_RESTART) {
			if (fetch_truncate(x) < 0)
				return berth_fail(err, errno, "cannot truncate the temporary download %s",
						  x->tmp_name);
			if (free_restart) {
				/* the first restart is the server's answer to a resume, not a failure */
				free_restart = false;
				attempt--;
				continue;
			}
		}
		if (attempt > x->opts->retries) {
			return berth_fail(err, 0, "cannot fetch %s: %s (gave up after %u attempt%s); %s",
					  x->shown, x->why, attempt, attempt == 1 ? "" : "s", x->hint);
		}
		fetch_sleep_ms(delay);
		delay = delay > FETCH_MAX_DELAY_MS / 2 ? FETCH_MAX_DELAY_MS : delay * 2;
	}
}

/* The caller's options (or the defaults), zero fields given their default. */
static void fetch_opts_complete(const struct berth_fetch_opts *opts, struct berth_fetch_opts *o)
{
	if (opts)
		*o = *opts;
	else
		berth_fetch_opts_init(o);
	if (!o->timeout_s)
		o->timeout_s = BERTH_FETCH_DEFAULT_TIMEOUT;
	if (!o->retry_delay_ms)
		o->retry_delay_ms = BERTH_FETCH_DEFAULT_DELAY_MS;
}

int berth_fetch_pin(const char *url, const struct berth_fetch_opts *opts, char *pin,
		    size_t cap, struct berth_err *err)
{
	struct berth_fetch_opts o;
	struct fetch_xfer x;
	char shown[FETCH_SHOWN_MAX];
	long code = 0;

	pin[0] = '\0';
	fetch_opts_complete(opts, &o);
	o.progress = NULL;
	berth_url_masked(url, shown, sizeof(shown));
	if (berth_curl_load(err) < 0 || fetch_check_url(url, shown, err) < 0)
		return -1;
	if (fetch_is_file_url(url))
		return 0; /* a local file: nothing a server could move */
	pthread_once(&fetch_once, fetch_global_init);
	memset(&x, 0, sizeof(x));
	x.opts = &o;
	x.shown = shown;
	if (fetch_setup_curl(&x, url) < 0) {
		if (x.curl)
			curl_easy_cleanup(x.curl);
		return berth_fail(err, ENOMEM, "cannot set up libcurl to check %s", shown);
	}
	curl_easy_setopt(x.curl, CURLOPT_NOBODY, 1L);
	CURLcode rc = curl_easy_perform(x.curl);
	curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(x.curl);
	if (rc != CURLE_OK) {
		char why[sizeof(x.errbuf) * 2];
		berth_url_scrub(x.errbuf[0] ? x.errbuf : curl_easy_strerror(rc), why, sizeof(why));
		return berth_fail(err, 0, "cannot reach %s: %s; %s", shown, why, fetch_curl_hint(rc));
	}
	if (code >= 400) {
		const char *reason = fetch_reason(code, code == x.status ? x.reason : NULL);
		return berth_fail(err, 0, "cannot fetch %s: the server answered %ld%s%s; check the "
				  "image URL", shown, code, *reason ? " " : "", reason);
	}
	if (x.etag[0] && strncmp(x.etag, "W/", 2) != 0)
		snprintf(pin, cap, "etag:%s", x.etag);
	else if (x.last_modified[0])
		snprintf(pin, cap, "lm:%s", x.last_modified);
	return 0;
}

int berth_fetch(const char *url, const char *dir, const struct berth_fetch_opts *opts,
		struct berth_fetch_result *res, struct berth_err *err)
{
	struct berth_fetch_opts o;
	struct fetch_xfer x;
	char shown[FETCH_SHOWN_MAX], hex[65], tar_name[80], meta_name[80];
	int ret;

	fetch_opts_complete(opts, &o);
	memset(res, 0, sizeof(*res));
	if (berth_curl_load(err) < 0 || berth_crypto_load(err) < 0)
		return -1;
	if (!url || !*url)
		return berth_fail(err, 0, "no image URL given; pass an http://, https:// or file:// URL");
	berth_url_masked(url, shown, sizeof(shown));
	if (o.what)
		snprintf(shown, sizeof(shown), "%s", o.what);
	if (fetch_check_url(url, shown, err) < 0)
		return -1;
	if (fetch_sha256_hex(url, hex) < 0)
		return berth_fail(err, ENOMEM, "cannot hash the URL %s", shown);
	if (o.dest_name && (strchr(o.dest_name, '/') || strlen(o.dest_name) > 64 || !o.dest_name[0]))
		return berth_fail(err, EINVAL, "bad download name %s", o.dest_name);
	snprintf(tar_name, sizeof(tar_name), o.dest_name ? "%s" : "%s.tar",
		 o.dest_name ? o.dest_name : hex);
	snprintf(meta_name, sizeof(meta_name), "%s.meta", hex);
	if ((size_t)snprintf(res->path, sizeof(res->path), "%s/%s", dir, tar_name) >= sizeof(res->path))
		return berth_fail(err, ENAMETOOLONG, "cannot use the cache folder %s", dir);
	pthread_once(&fetch_once, fetch_global_init);
	if (fetch_init_rc != CURLE_OK)
		return berth_fail(err, 0, "cannot initialise libcurl: %s",
				  curl_easy_strerror(fetch_init_rc));

	memset(&x, 0, sizeof(x));
	x.opts = &o;
	x.shown = shown;
	x.fd = -1;
	x.dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (x.dir_fd < 0)
		return berth_fail(err, errno,
				  "cannot open the cache folder %s to fetch %s; check that it exists and is yours",
				  dir, shown);
	x.md = EVP_MD_CTX_new();
	if (!x.md)
		ret = berth_fail(err, ENOMEM, "cannot start a sha256 digest");
	else
		ret = fetch_run(&x, url, hex, tar_name, meta_name, res, err);

	if (x.curl)
		curl_easy_cleanup(x.curl);
	EVP_MD_CTX_free(x.md);
	if (x.fd >= 0)
		close(x.fd);
	if (x.tmp_name[0])
		unlinkat(x.dir_fd, x.tmp_name, 0);
	close(x.dir_fd);
	if (ret < 0) {
		memset(res, 0, sizeof(*res));
		res->http_status = x.last_status;
		res->retry_after = x.retry_after;
	}
	return ret;
}
