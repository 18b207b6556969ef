/* berth: HTTP/1.1 over a local stream socket, the subset the Docker Engine
 * API uses (api.c and its calls: images.c, containers.c, attach.c).
 *
 * libcurl did this before, and loading it (with its thirty libraries: TLS,
 * Kerberos, LDAP, IDN...) cost every docker step more than berth's whole
 * target share of it, to talk to a unix socket on the same machine.  This
 * client sends one request at a time on a kept-alive connection and reads
 * answers framed by Content-Length, by chunked transfer coding, or by the
 * connection's end.  Nothing here knows Docker: the caller words errors. */
#ifndef BERTH_UHTTP_H
#define BERTH_UHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf/error.h"

#define UHTTP_READ_BUF 16384
#define UHTTP_HEADER_MAX 8192 /* status line and headers together */

/* An answer's body, grown as it comes; at most `max` bytes are kept. */
struct uhttp_body {
	char *p; /* NUL-terminated when not NULL */
	size_t len, cap, max;
	/* When `sink` is set, a 200 answer's body goes to sink_fd as it comes
	 * (an image export, larger than memory should hold); len counts it
	 * against max.  Any other answer (an error) is kept in p as usual. */
	bool sink;
	int sink_fd;
};
void uhttp_body_free(struct uhttp_body *b);

/* The bytes of one connection: a reader over fd, or over memory (fd < 0:
 * only buf[pos..len), for the parser's fuzzer and tests). */
struct uhttp_conn {
	int fd;
	size_t pos, len;
	char buf[UHTTP_READ_BUF];
};

struct uhttp_request {
	const char *method;       /* "GET", "POST", "DELETE" */
	const char *target;       /* "/v1.41/containers/create" */
	const char *content_type; /* NULL: none */
	const char *body;         /* with body_len; NULL: none */
	size_t body_len;
	int upload_fd; /* >= 0: the body is read from it (the image archive) */
	const char *capture; /* a header whose value the answer keeps; NULL: none */
};

struct uhttp_answer {
	long status;
	bool keep_alive; /* the connection may carry the next request */
	int upload_errno; /* read(2) of upload_fd failed with it */
	bool answered;    /* at least one byte of the answer came */
	bool too_big;     /* the body passed uhttp_body.max */
	char captured[64]; /* the request's `capture` header, cut to fit; "" if absent */
};

/* Send the request on c->fd and read its answer into *body.  -1 with *err
 * ("sending the request: ...", "the connection closed before the answer
 * ended", "answer larger than N bytes", ...) and what is known in *ans. */
int uhttp_exchange(struct uhttp_conn *c, const struct uhttp_request *req,
		   struct uhttp_answer *ans, struct uhttp_body *body, struct berth_err *err);

/* Read one answer (status line, headers, body) from c: the second half of
 * uhttp_exchange, on its own for a reader over memory. */
int uhttp_read_answer(struct uhttp_conn *c, const char *method, const char *capture,
		      struct uhttp_answer *ans, struct uhttp_body *body, struct berth_err *err);

/* All n bytes of data to fd: send(2) with MSG_NOSIGNAL on a socket (a peer
 * gone away must not SIGPIPE the caller), write(2) otherwise; a
 * non-blocking fd is waited for.  -1 with errno. */
int uhttp_write_all(int fd, const void *data, size_t n, bool sock);
/* Percent-encode s for a query value (all but A-Z a-z 0-9 - . _ ~).
 * malloc'ed; NULL when out of memory. */
char *uhttp_escape(const char *s);

#endif
