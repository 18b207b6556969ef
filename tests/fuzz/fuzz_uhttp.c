/* libFuzzer target: the framing of dockerd's answers as executor/uhttp.c
 * reads them (status line, headers, Content-Length, chunked coding, to
 * the end), from memory.  Properties checked beyond "no crash": an
 * accepted answer has a three-digit status and a body within the cap that
 * is NUL-terminated where it ends; a refusal says why; the reader never
 * takes more bytes than it was given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "executor/dockerd/uhttp.h"

#define BODY_CAP 4096

static struct uhttp_conn conn;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uhttp_answer ans = { .keep_alive = true };
	struct uhttp_body body = { .max = BODY_CAP };
	struct berth_err err = { 0 };
	/* Byte 0 picks the method: HEAD answers have no body. */
	const char *method = size && (data[0] & 1) ? "HEAD" : "GET";

	if (size)
		data++, size--;
	if (size > sizeof(conn.buf))
		size = sizeof(conn.buf);
	conn.fd = -1;
	conn.pos = 0;
	conn.len = size;
	memcpy(conn.buf, data, size);
	int rc = uhttp_read_answer(&conn, method, "Api-Version", &ans, &body, &err);

	if (rc < 0 && !err.msg[0])
		abort(); /* a refusal must say why */
	if (rc == 0 && (ans.status < 100 || ans.status > 999))
		abort();
	if (body.len > BODY_CAP || (body.p && body.p[body.len] != '\0'))
		abort();
	if (conn.pos > conn.len)
		abort();
	if (memchr(ans.captured, '\0', sizeof(ans.captured)) == NULL)
		abort(); /* a kept header value is NUL-terminated */
	for (const char *c = ans.captured; *c; c++)
		if (*c <= ' ' || *c >= 0x7f)
			abort(); /* and one word of visible ASCII */
	uhttp_body_free(&body);
	return 0;
}
