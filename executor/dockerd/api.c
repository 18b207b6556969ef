/* berth: Docker Engine API client over the unix socket (see api.h): the
 * connection and its API version, requests on the kept-alive connection,
 * and the helpers every call shares (api_int.h): reference checks, error
 * answers, JSON answers, ids.  The calls themselves are in images.c,
 * containers.c and attach.c. */
#define _GNU_SOURCE
#include "executor/dockerd/api.h"
#include "executor/dockerd/api_int.h"
#include "executor/base/hex.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DK_CONNECT_TIMEOUT_S 10L

/* Plain AF_UNIX connect, its errno named when the daemon is not there. */
int dk_connect(const char *path, struct berth_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return berth_fail(err, ENAMETOOLONG,
				  "cannot reach Docker at %s: socket path too long (set a shorter DockerSocket)",
				  path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return berth_fail(err, errno, "cannot reach Docker at %s: socket", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		berth_fail(err, 0,
			   "cannot reach Docker at %s: %s; start dockerd or fix DockerSocket",
			   path, strerror(e));
		err->errnum = e;
		return -1;
	}
	return fd;
}

/* Refs and ids go into URL paths: allow only what image references and
 * container ids consist of. */
int dk_check_ref(const char *what, const char *ref, struct berth_err *err)
{
	if (!ref || !*ref)
		return berth_fail(err, 0, "Docker %s is empty: pass an id or name", what);
	if (strlen(ref) > 255)
		return berth_fail(err, 0, "Docker %s '%.40s...' is longer than 255 characters: pass an id",
				  what, ref);
	for (const char *p = ref; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-/:@", *p))
			return berth_fail(err, 0,
					  "Docker %s '%s' has the character '%c' that no id or name has: pass an id or repo:tag",
					  what, ref, *p);
	return 0;
}

static void dk_disconnect(struct berth_docker *d)
{
	if (d->conn.fd >= 0)
		close(d->conn.fd);
	d->conn.fd = -1;
}

/* One request on the kept-alive connection (made when there is none).
 * path is below the version prefix.  json_body (a string) or upload_fd
 * (>= 0: the image archive) is the body. */
static int dk_request_capture(struct berth_docker *d, const char *method, const char *path,
			      const char *json_body, int upload_fd, const char *capture,
			      struct uhttp_answer *ans_out, struct uhttp_body *out,
			      struct berth_err *err)
{
	struct uhttp_request req = { .method = method, .upload_fd = upload_fd,
				     .capture = capture };
	struct uhttp_answer ans;
	char target[1024], why[BERTH_ERR_MSG_MAX];
	int n = d->version[0] ? snprintf(target, sizeof(target), "/v%s%s", d->version, path)
			      : snprintf(target, sizeof(target), "%s", path);

	if (n < 0 || (size_t)n >= sizeof(target))
		return berth_fail(err, 0, "Docker request %s %.60s...: URL too long", method, path);
	req.target = target;
	if (json_body) {
		req.content_type = "application/json";
		req.body = json_body;
		req.body_len = strlen(json_body);
	} else if (upload_fd >= 0) {
		req.content_type = "application/x-tar";
	}
	if (!out->sink || !out->max)
		out->max = out->sink ? SIZE_MAX : DK_BODY_MAX;
	for (int attempt = 0;; attempt++) {
		bool reused = d->conn.fd >= 0;

		if (!reused && (d->conn.fd = dk_connect(d->socket, err)) < 0)
			return -1;
		if (uhttp_exchange(&d->conn, &req, &ans, out, err) == 0) {
			if (!ans.keep_alive)
				dk_disconnect(d);
			*ans_out = ans;
			return 0;
		}
		dk_disconnect(d);
		/* The daemon closes kept-alive connections it finds idle: a
		 * request that got no answer on one goes once more on a new
		 * connection (not an upload: the archive was read). */
		if (reused && !ans.answered && upload_fd < 0 && attempt == 0) {
			uhttp_body_free(out);
			continue;
		}
		break;
	}
	if (ans.upload_errno)
		return berth_fail(err, ans.upload_errno, "Docker %s %s: reading the image archive",
				  method, path);
	if (ans.too_big && out->sink)
		return berth_fail(err, EFBIG, "Docker %s %s: the image is larger than %zu bytes "
				  "(CacheMaxSize)", method, path, out->max);
	if (ans.too_big)
		return berth_fail(err, 0, "Docker %s %s: answer larger than %u MiB; check the daemon",
				  method, path, DK_BODY_MAX >> 20);
	snprintf(why, sizeof(why), "%s", err->msg);
	n = err->errnum;
	berth_fail(err, 0, "cannot reach Docker at %s: %s (%s %s); check that dockerd is running",
		   d->socket, why, method, path);
	err->errnum = n;
	return -1;
}

int dk_request(struct berth_docker *d, const char *method, const char *path,
	       const char *json_body, int upload_fd, long *status,
	       struct uhttp_body *out, struct berth_err *err)
{
	struct uhttp_answer ans = { 0 };

	if (dk_request_capture(d, method, path, json_body, upload_fd, NULL, &ans, out, err) < 0)
		return -1;
	*status = ans.status;
	return 0;
}

/* The daemon's {"message": "..."} or, failing that, the raw answer. */
int dk_http_fail(struct berth_err *err, const char *what, long status,
		 const struct uhttp_body *body, const char *fix)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *m;
	const char *msg = NULL;

	if (body->p) {
		o = json_tokener_parse(body->p);
		if (o && json_object_object_get_ex(o, "message", &m))
			msg = json_object_get_string(m);
	}
	if (!msg)
		msg = body->p && body->p[0] ? body->p : "(no message)";
	return berth_fail(err, 0, "%s: Docker answered HTTP %ld: %.400s%s%s", what, status,
			  msg, fix ? "; " : "", fix ? fix : "");
}

int dk_parse_json(const struct uhttp_body *b, const char *what, json_object **o,
		  struct berth_err *err)
{
	*o = b->p ? json_tokener_parse(b->p) : NULL;
	if (!*o || !json_object_is_type(*o, json_type_object)) {
		if (*o)
			json_object_put(*o);
		*o = NULL;
		return berth_fail(err, 0, "%s: Docker's answer is not a JSON object: %.200s",
				  what, b->p ? b->p : "(empty)");
	}
	return 0;
}

int dk_copy_id(char id[BERTH_DOCKER_ID_MAX], const char *s, bool image,
	       const char *what, struct berth_err *err)
{
	size_t hex = image ? 7 : 0;

	if (image ? !berth_digest_valid(s) : (!s || !berth_is_hex(s, 64) || s[64]))
		return berth_fail(err, 0, "%s: Docker answered an id that is not %s64 hex digits: '%.80s'",
				  what, image ? "sha256:" : "", s ? s : "(none)");
	memcpy(id, s, hex + 65);
	return 0;
}

static int dk_parse_version(const char *s, int *major, int *minor)
{
	char *end;
	long a, b;

	errno = 0;
	a = strtol(s, &end, 10);
	if (end == s || *end != '.' || errno)
		return -1;
	s = end + 1;
	b = strtol(s, &end, 10);
	if (end == s || *end || errno || a < 0 || a > 1000 || b < 0 || b > 1000)
		return -1;
	*major = (int)a;
	*minor = (int)b;
	return 0;
}

int berth_docker_open(struct berth_docker **dp, const char *socket_path,
		      struct berth_err *err)
{
	struct berth_docker *d;
	_cleanup_buf_ struct uhttp_body body = { 0 };
	struct uhttp_answer ans = { 0 };
	int fd, major, minor;

	*dp = NULL;
	if (!socket_path || !*socket_path)
		socket_path = BERTH_DOCKER_SOCKET;
	fd = dk_connect(socket_path, err);
	if (fd < 0)
		return -1;
	d = calloc(1, sizeof(*d));
	if (!d) {
		close(fd);
		return berth_fail(err, ENOMEM, "opening Docker connection");
	}
	d->conn.fd = fd;
	d->socket = strdup(socket_path);
	if (!d->socket) {
		berth_docker_close(d);
		return berth_fail(err, ENOMEM, "opening Docker connection");
	}

	/* The API version from /_ping's Api-Version header, as the docker CLI
	 * negotiates it: dockerd answers /_ping in 0.2 ms, /version in 8 ms
	 * (it asks containerd and runc for theirs), paid by every step. */
	if (dk_request_capture(d, "GET", "/_ping", NULL, -1, "Api-Version", &ans, &body, err) < 0)
		goto fail;
	if (ans.status != 200) {
		dk_http_fail(err, "asking Docker for its API version (GET /_ping)", ans.status, &body,
			     NULL);
		goto fail;
	}
	if (dk_parse_version(ans.captured, &major, &minor) < 0) {
		berth_fail(err, 0, "Docker at %s answered GET /_ping without a usable Api-Version header ('%s'): is it a Docker daemon?",
			   socket_path, ans.captured);
		goto fail;
	}
	if (major > BERTH_DOCKER_API_MAX_MAJOR ||
	    (major == BERTH_DOCKER_API_MAX_MAJOR && minor > BERTH_DOCKER_API_MAX_MINOR)) {
		major = BERTH_DOCKER_API_MAX_MAJOR;
		minor = BERTH_DOCKER_API_MAX_MINOR;
	}
	if (major < BERTH_DOCKER_API_MIN_MAJOR ||
	    (major == BERTH_DOCKER_API_MIN_MAJOR && minor < BERTH_DOCKER_API_MIN_MINOR)) {
		berth_fail(err, 0, "Docker at %s speaks API %d.%d; berth needs %d.%d (Docker 19.03) or newer: upgrade Docker",
			   socket_path, major, minor, BERTH_DOCKER_API_MIN_MAJOR,
			   BERTH_DOCKER_API_MIN_MINOR);
		goto fail;
	}
	snprintf(d->version, sizeof(d->version), "%d.%d", major, minor);
	*dp = d;
	return 0;
fail:
	berth_docker_close(d);
	return -1;
}

void berth_docker_close(struct berth_docker *d)
{
	if (!d)
		return;
	dk_disconnect(d);
	free(d->socket);
	free(d);
}

const char *berth_docker_api_version(const struct berth_docker *d)
{
	return d->version;
}
