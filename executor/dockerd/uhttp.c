/* berth: HTTP/1.1 over a local stream socket. See uhttp.h. */
#define _GNU_SOURCE
#include "executor/dockerd/uhttp.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define UPLOAD_BLOCK (256 * 1024)
#define CHUNK_LINE_MAX 256

void uhttp_body_free(struct uhttp_body *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int body_add(struct uhttp_body *b, const char *data, size_t n, struct uhttp_answer *ans,
		    struct berth_err *err)
{
	if (n > b->max - b->len) {
		ans->too_big = true;
		return berth_fail(err, 0, "answer larger than %zu bytes", b->max);
	}
	if (b->sink && ans->status == 200) {
		if (uhttp_write_all(b->sink_fd, data, n, false) < 0)
			return berth_fail(err, errno, "writing the answer");
		b->len += n;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(p = realloc(b->p, cap)))
			return berth_fail(err, ENOMEM, "reading the answer");
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int uhttp_write_all(int fd, const void *data, size_t n, bool sock)
{
	const char *p = data;

	while (n > 0) {
		ssize_t w = sock ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			(void)poll(&pf, 1, -1);
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
	return uhttp_write_all(fd, p, n, true);
}

/* ---- reading ------------------------------------------------------------ */

/* More bytes into c->buf: how many, 0 at the end, -1 with errno. */
static ssize_t conn_fill(struct uhttp_conn *c)
{
	ssize_t n;

	if (c->pos > 0) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	if (c->fd < 0 || c->len == sizeof(c->buf))
		return 0;
	do
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		c->len += (size_t)n;
	return n;
}

static int cut_short(ssize_t r, struct berth_err *err)
{
	if (r == 0)
		return berth_fail(err, 0, "the connection closed before the answer ended");
	return berth_fail(err, errno, "reading the answer");
}

/* One line, its CRLF (or bare LF) taken off, into line[cap]; *used counts
 * the bytes toward a limit of `limit`.  Its length, or -1 with *err. */
static int read_line(struct uhttp_conn *c, char *line, size_t cap, size_t *used, size_t limit,
		     struct uhttp_answer *ans, struct berth_err *err)
{
	size_t n = 0;

	for (;;) {
		while (c->pos < c->len) {
			char ch = c->buf[c->pos++];

			ans->answered = true;
			if (++*used > limit || n + 1 >= cap)
				return berth_fail(err, 0, "an answer line or its headers exceed %zu bytes", limit);
			if (ch == '\n') {
				if (n > 0 && line[n - 1] == '\r')
					n--;
				line[n] = '\0';
				return (int)n;
			}
			line[n++] = ch;
		}
		ssize_t r = conn_fill(c);

		if (r <= 0)
			return cut_short(r, err);
	}
}

/* Exactly n bytes of body. */
static int read_exact(struct uhttp_conn *c, uint64_t n, struct uhttp_body *body,
		      struct uhttp_answer *ans, struct berth_err *err)
{
	while (n > 0) {
		if (c->pos == c->len) {
			ssize_t r = conn_fill(c);

			if (r <= 0)
				return cut_short(r, err);
		}
		size_t take = c->len - c->pos;

		if (take > n)
			take = (size_t)n;
		if (body_add(body, c->buf + c->pos, take, ans, err) < 0)
			return -1;
		c->pos += take;
		n -= take;
	}
	return 0;
}

/* Everything up to the connection's end. */
static int read_to_end(struct uhttp_conn *c, struct uhttp_body *body, struct uhttp_answer *ans,
		       struct berth_err *err)
{
	for (;;) {
		if (body_add(body, c->buf + c->pos, c->len - c->pos, ans, err) < 0)
			return -1;
		c->pos = c->len;
		ssize_t r = conn_fill(c);

		if (r == 0)
			return 0;
		if (r < 0)
			return berth_fail(err, errno, "reading the answer");
	}
}

/* A decimal or hexadecimal count that fits in 63 bits, nothing else. */
static int parse_count(const char *s, int base, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;

	for (; *p; p++) {
		int d;

		if (isdigit((unsigned char)*p))
			d = *p - '0';
		else if (base == 16 && isxdigit((unsigned char)*p))
			d = tolower((unsigned char)*p) - 'a' + 10;
		else
			break;
		if (v > (UINT64_MAX >> 1) / (uint64_t)base)
			return -1;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (p == s)
		return -1;
	*out = v;
	return (int)(p - s);
}

/* Chunked transfer coding (RFC 9112 section 7.1); trailers are read and
 * dropped. */
static int read_chunked(struct uhttp_conn *c, struct uhttp_body *body, struct uhttp_answer *ans,
			struct berth_err *err)
{
	char line[CHUNK_LINE_MAX];
	size_t used = 0;
	uint64_t size;
	int n;

	for (;;) {
		used = 0;
		if (read_line(c, line, sizeof(line), &used, sizeof(line), ans, err) < 0)
			return -1;
		n = parse_count(line, 16, &size);
		if (n < 0 || (line[n] && line[n] != ';' && line[n] != ' ' && line[n] != '\t'))
			return berth_fail(err, 0, "bad chunk size line '%.40s'", line);
		if (size == 0)
			break;
		if (read_exact(c, size, body, ans, err) < 0)
			return -1;
		used = 0;
		if (read_line(c, line, sizeof(line), &used, sizeof(line), ans, err) < 0)
			return -1;
		if (line[0])
			return berth_fail(err, 0, "chunk longer than its size line said");
	}
	used = 0;
	do
		n = read_line(c, line, sizeof(line), &used, UHTTP_HEADER_MAX, ans, err);
	while (n > 0);
	return n < 0 ? -1 : 0;
}

struct framing {
	bool chunked;
	bool has_length;
	uint64_t length;
};

static const char *header_value(const char *line, const char *name)
{
	size_t n = strlen(name);

	if (strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	line += n + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

/* One header line into the framing, the keep-alive flag and the capture. */
static int take_header(const char *line, const char *capture, struct framing *f,
		       struct uhttp_answer *ans, struct berth_err *err)
{
	const char *v;
	uint64_t length;
	int n;

	if ((v = header_value(line, "Content-Length"))) {
		n = parse_count(v, 10, &length);
		if (n < 0 || v[n + strspn(v + n, " \t")] || (f->has_length && f->length != length))
			return berth_fail(err, 0, "bad Content-Length '%.40s'", v);
		f->has_length = true;
		f->length = length;
	} else if ((v = header_value(line, "Transfer-Encoding"))) {
		if (strcasecmp(v, "chunked") != 0)
			return berth_fail(err, 0, "transfer coding '%.40s' is not supported", v);
		f->chunked = true;
	} else if ((v = header_value(line, "Connection"))) {
		if (strcasestr(v, "close"))
			ans->keep_alive = false;
	}
	if (capture && (v = header_value(line, capture)) && !ans->captured[0]) {
		size_t word = 0; /* the value's first word: visible ASCII only */
		while (v[word] > ' ' && v[word] < 0x7f)
			word++;
		snprintf(ans->captured, sizeof(ans->captured), "%.*s", (int)word, v);
	}
	return 0;
}

/* "HTTP/1.x NNN reason": the status, or -1. */
static long parse_status(const char *line, struct uhttp_answer *ans)
{
	if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++)
		if (!isdigit((unsigned char)line[i]))
			return -1;
	if (line[12] && line[12] != ' ')
		return -1;
	if (line[7] == '0')
		ans->keep_alive = false; /* HTTP/1.0 closes unless told */
	return strtol(line + 9, NULL, 10);
}

/* The status line and headers; interim 1xx answers are skipped. */
static int read_head(struct uhttp_conn *c, const char *capture, struct framing *f,
		     struct uhttp_answer *ans, struct berth_err *err)
{
	char line[UHTTP_HEADER_MAX] = "";

	for (;;) {
		size_t used = 0;
		int n;

		if (read_line(c, line, sizeof(line), &used, UHTTP_HEADER_MAX, ans, err) < 0)
			return -1;
		if ((ans->status = parse_status(line, ans)) < 0)
			return berth_fail(err, 0, "not an HTTP/1.x answer: '%.60s'", line);
		while ((n = read_line(c, line, sizeof(line), &used, UHTTP_HEADER_MAX, ans, err)) > 0)
			if (take_header(line, capture, f, ans, err) < 0)
				return -1;
		if (n < 0)
			return -1;
		if (ans->status >= 200 || ans->status == 101)
			return 0;
		*f = (struct framing){ 0 };
		ans->captured[0] = '\0';
	}
}

int uhttp_read_answer(struct uhttp_conn *c, const char *method, const char *capture,
		      struct uhttp_answer *ans, struct uhttp_body *body, struct berth_err *err)
{
	struct framing f = { 0 };

	if (read_head(c, capture, &f, ans, err) < 0)
		return -1;
	if (strcmp(method, "HEAD") == 0 || ans->status == 204 || ans->status == 304 ||
	    ans->status == 101)
		return 0;
	if (f.chunked)
		return read_chunked(c, body, ans, err);
	if (f.has_length)
		return read_exact(c, f.length, body, ans, err);
	ans->keep_alive = false;
	return read_to_end(c, body, ans, err);
}

/* ---- sending ------------------------------------------------------------ */

/* The body from upload_fd: `size` bytes, or chunked when size < 0. */
static int send_upload(int sock, int fd, off_t size, struct uhttp_answer *ans,
		       struct berth_err *err)
{
	_cleanup_free_ char *block = malloc(UPLOAD_BLOCK);
	char frame[32];

	if (!block)
		return berth_fail(err, ENOMEM, "sending the request");
	for (;;) {
		ssize_t n = read(fd, block, UPLOAD_BLOCK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ans->upload_errno = errno;
			return berth_fail(err, errno, "reading the request's body");
		}
		if (n == 0)
			break;
		int framed = size < 0 ? snprintf(frame, sizeof(frame), "%zx\r\n", (size_t)n) : 0;

		if ((framed && send_all(sock, frame, (size_t)framed) < 0) ||
		    send_all(sock, block, (size_t)n) < 0 || (framed && send_all(sock, "\r\n", 2) < 0))
			return berth_fail(err, errno, "sending the request");
	}
	if (size < 0 && send_all(sock, "0\r\n\r\n", 5) < 0)
		return berth_fail(err, errno, "sending the request");
	return 0;
}

/* A regular file read from its start has a known length; else chunked. */
static off_t upload_size(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && lseek(fd, 0, SEEK_CUR) == 0)
		return st.st_size;
	return -1;
}

static int send_request(struct uhttp_conn *c, const struct uhttp_request *req,
			struct uhttp_answer *ans, struct berth_err *err)
{
	char head[2048];
	off_t size = req->upload_fd >= 0 ? upload_size(req->upload_fd) : -1;
	int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: localhost\r\n", req->method,
			 req->target);

	if (req->content_type)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\n",
			      req->content_type);
	if (req->body)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n\r\n",
			      req->body_len);
	else if (req->upload_fd >= 0 && size >= 0)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %jd\r\n\r\n",
			      (intmax_t)size);
	else if (req->upload_fd >= 0)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Transfer-Encoding: chunked\r\n\r\n");
	else
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: 0\r\n\r\n");
	if ((size_t)n >= sizeof(head))
		return berth_fail(err, 0, "request line longer than %zu bytes", sizeof(head));
	if (send_all(c->fd, head, (size_t)n) < 0 ||
	    (req->body && send_all(c->fd, req->body, req->body_len) < 0))
		return berth_fail(err, errno, "sending the request");
	if (req->upload_fd >= 0)
		return send_upload(c->fd, req->upload_fd, size, ans, err);
	return 0;
}

int uhttp_exchange(struct uhttp_conn *c, const struct uhttp_request *req,
		   struct uhttp_answer *ans, struct uhttp_body *body, struct berth_err *err)
{
	struct berth_err read_err = { 0 };

	*ans = (struct uhttp_answer){ .keep_alive = true };
	c->pos = c->len = 0;
	if (send_request(c, req, ans, err) == 0)
		return uhttp_read_answer(c, req->method, req->capture, ans, body, err);
	ans->keep_alive = false; /* a body cut short: the connection is spent */
	if (ans->upload_errno)
		return -1;
	/* The daemon may have answered (a refusal) before taking it all. */
	if (uhttp_read_answer(c, req->method, req->capture, ans, body, &read_err) == 0 && ans->status >= 400)
		return 0;
	return -1;
}

char *uhttp_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(3 * strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (isalnum(ch) || strchr("-._~", ch)) {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}
