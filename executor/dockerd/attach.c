/* berth: attaching to a container (see api.h): the upgraded connection
 * and the relay of its multiplexed stdout/stderr frames and of stdin. */
#define _GNU_SOURCE
#include "executor/dockerd/api.h"
#include "executor/dockerd/api_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DK_HEADER_MAX 8192       /* cap on the attach answer's headers */
#define DK_ATTACH_TIMEOUT_MS 30000

/* Wait up to the attach deadline for fd to be readable. */
static int dk_wait_readable(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&pf, 1, DK_ATTACH_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0 ? 0 : -1;
}

/* The attach answer's status line and headers, exactly: the bytes after
 * them are the container's stream, which the relay reads from the socket.
 * Peeked, then taken up to the blank line, so nothing of the stream is
 * consumed.  The length taken; 0 when the daemon closed first, -1 with
 * errno (E2BIG: no blank line within max). */
static ssize_t dk_read_head_exact(int fd, char *hdr, size_t max)
{
	size_t len = 0;

	while (len < max) {
		if (dk_wait_readable(fd) < 0)
			return -1;
		ssize_t n = recv(fd, hdr + len, max - len, MSG_PEEK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n;
		/* the blank line may begin in what was taken before */
		size_t from = len > 3 ? len - 3 : 0, take = (size_t)n;
		for (size_t i = from; i + 4 <= len + (size_t)n; i++)
			if (!memcmp(hdr + i, "\r\n\r\n", 4)) {
				take = i + 4 - len;
				break;
			}
		if (recv(fd, hdr + len, take, MSG_WAITALL) != (ssize_t)take)
			return -1;
		len += take;
		if (len >= 4 && !memcmp(hdr + len - 4, "\r\n\r\n", 4))
			return (ssize_t)len;
	}
	errno = E2BIG;
	return -1;
}

/* The attach answer's head (its status line and headers, len bytes at
 * head->buf), parsed by the one HTTP parser: a HEAD-like read stops after
 * the headers.  The status in ans, the Content-Length of an error's body
 * in *body_len (0 when none or unreadable). */
static int dk_attach_head(struct uhttp_conn *head, size_t len, struct uhttp_answer *ans,
			  long *body_len, struct berth_err *err)
{
	struct uhttp_body none = { 0 };

	head->fd = -1;
	head->pos = 0;
	head->len = len;
	*ans = (struct uhttp_answer){ .keep_alive = true };
	int rc = uhttp_read_answer(head, "HEAD", "Content-Length", ans, &none, err);
	uhttp_body_free(&none);
	char *end;
	long n = strtol(ans->captured, &end, 10);
	*body_len = rc == 0 && end != ans->captured && !*end && n > 0 ? n : 0;
	return rc;
}

/* An error answer's body (small JSON, with Content-Length), best effort. */
static void dk_read_error_body(int fd, long want, struct uhttp_body *body)
{
	if (want <= 0 || want >= 65536 || !(body->p = calloc(1, (size_t)want + 1)))
		return;
	while (body->len < (size_t)want && dk_wait_readable(fd) == 0) {
		ssize_t n = read(fd, body->p + body->len, (size_t)want - body->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		body->len += (size_t)n;
	}
}

int berth_docker_attach(struct berth_docker *d, const char *id, int *sock_fd,
			struct berth_err *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_buf_ struct uhttp_body body = { 0 };
	struct uhttp_answer ans = { .keep_alive = true };
	static __thread struct uhttp_conn head; /* 16 KiB: not on the stack */
	char req[768];
	int n;

	*sock_fd = -1;
	if (dk_check_ref("container id", id, err) < 0)
		return berth_wrap(err, "attaching to container");
	n = snprintf(req, sizeof(req),
		     "POST /v%s/containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
		     "Host: docker\r\n"
		     "Content-Length: 0\r\n"
		     "Connection: Upgrade\r\n"
		     "Upgrade: tcp\r\n"
		     "\r\n",
		     d->version, id);
	if (n < 0 || (size_t)n >= sizeof(req))
		return berth_fail(err, 0, "attaching to container: request too long");
	fd = dk_connect(d->socket, err);
	if (fd < 0)
		return -1;
	if (uhttp_write_all(fd, req, (size_t)n, true) < 0)
		return berth_fail(err, errno, "attaching to container %.12s: sending the request to %s",
				  id, d->socket);
	ssize_t len = dk_read_head_exact(fd, head.buf, DK_HEADER_MAX);
	if (len < 0 && errno == E2BIG)
		return berth_fail(err, 0, "attaching to container %.12s: Docker's answer headers exceed %d bytes",
				  id, DK_HEADER_MAX);
	if (len < 0)
		return berth_fail(err, errno, "attaching to container %.12s: reading Docker's answer", id);
	if (len == 0)
		return berth_fail(err, 0, "attaching to container %.12s: Docker closed the connection before answering; check the daemon log",
				  id);
	long body_len = 0;
	if (dk_attach_head(&head, (size_t)len, &ans, &body_len, err) < 0)
		return berth_wrap(err, "attaching to container %.12s: Docker's answer", id);
	if (ans.status != 101 && ans.status != 200) {
		char what[80];

		dk_read_error_body(fd, body_len, &body);
		snprintf(what, sizeof(what), "attaching to container %.12s", id);
		return dk_http_fail(err, what, ans.status, &body, NULL);
	}
	*sock_fd = berth_steal_fd(fd);
	return 0;
}

struct dk_demux {
	unsigned char hdr[8];
	size_t hdr_len;
	uint32_t left; /* payload bytes of the current frame still to come */
	int target;
};

static int dk_demux_feed(struct dk_demux *x, const char *p, size_t n, int out_fd,
			 int err_fd, struct berth_err *err)
{
	while (n > 0) {
		if (x->left == 0) {
			size_t take = 8 - x->hdr_len;

			if (take > n)
				take = n;
			memcpy(x->hdr + x->hdr_len, p, take);
			x->hdr_len += take;
			p += take;
			n -= take;
			if (x->hdr_len < 8)
				return 0;
			x->hdr_len = 0;
			if (x->hdr[0] > 2 || x->hdr[1] || x->hdr[2] || x->hdr[3])
				return berth_fail(err, 0, "relaying container output: bad frame header %02x %02x %02x %02x (was the container created with a TTY?)",
						  x->hdr[0], x->hdr[1], x->hdr[2], x->hdr[3]);
			x->target = x->hdr[0] == 2 ? err_fd : out_fd;
			x->left = (uint32_t)x->hdr[4] << 24 | (uint32_t)x->hdr[5] << 16 |
				  (uint32_t)x->hdr[6] << 8 | (uint32_t)x->hdr[7];
			continue;
		}
		{
			size_t take = n < x->left ? n : x->left;

			if (x->target >= 0 && uhttp_write_all(x->target, p, take, false) < 0)
				return berth_fail(err, errno, "relaying container output to fd %d",
						  x->target);
			p += take;
			n -= take;
			x->left -= (uint32_t)take;
		}
	}
	return 0;
}

int berth_docker_relay(int sock_fd, int in_fd, int out_fd, int err_fd,
		       struct berth_err *err)
{
	struct dk_demux x = { .target = -1 };
	char inbuf[65536], buf[65536];
	size_t in_len = 0, in_off = 0;
	bool in_open = in_fd >= 0;
	int fl = fcntl(sock_fd, F_GETFL);

	if (fl < 0 || fcntl(sock_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return berth_fail(err, errno, "relaying container stdio: fcntl on the Docker stream");
	if (!in_open)
		(void)shutdown(sock_fd, SHUT_WR);

	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = sock_fd, .events = POLLIN },
			{ .fd = -1, .events = POLLIN },
		};
		int r;

		/* Take more input only when the last piece is fully sent, so a
		 * container that does not read its stdin cannot stall output. */
		if (in_len > in_off)
			pf[0].events |= POLLOUT;
		else if (in_open)
			pf[1].fd = in_fd;
		r = poll(pf, 2, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			(void)fcntl(sock_fd, F_SETFL, fl);
			return berth_fail(err, e, "relaying container stdio: poll");
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(sock_fd, buf, sizeof(buf));

			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				n = -2;
			if (n == -1) {
				int e = errno;

				(void)fcntl(sock_fd, F_SETFL, fl);
				return berth_fail(err, e, "relaying container stdio: reading the Docker stream");
			}
			if (n == 0) {
				(void)fcntl(sock_fd, F_SETFL, fl);
				if (x.hdr_len || x.left)
					return berth_fail(err, 0, "relaying container stdio: Docker's stream ended inside a frame");
				return 0;
			}
			if (n > 0 && dk_demux_feed(&x, buf, (size_t)n, out_fd, err_fd, err) < 0) {
				(void)fcntl(sock_fd, F_SETFL, fl);
				return -1;
			}
		}
		if ((pf[0].revents & POLLOUT) && in_len > in_off) {
			ssize_t w = send(sock_fd, inbuf + in_off, in_len - in_off, MSG_NOSIGNAL);

			if (w > 0) {
				in_off += (size_t)w;
				if (in_off == in_len)
					in_off = in_len = 0;
			} else if (w < 0 && errno != EINTR && errno != EAGAIN) {
				/* The container closed its stdin (or exited):
				 * drop the input and keep relaying output. */
				in_off = in_len = 0;
				in_open = false;
				(void)shutdown(sock_fd, SHUT_WR);
			}
		}
		if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(in_fd, inbuf, sizeof(inbuf));

			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				/* EOF (or an unreadable input): half-close. */
				in_open = false;
				(void)shutdown(sock_fd, SHUT_WR);
			} else {
				in_len = (size_t)n;
				in_off = 0;
			}
		}
	}
}
