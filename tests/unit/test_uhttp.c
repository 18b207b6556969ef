/* Unit tests for executor/uhttp.c: answer framing (Content-Length,
 * chunked, to the end), interim answers, and every refusal, read from
 * memory; then a request and its answer over a real socket pair. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executor/dockerd/uhttp.h"

struct parsed {
	int rc;
	struct uhttp_answer ans;
	struct uhttp_body body;
	struct berth_err err;
};

static struct parsed *parse_capture(const char *method, const char *capture, const char *text,
				    size_t max)
{
	static struct uhttp_conn conn;
	static struct parsed p;

	uhttp_body_free(&p.body);
	memset(&p, 0, sizeof(p));
	p.body.max = max;
	p.ans.keep_alive = true;
	conn.fd = -1;
	conn.pos = 0;
	conn.len = strlen(text);
	memcpy(conn.buf, text, conn.len);
	p.rc = uhttp_read_answer(&conn, method, capture, &p.ans, &p.body, &p.err);
	return &p;
}

static struct parsed *parse(const char *method, const char *text, size_t max)
{
	return parse_capture(method, NULL, text, max);
}

static void test_content_length(void **state)
{
	(void)state;
	struct parsed *p = parse("GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello+next", 100);

	assert_int_equal(p->rc, 0);
	assert_int_equal(p->ans.status, 200);
	assert_true(p->ans.keep_alive);
	assert_string_equal(p->body.p, "hello");
}

static void test_chunked_with_trailer(void **state)
{
	(void)state;
	struct parsed *p = parse("POST", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
				 "3;ext=1\r\n{\"a\r\nA\r\n\":1234567}\r\n0\r\nX-T: 1\r\n\r\n", 100);

	assert_int_equal(p->rc, 0);
	assert_string_equal(p->body.p, "{\"a\":1234567}");
}

static void test_interim_and_close(void **state)
{
	(void)state;
	struct parsed *p = parse("GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n"
				 "Connection: close\r\n\r\n{\"message\":\"no\"}", 100);

	assert_int_equal(p->rc, 0);
	assert_int_equal(p->ans.status, 404);
	assert_false(p->ans.keep_alive);
	assert_string_equal(p->body.p, "{\"message\":\"no\"}");
}

static void test_no_body_statuses(void **state)
{
	(void)state;
	struct parsed *p = parse("POST", "HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", 100);

	assert_int_equal(p->rc, 0);
	assert_int_equal(p->ans.status, 204);
	assert_null(p->body.p);
}

static void refused(const char *text, size_t max, const char *words)
{
	struct parsed *p = parse("GET", text, max);

	assert_int_equal(p->rc, -1);
	if (!strstr(p->err.msg, words))
		fail_msg("'%s' refused with '%s', not '%s'", text, p->err.msg, words);
}

static void test_refusals(void **state)
{
	(void)state;
	refused("SSH-2.0-OpenSSH\r\n\r\n", 100, "not an HTTP/1.x answer");
	refused("HTTP/1.1 20 OK\r\n\r\n", 100, "not an HTTP/1.x answer");
	refused("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 100, "closed before the answer ended");
	refused("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 4, "larger than 4 bytes");
	refused("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 100, "bad Content-Length");
	refused("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 100, "bad Content-Length");
	refused("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", 100, "bad Content-Length");
	refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 100, "not supported");
	refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 100, "bad chunk size");
	refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 100, "chunk longer");
	refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 100, "bad chunk size");
	refused("HTTP/1.1 200 OK\r\n", 100, "closed before the answer ended");

	char big[UHTTP_READ_BUF];
	size_t n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX: ");
	memset(big + n, 'a', sizeof(big) - n - 1);
	big[sizeof(big) - 1] = '\0';
	refused(big, 100, "exceed 8192 bytes");
}

/* The one header a caller asks for (Docker's Api-Version), whatever its
 * case; not one of an interim answer; cut at white space and to fit. */
static void test_capture(void **state)
{
	(void)state;
	struct parsed *p = parse_capture("GET", "Api-Version", "HTTP/1.1 200 OK\r\n"
					 "api-version: 1.41  \r\nContent-Length: 2\r\n\r\nOK", 100);

	assert_int_equal(p->rc, 0);
	assert_string_equal(p->ans.captured, "1.41");
	assert_string_equal(p->body.p, "OK");
	p = parse_capture("GET", "Api-Version", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 100);
	assert_int_equal(p->rc, 0);
	assert_string_equal(p->ans.captured, "");
	p = parse_capture("GET", "Api-Version", "HTTP/1.1 100 Continue\r\nApi-Version: 9.9\r\n\r\n"
			  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 100);
	assert_int_equal(p->rc, 0);
	assert_string_equal(p->ans.captured, "");
	p = parse_capture("GET", "Api-Version", "HTTP/1.1 200 OK\r\nApi-Versions: 2.0\r\n"
			  "Api-Version: 1.40\r\nApi-Version: 1.44\r\nContent-Length: 0\r\n\r\n", 100);
	assert_string_equal(p->ans.captured, "1.40");
	char text[400];
	snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nX: %0200d\r\nContent-Length: 0\r\n\r\n", 7);
	p = parse_capture("GET", "x", text, 100);
	assert_int_equal(p->rc, 0);
	assert_int_equal(strlen(p->ans.captured), sizeof(p->ans.captured) - 1);
	/* a CR or a byte above ASCII inside the value ends the word (fuzz) */
	p = parse_capture("GET", "Api-Version", "HTTP/1.1 200 OK\nApi-Version: 1.41\r\xc3\n"
			  "Content-Length: 0\n\n", 100);
	assert_int_equal(p->rc, 0);
	assert_string_equal(p->ans.captured, "1.41");
	p = parse("GET", "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\n\r\n", 100);
	assert_string_equal(p->ans.captured, "");
}

static void test_escape(void **state)
{
	(void)state;
	char *e = uhttp_escape("{\"label\":[\"berth.job=1 &x\"]}~");

	assert_non_null(e);
	assert_string_equal(e, "%7B%22label%22%3A%5B%22berth.job%3D1%20%26x%22%5D%7D~");
	free(e);
}

/* A request on one end of a socket pair, a fake daemon on the other that
 * checks what it got and answers chunked, then a second request on the
 * same (kept-alive) connection. */
static void test_exchange_over_socket(void **state)
{
	(void)state;
	int sv[2];
	static struct uhttp_conn conn;
	struct uhttp_request req = { .method = "POST", .target = "/v1.41/x", .content_type = "application/json",
				     .body = "{}", .body_len = 2, .upload_fd = -1 };
	struct uhttp_answer ans;
	struct uhttp_body body = { .max = 1024 };
	struct berth_err err = { 0 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char got[4096] = "";
		ssize_t n = 0, r;

		close(sv[0]);
		while (!strstr(got, "\r\n\r\n{}") && (r = read(sv[1], got + n, sizeof(got) - 1 - (size_t)n)) > 0)
			n += r, got[n] = '\0';
		int ok = strncmp(got, "POST /v1.41/x HTTP/1.1\r\n", 24) == 0 &&
			 strstr(got, "\r\nContent-Length: 2\r\n") && strstr(got, "\r\nContent-Type: application/json\r\n");
		const char *a = ok ? "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
				   : "HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n";
		if (write(sv[1], a, strlen(a)) < 0)
			_exit(1);
		n = read(sv[1], got, sizeof(got) - 1); /* the second request */
		a = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
		_exit(n > 0 && write(sv[1], a, strlen(a)) > 0 ? 0 : 1);
	}
	close(sv[1]);
	conn.fd = sv[0];
	assert_int_equal(uhttp_exchange(&conn, &req, &ans, &body, &err), 0);
	assert_int_equal(ans.status, 201);
	assert_true(ans.keep_alive);
	assert_string_equal(body.p, "ok");
	uhttp_body_free(&body);
	req.method = "GET";
	req.body = NULL;
	assert_int_equal(uhttp_exchange(&conn, &req, &ans, &body, &err), 0);
	assert_int_equal(ans.status, 200);
	assert_string_equal(body.p, "{}");
	uhttp_body_free(&body);
	close(sv[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_chunked_with_trailer),
		cmocka_unit_test(test_interim_and_close),
		cmocka_unit_test(test_no_body_statuses),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_capture),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_exchange_over_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
