/* berth: Docker Engine API client over the unix socket. See docker_api.h. */
#define _GNU_SOURCE
#include "executor/dockerd/api.h"
#include "executor/base/jsonval.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "executor/dockerd/uhttp.h"
#include <json.h>

#define DK_BODY_MAX (8u << 20)   /* cap on any answer we keep in memory */
#define DK_HEADER_MAX 8192       /* cap on the attach answer's headers */
#define DK_ATTACH_TIMEOUT_MS 30000
#define DK_CONNECT_TIMEOUT_S 10L

struct berth_docker {
	char *socket;
	char version[16]; /* "" until negotiated, then "1.41" */
	struct uhttp_conn conn; /* conn.fd: the kept-alive connection, or -1 */
};

static void dk_json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ __attribute__((cleanup(dk_json_putp)))
#define _cleanup_buf_ __attribute__((cleanup(uhttp_body_free)))

/* Plain AF_UNIX connect, its errno named when the daemon is not there. */
static int dk_connect(const char *path, struct berth_err *err)
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
static int dk_check_ref(const char *what, const char *ref, struct berth_err *err)
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
	out->max = DK_BODY_MAX;
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

static int dk_request(struct berth_docker *d, const char *method, const char *path,
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
static int dk_http_fail(struct berth_err *err, const char *what, long status,
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

static int dk_parse_json(const struct uhttp_body *b, const char *what, json_object **o,
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

/* ---- images ------------------------------------------------------------ */

static int dk_copy_id(char id[BERTH_DOCKER_ID_MAX], const char *s, bool image,
		      const char *what, struct berth_err *err)
{
	size_t hex = image ? 7 : 0;

	if (!s || (image && strncmp(s, "sha256:", 7) != 0) || strlen(s) != hex + 64 ||
	    strspn(s + hex, "0123456789abcdef") != 64)
		return berth_fail(err, 0, "%s: Docker answered an id that is not %s64 hex digits: '%.80s'",
				  what, image ? "sha256:" : "", s ? s : "(none)");
	memcpy(id, s, hex + 65);
	return 0;
}

/* GET /images/{ref}/json: *o gets the parsed answer, or stays NULL when
 * the daemon has no such image (404).  `what` names the call in errors. */
static int dk_image_json(struct berth_docker *d, const char *ref, json_object **o,
			 char *what, size_t what_size, struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	char path[512];
	long status = 0;

	*o = NULL;
	if (dk_check_ref("image reference", ref, err) < 0)
		return -1;
	snprintf(what, what_size, "inspecting image %s", ref);
	snprintf(path, sizeof(path), "/images/%s/json", ref);
	if (dk_request(d, "GET", path, NULL, -1, &status, &body, err) < 0)
		return -1;
	if (status == 404)
		return 0;
	if (status != 200)
		return dk_http_fail(err, what, status, &body, NULL);
	return dk_parse_json(&body, what, o, err);
}

int berth_docker_image_inspect(struct berth_docker *d, const char *ref,
			       bool *present, char id[BERTH_DOCKER_ID_MAX],
			       struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *v;
	char what[320];

	*present = false;
	id[0] = '\0';
	if (dk_image_json(d, ref, &o, what, sizeof(what), err) < 0)
		return -1;
	if (!o)
		return 0;
	if (!json_object_object_get_ex(o, "Id", &v))
		return berth_fail(err, 0, "%s: Docker's answer has no Id", what);
	if (dk_copy_id(id, bj_string(v), true, what, err) < 0)
		return -1;
	*present = true;
	return 0;
}

int berth_docker_image_config(struct berth_docker *d, const char *ref, char **config,
			      struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *v;
	char what[320];

	*config = NULL;
	if (dk_image_json(d, ref, &o, what, sizeof(what), err) < 0)
		return -1;
	if (!o)
		return berth_fail(err, 0, "%s: Docker has no such image", what);
	if (!json_object_object_get_ex(o, "Config", &v))
		return berth_fail(err, 0, "%s: Docker's answer has no Config", what);
	/* In the image-config shape: {"config": {...}} */
	_cleanup_json_ json_object *wrap = json_object_new_object();
	if (!wrap || json_object_object_add(wrap, "config", json_object_get(v)) < 0)
		return berth_fail(err, ENOMEM, "%s", what);
	if (!(*config = strdup(json_object_to_json_string_ext(wrap, JSON_C_TO_STRING_PLAIN))))
		return berth_fail(err, ENOMEM, "%s", what);
	return 0;
}

/* Walk the concatenated JSON messages of a load answer. */
static int dk_load_messages(const struct uhttp_body *body, char *first_id,
			    char *first_name, size_t name_size, struct berth_err *err)
{
	struct json_tokener *tok = json_tokener_new();
	const char *p = body->p ? body->p : "";
	size_t left = body->len;
	int ret = 0;

	if (!tok)
		return berth_fail(err, ENOMEM, "loading image: parsing Docker's answer");
	while (left > 0 && ret == 0) {
		json_object *o, *v, *dv;
		size_t used;

		while (left > 0 && isspace((unsigned char)*p)) {
			p++;
			left--;
		}
		if (left == 0)
			break;
		o = json_tokener_parse_ex(tok, p, (int)(left > INT32_MAX ? INT32_MAX : left));
		if (!o) {
			ret = berth_fail(err, 0, "loading image: Docker's answer is not a JSON message stream: %.200s",
					 p);
			break;
		}
		used = json_tokener_get_parse_end(tok);
		json_tokener_reset(tok);
		p += used;
		left -= used;

		if ((json_object_object_get_ex(o, "errorDetail", &dv) &&
		     json_object_object_get_ex(dv, "message", &v)) ||
		    json_object_object_get_ex(o, "error", &v)) {
			ret = berth_fail(err, 0, "loading image: Docker: %.400s; check that the file is a docker-save archive (docker save / skopeo copy docker-archive:)",
					 bj_text(v));
		} else if (json_object_object_get_ex(o, "stream", &v) && bj_string(v)) {
			const char *s = bj_string(v);
			size_t n;

			if (!first_id[0] && !first_name[0] &&
			    strncmp(s, "Loaded image ID: ", 17) == 0) {
				n = strcspn(s + 17, "\r\n");
				if (n < BERTH_DOCKER_ID_MAX)
					memcpy(first_id, s + 17, n), first_id[n] = '\0';
			} else if (!first_id[0] && !first_name[0] &&
				   strncmp(s, "Loaded image: ", 14) == 0) {
				n = strcspn(s + 14, "\r\n");
				if (n < name_size)
					memcpy(first_name, s + 14, n), first_name[n] = '\0';
			}
		}
		json_object_put(o);
	}
	json_tokener_free(tok);
	return ret;
}

int berth_docker_image_load(struct berth_docker *d, int archive_fd,
			    char id[BERTH_DOCKER_ID_MAX], struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	char first_id[BERTH_DOCKER_ID_MAX] = "", name[300] = "";
	long status = 0;
	bool present;

	id[0] = '\0';
	if (dk_request(d, "POST", "/images/load?quiet=1", NULL, archive_fd, &status, &body, err) < 0)
		return -1;
	if (status != 200)
		return dk_http_fail(err, "loading image", status, &body,
				    "check that the file is a docker-save archive");
	if (dk_load_messages(&body, first_id, name, sizeof(name), err) < 0)
		return -1;
	if (first_id[0])
		return dk_copy_id(id, first_id, true, "loading image", err);
	if (!name[0])
		return berth_fail(err, 0, "loading image: Docker loaded no image (answer: %.200s); check that the archive's manifest.json names one",
				  body.p ? body.p : "");
	if (berth_docker_image_inspect(d, name, &present, id, err) < 0)
		return berth_wrap(err, "loading image");
	if (!present)
		return berth_fail(err, 0, "loading image: Docker said it loaded %s but does not know it now (removed concurrently?); retry",
				  name);
	return 0;
}

int berth_docker_image_remove(struct berth_docker *d, const char *ref,
			      struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	char path[512], what[320];
	long status = 0;

	if (dk_check_ref("image reference", ref, err) < 0)
		return -1;
	snprintf(what, sizeof(what), "removing image %s", ref);
	snprintf(path, sizeof(path), "/images/%s", ref);
	if (dk_request(d, "DELETE", path, NULL, -1, &status, &body, err) < 0)
		return -1;
	if (status == 200 || status == 404)
		return 0;
	return dk_http_fail(err, what, status, &body,
			    status == 409 ? "a container still uses it: remove that first" : NULL);
}

/* ---- containers -------------------------------------------------------- */

static int dk_check_path(const char *what, size_t i, const char *p, struct berth_err *err)
{
	if (!p || p[0] != '/')
		return berth_fail(err, 0, "bind %zu: %s '%s' is not an absolute path: give a path starting with /",
				  i, what, p ? p : "(null)");
	if (strpbrk(p, ":,"))
		return berth_fail(err, 0, "bind %zu: %s '%s' contains ':' or ',', which Docker's bind syntax cannot carry: rename or choose another path",
				  i, what, p);
	if (strlen(p) > 4096)
		return berth_fail(err, 0, "bind %zu: %s is longer than 4096 bytes", i, what);
	return 0;
}

/* Options and propagation travel inside Docker's own syntax: plain words. */
static int dk_check_mount_words(size_t i, const struct berth_docker_bind *b,
				struct berth_err *err)
{
	const char *words[] = {b->propagation, b->tmpfs_options};

	for (size_t w = 0; w < 2; w++)
		if (words[w] && (!*words[w] ||
				 strspn(words[w], "abcdefghijklmnopqrstuvwxyz0123456789=,") !=
					 strlen(words[w])))
			return berth_fail(err, 0, "bind %zu: mount option '%s' is not plain "
					  "words", i, words[w]);
	return 0;
}

static int dk_check_label(const char *name, const char *v, struct berth_err *err)
{
	if (!v)
		return 0;
	for (const char *p = v; *p; p++)
		if (iscntrl((unsigned char)*p))
			return berth_fail(err, 0, "container label %s holds a control character: pass plain text",
					  name);
	return 0;
}

static int dk_check_create(const struct berth_docker_create *c, struct berth_err *err)
{
	if (!c)
		return berth_fail(err, EINVAL, "creating container: no settings");
	if (dk_check_ref("image", c->image, err) < 0)
		return berth_wrap(err, "creating container");
	for (size_t i = 0; i < c->n_binds; i++)
		if ((!c->binds[i].tmpfs_options &&
		     dk_check_path("source", i, c->binds[i].src, err) < 0) ||
		    dk_check_path("destination", i, c->binds[i].dst, err) < 0 ||
		    dk_check_mount_words(i, &c->binds[i], err) < 0)
			return berth_wrap(err, "creating container");
	if (c->n_groups && !c->groups)
		return berth_fail(err, EINVAL, "creating container: n_groups without groups");
	if (c->argv)
		for (size_t i = 0; c->argv[i]; i++)
			if (i > 65536)
				return berth_fail(err, E2BIG, "creating container: argv");
	if (c->env)
		for (size_t i = 0; c->env[i]; i++)
			if (!strchr(c->env[i], '=') || c->env[i][0] == '=')
				return berth_fail(err, 0, "creating container: environment entry %zu '%.60s' is not NAME=value",
						  i, c->env[i]);
	if (c->workdir && c->workdir[0] != '/')
		return berth_fail(err, 0, "creating container: working directory '%s' is not absolute: give a path starting with /",
				  c->workdir);
	if (c->cgroup_parent && !*c->cgroup_parent)
		return berth_fail(err, 0, "creating container: empty cgroup parent: pass NULL for Docker's default");
	if (c->cpus > 4096)
		return berth_fail(err, 0, "creating container: %u CPUs is not plausible", c->cpus);
	if (c->memory_bytes > INT64_MAX)
		return berth_fail(err, 0, "creating container: memory limit too large");
	for (size_t i = 0; i < c->n_ulimits; i++) {
		const struct berth_ulimit *u = &c->ulimits[i];
		if (!u->name || !*u->name || strspn(u->name, "abcdefghijklmnopqrstuvwxyz") != strlen(u->name))
			return berth_fail(err, 0, "creating container: ulimit %zu has no valid name", i);
		if (u->soft < -1 || u->hard < -1 ||
		    (u->hard != -1 && (u->soft == -1 || u->soft > u->hard)))
			return berth_fail(err, 0, "creating container: ulimit %s: soft %lld above hard %lld",
					  u->name, (long long)u->soft, (long long)u->hard);
	}
	if (dk_check_label("berth.job", c->label_job, err) < 0 ||
	    dk_check_label("berth.step", c->label_step, err) < 0 ||
	    dk_check_label("berth.uid", c->label_uid, err) < 0 ||
	    dk_check_label("berth.node", c->label_node, err) < 0)
		return berth_wrap(err, "creating container");
	return 0;
}

/* json-c helpers: they take ownership of v and report allocation failure. */
static int dk_add(json_object *o, const char *k, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_object_add(o, k, v) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int dk_push(json_object *a, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_array_add(a, v) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static json_object *dk_strings(char *const *v, size_t from)
{
	json_object *a = json_object_new_array();

	if (!a)
		return NULL;
	for (size_t i = from; v && v[i]; i++)
		if (dk_push(a, json_object_new_string(v[i])) < 0) {
			json_object_put(a);
			return NULL;
		}
	return a;
}

static json_object *dk_create_body(const struct berth_docker_create *c)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *hc, *a, *labels;
	char buf[4200];

	if (!o)
		return NULL;
	if (dk_add(o, "Image", json_object_new_string(c->image)) < 0)
		return NULL;
	if (c->argv && c->argv[0]) {
		/* Exactly argv: Entrypoint = argv[0], Cmd = the rest. A set
		 * Entrypoint also stops the image's Cmd from being appended. */
		char *const first[] = { c->argv[0], NULL };

		if (dk_add(o, "Entrypoint", dk_strings(first, 0)) < 0 ||
		    dk_add(o, "Cmd", dk_strings(c->argv, 1)) < 0)
			return NULL;
	}
	if (c->env && dk_add(o, "Env", dk_strings(c->env, 0)) < 0)
		return NULL;
	if (c->workdir && dk_add(o, "WorkingDir", json_object_new_string(c->workdir)) < 0)
		return NULL;
	snprintf(buf, sizeof(buf), "%ju:%ju", (uintmax_t)c->uid, (uintmax_t)c->gid);
	if (dk_add(o, "User", json_object_new_string(buf)) < 0 ||
	    dk_add(o, "Tty", json_object_new_boolean(0)) < 0 ||
	    dk_add(o, "AttachStdin", json_object_new_boolean(c->open_stdin)) < 0 ||
	    dk_add(o, "OpenStdin", json_object_new_boolean(c->open_stdin)) < 0 ||
	    dk_add(o, "StdinOnce", json_object_new_boolean(c->open_stdin)) < 0 ||
	    dk_add(o, "AttachStdout", json_object_new_boolean(1)) < 0 ||
	    dk_add(o, "AttachStderr", json_object_new_boolean(1)) < 0)
		return NULL;

	labels = json_object_new_object();
	if (dk_add(o, "Labels", labels) < 0)
		return NULL;
	if ((c->label_job && dk_add(labels, "berth.job", json_object_new_string(c->label_job)) < 0) ||
	    (c->label_step && dk_add(labels, "berth.step", json_object_new_string(c->label_step)) < 0) ||
	    (c->label_uid && dk_add(labels, "berth.uid", json_object_new_string(c->label_uid)) < 0) ||
	    (c->label_node && dk_add(labels, "berth.node", json_object_new_string(c->label_node)) < 0))
		return NULL;

	hc = json_object_new_object();
	if (dk_add(o, "HostConfig", hc) < 0)
		return NULL;
	if (dk_add(hc, "Privileged", json_object_new_boolean(0)) < 0 ||
	    dk_add(hc, "ReadonlyRootfs", json_object_new_boolean(!c->writable)) < 0 ||
	    dk_add(hc, "AutoRemove", json_object_new_boolean(0)) < 0 ||
	    dk_add(hc, "Init", json_object_new_boolean(1)) < 0 ||
	    dk_add(hc, "PublishAllPorts", json_object_new_boolean(0)) < 0 ||
	    dk_add(hc, "NetworkMode", json_object_new_string(c->network_none ? "none" : "host")) < 0)
		return NULL;
	/* A read-only root still needs a scratch /tmp, as the other runtimes
	 * give one: private to the container, gone with it. */
	bool tmp_bound = false;
	for (size_t i = 0; i < c->n_binds; i++)
		tmp_bound |= !strcmp(c->binds[i].dst, "/tmp");
	struct json_object *tmpfs = json_object_new_object();
	if (dk_add(hc, "Tmpfs", tmpfs) < 0 ||
	    (!c->writable && !tmp_bound &&
	     dk_add(tmpfs, "/tmp", json_object_new_string("rw,nosuid,nodev,mode=1777")) < 0))
		return NULL;
	for (size_t i = 0; i < c->n_binds; i++)
		if (c->binds[i].tmpfs_options &&
		    dk_add(tmpfs, c->binds[i].dst,
			   json_object_new_string(c->binds[i].tmpfs_options)) < 0)
			return NULL;
	a = json_object_new_array();
	if (dk_add(hc, "CapDrop", a) < 0 || dk_push(a, json_object_new_string("ALL")) < 0)
		return NULL;
	a = json_object_new_array();
	if (dk_add(hc, "SecurityOpt", a) < 0 ||
	    dk_push(a, json_object_new_string("no-new-privileges")) < 0)
		return NULL;
	a = json_object_new_array();
	if (dk_add(hc, "GroupAdd", a) < 0)
		return NULL;
	for (size_t i = 0; i < c->n_groups; i++) {
		snprintf(buf, sizeof(buf), "%ju", (uintmax_t)c->groups[i]);
		if (dk_push(a, json_object_new_string(buf)) < 0)
			return NULL;
	}
	a = json_object_new_array();
	if (dk_add(hc, "Binds", a) < 0)
		return NULL;
	for (size_t i = 0; i < c->n_binds; i++) {
		const struct berth_docker_bind *b = &c->binds[i];
		if (b->tmpfs_options)
			continue;
		snprintf(buf, sizeof(buf), "%s:%s:%s%s%s", b->src, b->dst,
			 b->read_only ? "ro" : "rw", b->propagation ? "," : "",
			 b->propagation ? b->propagation : "");
		if (dk_push(a, json_object_new_string(buf)) < 0)
			return NULL;
	}
	if (c->memory_bytes &&
	    dk_add(hc, "Memory", json_object_new_int64((int64_t)c->memory_bytes)) < 0)
		return NULL;
	if (c->cpus &&
	    dk_add(hc, "NanoCpus", json_object_new_int64((int64_t)c->cpus * 1000000000LL)) < 0)
		return NULL;
	if (c->cgroup_parent &&
	    dk_add(hc, "CgroupParent", json_object_new_string(c->cgroup_parent)) < 0)
		return NULL;
	if (c->n_ulimits) {
		a = json_object_new_array();
		if (dk_add(hc, "Ulimits", a) < 0)
			return NULL;
		for (size_t i = 0; i < c->n_ulimits; i++) {
			json_object *u = json_object_new_object();
			if (dk_push(a, u) < 0 ||
			    dk_add(u, "Name", json_object_new_string(c->ulimits[i].name)) < 0 ||
			    dk_add(u, "Soft", json_object_new_int64(c->ulimits[i].soft)) < 0 ||
			    dk_add(u, "Hard", json_object_new_int64(c->ulimits[i].hard)) < 0)
				return NULL;
		}
	}
	return berth_steal(o);
}

int berth_docker_container_create(struct berth_docker *d,
				  const struct berth_docker_create *c,
				  char id[BERTH_DOCKER_ID_MAX], struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	_cleanup_json_ json_object *req = NULL;
	_cleanup_json_ json_object *o = NULL;
	json_object *v;
	long status = 0;

	id[0] = '\0';
	if (dk_check_create(c, err) < 0) /* before any API call */
		return -1;
	if (!d)
		return berth_fail(err, EINVAL, "creating container: no Docker connection");
	req = dk_create_body(c);
	if (!req)
		return berth_fail(err, ENOMEM, "creating container: building the request");
	if (dk_request(d, "POST", "/containers/create",
		       json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE),
		       -1, &status, &body, err) < 0)
		return -1;
	if (status != 201 && status != 200)
		return dk_http_fail(err, "creating container", status, &body,
				    status == 404 ? "load the image first" : NULL);
	if (dk_parse_json(&body, "creating container", &o, err) < 0)
		return -1;
	if (!json_object_object_get_ex(o, "Id", &v))
		return berth_fail(err, 0, "creating container: Docker's answer has no Id");
	return dk_copy_id(id, bj_string(v), false, "creating container", err);
}

/* A POST with an empty body whose answer only matters by status. */
static int dk_simple(struct berth_docker *d, const char *method, const char *id,
		     const char *suffix, const char *what, long ok1, long ok2,
		     struct uhttp_body *body, long *status, struct berth_err *err)
{
	char path[512];

	if (dk_check_ref("container id", id, err) < 0)
		return berth_wrap(err, "%s", what);
	snprintf(path, sizeof(path), "/containers/%s%s", id, suffix);
	if (dk_request(d, method, path, NULL, -1, status, body, err) < 0)
		return berth_wrap(err, "%s %.12s", what, id);
	if (*status == ok1 || *status == ok2)
		return 0;
	{
		char w[128];

		snprintf(w, sizeof(w), "%s %.12s", what, id);
		return dk_http_fail(err, w, *status, body, NULL);
	}
}

int berth_docker_container_start(struct berth_docker *d, const char *id,
				 struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	long status = 0;

	/* 304: already started. */
	return dk_simple(d, "POST", id, "/start", "starting container", 204, 304,
			 &body, &status, err);
}

/* The answer of POST /containers/{id}/wait: {"StatusCode": N, "Error": ...}. */
static int dk_wait_answer(const struct uhttp_body *body, const char *id, int *code,
			  struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *v;
	const char *message;
	int64_t sc;

	if (dk_parse_json(body, "waiting for container", &o, err) < 0)
		return -1;
	if (json_object_object_get_ex(o, "Error", &v) && (message = bj_member_string(v, "Message")) &&
	    message[0])
		return berth_fail(err, 0, "waiting for container %.12s: Docker: %.400s", id, message);
	if (!json_object_object_get_ex(o, "StatusCode", &v))
		return berth_fail(err, 0, "waiting for container %.12s: Docker's answer has no StatusCode", id);
	sc = json_object_get_int64(v);
	if (sc < 0 || sc > 255)
		return berth_fail(err, 0, "waiting for container %.12s: Docker's StatusCode %" PRId64 " is not an exit status",
				  id, sc);
	*code = (int)sc;
	return 0;
}

int berth_docker_container_wait(struct berth_docker *d, const char *id, int *code,
				struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	long status = 0;

	*code = -1;
	if (dk_simple(d, "POST", id, "/wait?condition=not-running", "waiting for container",
		      200, 200, &body, &status, err) < 0)
		return -1;
	return dk_wait_answer(&body, id, code, err);
}

static const char *dk_signame(int signo)
{
	static const struct {
		int no;
		const char *name;
	} tab[] = {
		{ SIGHUP, "SIGHUP" },   { SIGINT, "SIGINT" },   { SIGQUIT, "SIGQUIT" },
		{ SIGABRT, "SIGABRT" }, { SIGKILL, "SIGKILL" }, { SIGUSR1, "SIGUSR1" },
		{ SIGUSR2, "SIGUSR2" }, { SIGPIPE, "SIGPIPE" }, { SIGALRM, "SIGALRM" },
		{ SIGTERM, "SIGTERM" }, { SIGCONT, "SIGCONT" }, { SIGSTOP, "SIGSTOP" },
		{ SIGTSTP, "SIGTSTP" }, { SIGTTIN, "SIGTTIN" }, { SIGTTOU, "SIGTTOU" },
		{ SIGXCPU, "SIGXCPU" }, { SIGXFSZ, "SIGXFSZ" }, { SIGWINCH, "SIGWINCH" },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (tab[i].no == signo)
			return tab[i].name;
	return NULL;
}

int berth_docker_container_kill(struct berth_docker *d, const char *id, int signo,
				struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	const char *name = dk_signame(signo);
	char suffix[64];
	long status = 0;

	if (signo <= 0 || signo >= 65)
		return berth_fail(err, EINVAL, "signalling container: %d is not a signal number", signo);
	if (name)
		snprintf(suffix, sizeof(suffix), "/kill?signal=%s", name);
	else
		snprintf(suffix, sizeof(suffix), "/kill?signal=%d", signo);
	/* 409: not running, which is what a kill aims at. */
	return dk_simple(d, "POST", id, suffix, "signalling container", 204, 409,
			 &body, &status, err);
}

/* The answer of GET /containers/{id}/json: its State. */
static int dk_inspect_answer(const struct uhttp_body *body, const char *id,
			     struct berth_docker_state *st, struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *s, *v;

	if (dk_parse_json(body, "inspecting container", &o, err) < 0)
		return -1;
	if (!json_object_object_get_ex(o, "State", &s) || !json_object_is_type(s, json_type_object))
		return berth_fail(err, 0, "inspecting container %.12s: Docker's answer has no State", id);
	if (json_object_object_get_ex(s, "Status", &v))
		snprintf(st->status, sizeof(st->status), "%s", bj_text(v));
	if (json_object_object_get_ex(s, "ExitCode", &v))
		st->exit_code = json_object_get_int(v);
	if (json_object_object_get_ex(s, "Pid", &v))
		st->pid = (pid_t)json_object_get_int(v);
	return 0;
}

int berth_docker_container_inspect(struct berth_docker *d, const char *id,
				   bool *present, struct berth_docker_state *st,
				   struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	long status = 0;

	*present = false;
	memset(st, 0, sizeof(*st));
	if (dk_simple(d, "GET", id, "/json", "inspecting container", 200, 404, &body,
		      &status, err) < 0)
		return -1;
	if (status == 404)
		return 0;
	if (dk_inspect_answer(&body, id, st, err) < 0)
		return -1;
	*present = true;
	return 0;
}

int berth_docker_container_remove(struct berth_docker *d, const char *id,
				  struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	long status = 0;

	/* 404: already gone.  409 "removal ... already in progress": another
	 * sweeper (the task's monitor, the step's exit) got there first. */
	int rc = dk_simple(d, "DELETE", id, "?force=1&v=1", "removing container", 204, 404,
			   &body, &status, err);
	if (rc < 0 && status == 409 && body.p && memmem(body.p, body.len, "already in progress", 19)) {
		*err = (struct berth_err){0};
		return 0;
	}
	return rc;
}

void berth_docker_ids_free(char **ids)
{
	if (!ids)
		return;
	for (size_t i = 0; ids[i]; i++)
		free(ids[i]);
	free(ids);
}

/* The answer of GET /containers/json: the containers' ids. */
static int dk_list_answer(const struct uhttp_body *body, char ***idsp, size_t *np,
			  struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	char **ids;
	size_t n;

	o = body->p ? json_tokener_parse(body->p) : NULL;
	if (!o || !json_object_is_type(o, json_type_array))
		return berth_fail(err, 0, "listing containers: Docker's answer is not a JSON array");
	n = json_object_array_length(o);
	ids = calloc(n + 1, sizeof(*ids));
	if (!ids)
		return berth_fail(err, ENOMEM, "listing containers");
	for (size_t i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(o, i);
		char id[BERTH_DOCKER_ID_MAX];

		if (dk_copy_id(id, bj_member_string(c, "Id"), false, "listing containers", err) < 0) {
			berth_docker_ids_free(ids);
			return -1;
		}
		ids[i] = strdup(id);
		if (!ids[i]) {
			berth_docker_ids_free(ids);
			return berth_fail(err, ENOMEM, "listing containers");
		}
	}
	*idsp = ids;
	*np = n;
	return 0;
}

int berth_docker_container_list(struct berth_docker *d, const char *label,
				const char *also, char ***idsp, size_t *np,
				struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	_cleanup_json_ json_object *f = NULL;
	json_object *a;
	char path[4096], *esc; /* two 512-byte labels, URL-escaped */
	long status = 0;

	*idsp = NULL;
	*np = 0;
	if (!label || !*label || strlen(label) > 512 || (also && (!*also || strlen(also) > 512)))
		return berth_fail(err, EINVAL, "listing containers: label filter must be 1 to 512 bytes");
	f = json_object_new_object();
	a = json_object_new_array();
	if (!f || dk_add(f, "label", a) < 0 || dk_push(a, json_object_new_string(label)) < 0 ||
	    (also && dk_push(a, json_object_new_string(also)) < 0))
		return berth_fail(err, ENOMEM, "listing containers");
	esc = uhttp_escape(json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN));
	if (!esc)
		return berth_fail(err, ENOMEM, "listing containers");
	snprintf(path, sizeof(path), "/containers/json?all=1&filters=%s", esc);
	free(esc);
	if (dk_request(d, "GET", path, NULL, -1, &status, &body, err) < 0)
		return berth_wrap(err, "listing containers labelled %s", label);
	if (status != 200) {
		char w[600];

		snprintf(w, sizeof(w), "listing containers labelled %s", label);
		return dk_http_fail(err, w, status, &body, NULL);
	}
	return dk_list_answer(&body, idsp, np, err);
}

/* ---- attach and relay -------------------------------------------------- */

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
