/* Unit tests for executor/dockerd/ (api.c, images.c, containers.c,
 * attach.c) against the real dockerd.
 *
 * A daemon that does not answer makes every Docker test FAIL with the
 * reason, unless BERTH_NO_DOCKER=1, which skips them. Tests that need no
 * daemon (bad socket, bind validation, frame demultiplexing) always run.
 * Run from the repository root (tests/harness/fixtures/mkimage.py). Every test
 * removes what it created in its teardown, also after a failed assertion. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json.h>

#include "executor/dockerd/api.h"
#include "executor/source/image.h"

#define MKIMAGE "tests/harness/fixtures/mkimage.py"
#define MAX_CIDS 8
#define MAX_TMP 6

struct fixture {
	struct berth_docker *d;
	struct berth_err err;
	char open_msg[BERTH_ERR_MSG_MAX];
	char tag[96];      /* unique tag the test's image is loaded under */
	bool image_loaded;
	char image_id[BERTH_DOCKER_ID_MAX];
	char cids[MAX_CIDS][BERTH_DOCKER_ID_MAX];
	int n_cids;
	char job[64];      /* unique berth.job label */
	char tmp[MAX_TMP][96];
	int n_tmp;
};

static bool no_docker(void)
{
	const char *v = getenv("BERTH_NO_DOCKER");

	return v && strcmp(v, "1") == 0;
}

/* BERTH_DOCKER_SOCKET overrides the daemon socket the tests use. */
static const char *test_socket(void)
{
	const char *v = getenv("BERTH_DOCKER_SOCKET");

	return v && *v ? v : BERTH_DOCKER_SOCKET;
}

static int setup(void **state)
{
	static int seq;
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	seq++;
	snprintf(fx->tag, sizeof(fx->tag), "berth/test-docker-api:%d-%d", (int)getpid(), seq);
	snprintf(fx->job, sizeof(fx->job), "dkapi-%d-%d", (int)getpid(), seq);
	if (!no_docker() && berth_docker_open(&fx->d, test_socket(), &fx->err) < 0)
		snprintf(fx->open_msg, sizeof(fx->open_msg), "%s", fx->err.msg);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	struct berth_err e;
	char label[96], **ids = NULL;
	size_t n = 0;

	if (fx->d) {
		for (int i = 0; i < fx->n_cids; i++)
			if (berth_docker_container_remove(fx->d, fx->cids[i], &e) < 0)
				fprintf(stderr, "teardown: %s\n", e.msg);
		/* Anything labelled with this test's job that slipped through. */
		snprintf(label, sizeof(label), "berth.job=%s", fx->job);
		if (berth_docker_container_list(fx->d, label, NULL, &ids, &n, &e) == 0) {
			for (size_t i = 0; i < n; i++)
				(void)berth_docker_container_remove(fx->d, ids[i], &e);
			berth_docker_ids_free(ids);
		}
		/* By our unique tag: an image someone else also tags stays. */
		if (fx->image_loaded && berth_docker_image_remove(fx->d, fx->tag, &e) < 0)
			fprintf(stderr, "teardown: %s\n", e.msg);
		berth_docker_close(fx->d);
	}
	for (int i = 0; i < fx->n_tmp; i++)
		unlink(fx->tmp[i]);
	free(fx);
	return 0;
}

#define NEED_DOCKER(fx)                                                              \
	do {                                                                         \
		if (no_docker())                                                     \
			skip();                                                      \
		if (!(fx)->d)                                                        \
			fail_msg("Docker is not reachable: %s (start dockerd, or set " \
				 "BERTH_NO_DOCKER=1 to skip the Docker tests)",        \
				 (fx)->open_msg);                                    \
	} while (0)

#define CHECK(call, fx)                                                              \
	do {                                                                         \
		if ((call) < 0)                                                      \
			fail_msg("%s failed: %s", #call, (fx)->err.msg);             \
	} while (0)

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *tmp_path(struct fixture *fx, const char *what)
{
	assert_true(fx->n_tmp < MAX_TMP);
	snprintf(fx->tmp[fx->n_tmp], sizeof(fx->tmp[0]), "/tmp/berth-dkapi-%d-%s",
		 (int)getpid(), what);
	return fx->tmp[fx->n_tmp++];
}

/* Run mkimage.py; return its config_digest (or "" for kinds without one). */
static void mkimage(const char *kind, const char *out, const char *tag, char digest[80])
{
	char cmd[512], line[8192];
	json_object *o, *v;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "python3 " MKIMAGE " %s %s%s%s", kind, out,
		 tag ? " --tag " : "", tag ? tag : "");
	p = popen(cmd, "r");
	assert_non_null(p);
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	if (pclose(p) != 0)
		fail_msg("'%s' failed (run the tests from the repository root)", cmd);
	o = json_tokener_parse(line);
	if (!o)
		fail_msg("mkimage printed no JSON: %s", line);
	digest[0] = '\0';
	if (json_object_object_get_ex(o, "config_digest", &v))
		snprintf(digest, 80, "%s", json_object_get_string(v));
	json_object_put(o);
}

/* Load the legacy test image under fx->tag; returns the load time in ms. */
static double load_image(struct fixture *fx)
{
	const char *path = tmp_path(fx, "legacy.tar");
	char digest[80];
	double t0, t1;
	int fd;

	mkimage("legacy", path, fx->tag, digest);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	fx->image_loaded = true; /* teardown removes the tag whatever happens */
	t0 = now_ms();
	if (berth_docker_image_load(fx->d, fd, fx->image_id, &fx->err) < 0) {
		close(fd);
		fail_msg("loading %s: %s", path, fx->err.msg);
	}
	t1 = now_ms();
	close(fd);
	assert_string_equal(fx->image_id, digest);
	return t1 - t0;
}

static void base_create(struct fixture *fx, struct berth_docker_create *c, char *const *argv)
{
	memset(c, 0, sizeof(*c));
	c->image = fx->image_id;
	c->argv = argv;
	c->uid = 65534;
	c->gid = 65534;
	c->label_job = fx->job;
	c->label_step = "0";
	c->label_uid = "65534";
}

static const char *create(struct fixture *fx, const struct berth_docker_create *c)
{
	char id[BERTH_DOCKER_ID_MAX];

	assert_true(fx->n_cids < MAX_CIDS);
	CHECK(berth_docker_container_create(fx->d, c, id, &fx->err), fx);
	memcpy(fx->cids[fx->n_cids], id, sizeof(id));
	return fx->cids[fx->n_cids++];
}

static char *slurp(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* Raw GET through libcurl, independent of the code under test. */
static size_t raw_cb(char *p, size_t s, size_t n, void *u)
{
	FILE *f = u;

	return fwrite(p, s, n, f);
}

static json_object *raw_get(struct fixture *fx, const char *path)
{
	char url[512], *data = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&data, &len);
	CURL *c = curl_easy_init();
	json_object *o;

	assert_non_null(f);
	assert_non_null(c);
	snprintf(url, sizeof(url), "http://docker/v%s%s", berth_docker_api_version(fx->d), path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, test_socket());
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, raw_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
	fclose(f);
	o = json_tokener_parse(data);
	free(data);
	assert_non_null(o);
	return o;
}

static const char *jpath(json_object *o, const char *a, const char *b)
{
	json_object *v;

	if (!json_object_object_get_ex(o, a, &v) || (b && !json_object_object_get_ex(v, b, &v)))
		return "(absent)";
	return json_object_get_string(v);
}

/* ---- no daemon needed -------------------------------------------------- */

static void test_open_bad_socket(void **state)
{
	struct fixture *fx = *state;
	struct berth_docker *d = (void *)1;

	assert_int_equal(berth_docker_open(&d, "/nonexistent/berth/docker.sock", &fx->err), -1);
	assert_null(d);
	assert_non_null(strstr(fx->err.msg, "cannot reach Docker at /nonexistent/berth/docker.sock"));
	assert_non_null(strstr(fx->err.msg, "No such file or directory"));
}

/* Read one whole request (its head, and a chunked body to its last chunk)
 * so that the answer is not sent while the client is still writing: it
 * would get EPIPE.  Its length, or -1. */
static ssize_t read_request(int c, char *got, size_t cap)
{
	size_t have = 0;

	while (have < cap - 1) {
		ssize_t r = read(c, got + have, cap - 1 - have);
		if (r <= 0)
			return have ? (ssize_t)have : -1;
		have += (size_t)r;
		got[have] = '\0';
		const char *end = strstr(got, "\r\n\r\n");
		if (end && (!strstr(got, "Transfer-Encoding: chunked") || strstr(end + 4, "0\r\n\r\n")))
			break;
	}
	return (ssize_t)have;
}

/* A daemon of canned answers on a unix socket: connection i gets
 * answers[i] whole (lens[i] bytes, or its strlen without lens), in one
 * write, then is closed.  Its pid. */
static pid_t fake_daemon(const char *path, const char *const *answers, const size_t *lens,
			 size_t n, int report_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (size_t i = 0; i < n; i++) {
			char got[1024];
			int c = accept(lfd, NULL, NULL);
			ssize_t r = c < 0 ? -1 : read_request(c, got, sizeof(got));
			size_t len = lens ? lens[i] : strlen(answers[i]);
			if (r <= 0 || write(c, answers[i], len) != (ssize_t)len)
				_exit(1);
			if (report_fd >= 0 && write(report_fd, got, (size_t)r) != r)
				_exit(1);
			close(c);
		}
		_exit(0);
	}
	close(lfd);
	return pid;
}

/* berth_docker_open against a one-answer daemon: the request it got is
 * returned (malloc'ed), the open's result in *rc. */
static char *open_against(struct fixture *fx, const char *answer, int *rc,
			  struct berth_docker **d)
{
	const char *path = tmp_path(fx, "fake.sock");
	int sv[2], st;
	char got[512] = "";

	assert_int_equal(pipe(sv), 0);
	pid_t pid = fake_daemon(path, &answer, NULL, 1, sv[1]);
	close(sv[1]);
	*rc = berth_docker_open(d, path, &fx->err);
	ssize_t n = read(sv[0], got, sizeof(got) - 1);
	got[n > 0 ? n : 0] = '\0';
	close(sv[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return strdup(got);
}

#define PING_OK "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK"

/* The attach answer's head is taken exactly: the stream bytes that came in
 * the same write stay on the socket for the relay. */
static void test_attach_keeps_the_stream(void **state)
{
	struct fixture *fx = *state;
	const char *path = tmp_path(fx, "attach.sock");
	static const char head[] = "HTTP/1.1 101 UPGRADED\r\n"
		"Content-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
		"Upgrade: tcp\r\n\r\n";
	static const char frame[] = "\1\0\0\0\0\0\0\3abc"; /* 11 bytes */
	const size_t frame_len = sizeof(frame) - 1;
	char upgraded[256], got[32];
	struct berth_docker *d = NULL;
	int sock = -1, st;

	memcpy(upgraded, head, strlen(head));
	memcpy(upgraded + strlen(head), frame, frame_len);
	const char *answers[] = { PING_OK, upgraded };
	const size_t lens[] = { strlen(PING_OK), strlen(head) + frame_len };
	pid_t pid = fake_daemon(path, answers, lens, 2, -1);
	CHECK(berth_docker_open(&d, path, &fx->err), fx);
	CHECK(berth_docker_attach(d, "0123456789ab", &sock, &fx->err), fx);
	size_t have = 0;
	ssize_t n;
	while ((n = read(sock, got + have, sizeof(got) - have)) > 0)
		have += (size_t)n;
	assert_int_equal(have, frame_len);
	assert_memory_equal(got, frame, frame_len);
	close(sock);
	berth_docker_close(d);
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

static void test_attach_error_answer(void **state)
{
	struct fixture *fx = *state;
	const char *path = tmp_path(fx, "attach.sock");
	const char *answers[] = { PING_OK, "HTTP/1.1 404 Not Found\r\n"
				  "Content-Type: application/json\r\nContent-Length: 45\r\n\r\n"
				  "{\"message\":\"No such container: 0123456789ab\"}" };
	struct berth_docker *d = NULL;
	int sock = -1, st;

	pid_t pid = fake_daemon(path, answers, NULL, 2, -1);
	CHECK(berth_docker_open(&d, path, &fx->err), fx);
	assert_int_equal(berth_docker_attach(d, "0123456789ab", &sock, &fx->err), -1);
	assert_int_equal(sock, -1);
	assert_non_null(strstr(fx->err.msg, "attaching to container 0123456789ab: Docker answered HTTP 404: No such container: 0123456789ab"));
	berth_docker_close(d);
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

/* The API version comes from /_ping's Api-Version header (dockerd answers
 * it at once; /version asks containerd and runc, 8 ms per step). */
static void test_open_negotiates_from_ping(void **state)
{
	struct fixture *fx = *state;
	struct berth_docker *d = NULL;
	int rc;
	char *req = open_against(fx, "HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\n"
				 "Content-Length: 2\r\n\r\nOK", &rc, &d);

	assert_int_equal(rc, 0);
	assert_non_null(strstr(req, "GET /_ping HTTP/1.1\r\n"));
	assert_string_equal(berth_docker_api_version(d), "1.41"); /* capped: what berth speaks */
	berth_docker_close(d);
	free(req);
	free(open_against(fx, "HTTP/1.1 200 OK\r\nApi-Version: 1.40\r\n"
			  "Content-Length: 2\r\n\r\nOK", &rc, &d));
	assert_int_equal(rc, 0);
	assert_string_equal(berth_docker_api_version(d), "1.40");
	berth_docker_close(d);
}

static void test_open_refuses_what_is_not_docker(void **state)
{
	struct fixture *fx = *state;
	struct berth_docker *d = (void *)1;
	int rc;

	free(open_against(fx, "HTTP/1.1 200 OK\r\nApi-Version: 1.39\r\n"
			  "Content-Length: 2\r\n\r\nOK", &rc, &d));
	assert_int_equal(rc, -1);
	assert_null(d);
	assert_non_null(strstr(fx->err.msg, "speaks API 1.39; berth needs 1.40 (Docker 19.03) or newer: upgrade Docker"));
	free(open_against(fx, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK", &rc, &d));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(fx->err.msg, "without a usable Api-Version header (''): is it a Docker daemon?"));
	free(open_against(fx, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here\n",
			  &rc, &d));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(fx->err.msg, "(GET /_ping): Docker answered HTTP 404: not here"));
}

/* An HTTP `code` answer with a JSON body, in buf.  It closes the
 * connection: fake_daemon serves one request per connection. */
static const char *json_answer(char *buf, size_t cap, int code, const char *json)
{
	snprintf(buf, cap, "HTTP/1.1 %d X\r\nConnection: close\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s", code, strlen(json), json);
	return buf;
}

/* A JSON null where berth expects a string is read as "no value", never
 * dereferenced (fuzz_docker_api found {"stream": null} in CI). */
static void test_null_fields_in_answers(void **state)
{
	struct fixture *fx = *state;
	const char *path = tmp_path(fx, "nulls.sock");
	static const char hex[] = "0123456789abcdef0123456789abcdef"
				  "0123456789abcdef0123456789abcdef";
	char load[512], wait[256], inspect[256], list[256], loaded[200], id[BERTH_DOCKER_ID_MAX];
	struct berth_docker *d = NULL;
	struct berth_docker_state st;
	bool present;
	char **ids;
	size_t n;
	int code = -1, st_wait;

	snprintf(loaded, sizeof(loaded), "{\"stream\":null}\n{\"stream\":\"Loaded image ID: sha256:%s\\n\"}\n", hex);
	const char *answers[] = {
		"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nConnection: close\r\nContent-Length: 2\r\n\r\nOK",
		json_answer(load, sizeof(load), 200, loaded),
		json_answer(wait, sizeof(wait), 200, "{\"Error\":{\"Message\":null},\"StatusCode\":3}"),
		json_answer(inspect, sizeof(inspect), 200, "{\"State\":{\"Status\":null,\"ExitCode\":4}}"),
		json_answer(list, sizeof(list), 200, "[{\"Id\":null}]"),
	};
	int empty = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t pid = fake_daemon(path, answers, NULL, 5, -1);

	assert_true(empty >= 0);
	CHECK(berth_docker_open(&d, path, &fx->err), fx);
	CHECK(berth_docker_image_load(d, empty, id, &fx->err), fx);
	assert_string_equal(id + strlen("sha256:"), hex);
	CHECK(berth_docker_container_wait(d, "0123456789ab", &code, &fx->err), fx);
	assert_int_equal(code, 3);
	CHECK(berth_docker_container_inspect(d, "0123456789ab", &present, &st, &fx->err), fx);
	assert_true(present);
	assert_string_equal(st.status, "null");
	assert_int_equal(st.exit_code, 4);
	assert_int_equal(berth_docker_container_list(d, "berth.job=1", NULL, &ids, &n, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "listing containers: Docker answered an id that is not 64 hex digits: '(none)'"));
	berth_docker_close(d);
	close(empty);
	assert_int_equal(waitpid(pid, &st_wait, 0), pid);
}

static void test_bind_rejected_before_api(void **state)
{
	struct fixture *fx = *state;
	struct berth_docker_bind b[] = { { .src = "/tmp/a:b", .dst = "/mnt", .read_only = true } };
	struct berth_docker_create c;
	char id[BERTH_DOCKER_ID_MAX];
	char *argv[] = { "true", NULL };

	base_create(fx, &c, argv);
	c.image = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	c.binds = b;
	c.n_binds = 1;
	/* d == NULL: any API call would crash, so passing proves none happens. */
	assert_int_equal(berth_docker_container_create(NULL, &c, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "contains ':' or ','"));
	b[0].src = "/tmp/a,b";
	assert_int_equal(berth_docker_container_create(NULL, &c, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "contains ':' or ','"));
	b[0].src = "tmp";
	assert_int_equal(berth_docker_container_create(NULL, &c, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "not an absolute path"));
	b[0].src = "/tmp";
	b[0].dst = "/mnt:rw";
	assert_int_equal(berth_docker_container_create(NULL, &c, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "destination"));
}

/* Resource limits are checked before any API call, like binds. */
static void test_ulimit_rejected_before_api(void **state)
{
	struct fixture *fx = *state;
	struct berth_ulimit ul[] = { { "nofile", 10, 5 } };
	struct berth_docker_create c;
	char id[BERTH_DOCKER_ID_MAX];
	char *argv[] = { "true", NULL };

	base_create(fx, &c, argv);
	c.image = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	c.ulimits = ul;
	c.n_ulimits = 1;
	assert_int_equal(berth_docker_container_create(NULL, &c, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "ulimit nofile: soft 10 above hard 5"));
	ul[0] = (struct berth_ulimit){ "nofile", -1, 5 };
	assert_int_equal(berth_docker_container_create(NULL, &c, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "above hard"));
	ul[0] = (struct berth_ulimit){ "NOFILE\"", 1, 5 };
	assert_int_equal(berth_docker_container_create(NULL, &c, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "no valid name"));
}

/* A CPU list is the kernel's list form or nothing: checked before any
 * API call, as dockerd would take "0-1 " or "all" its own way. */
static void test_cpuset_rejected_before_api(void **state)
{
	struct fixture *fx = *state;
	static const char *const bad[] = { "", "all", "0-1 ", "-1", ",0", "0;1", "0\n" };
	struct berth_docker_create c;
	char id[BERTH_DOCKER_ID_MAX];
	char *argv[] = { "true", NULL };

	base_create(fx, &c, argv);
	c.image = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		c.cpuset_cpus = bad[i];
		assert_int_equal(berth_docker_container_create(NULL, &c, id, &fx->err), -1);
		assert_non_null(strstr(fx->err.msg, "is not like 0-3,8"));
	}
	c.cpuset_cpus = NULL;
	c.pids_limit = (uint64_t)INT64_MAX + 1;
	assert_int_equal(berth_docker_container_create(NULL, &c, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "process limit too large"));
}

/* Frames trickled one byte at a time through a socketpair: headers and
 * payloads split across reads; stdin delivered then half-closed. */
static void test_relay_demux_partial(void **state)
{
	struct fixture *fx = *state;
	const char *out = tmp_path(fx, "out"), *errp = tmp_path(fx, "err");
	int sv[2], in[2], ofd, efd, st;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pipe(in), 0);
	assert_int_equal(write(in[1], "ping\n", 5), 5);
	close(in[1]);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char got[64], frames[256];
		size_t n = 0, f = 0;
		ssize_t r;

		close(sv[0]);
		while ((r = read(sv[1], got + n, sizeof(got) - n)) > 0)
			n += (size_t)r; /* ends only when the relay half-closes */
		/* stdout frame echoing stdin, stderr frame, empty frame, stdout */
		frames[f++] = 1, frames[f++] = 0, frames[f++] = 0, frames[f++] = 0;
		frames[f++] = 0, frames[f++] = 0, frames[f++] = 0, frames[f++] = (char)n;
		memcpy(frames + f, got, n), f += n;
		memcpy(frames + f, "\2\0\0\0\0\0\0\4oops", 12), f += 12;
		memcpy(frames + f, "\1\0\0\0\0\0\0\0", 8), f += 8;
		memcpy(frames + f, "\1\0\0\0\0\0\0\3end", 11), f += 11;
		for (size_t i = 0; i < f; i++) {
			if (write(sv[1], frames + i, 1) != 1)
				_exit(2);
			usleep(200);
		}
		_exit(0);
	}
	close(sv[1]);
	ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	efd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(ofd >= 0 && efd >= 0);
	if (berth_docker_relay(sv[0], in[0], ofd, efd, &fx->err) < 0)
		fail_msg("relay: %s", fx->err.msg);
	close(sv[0]);
	close(in[0]);
	close(ofd);
	close(efd);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(st, 0);
	assert_string_equal(slurp(out), "ping\nend");
	assert_string_equal(slurp(errp), "oops");
}

/* ---- against dockerd --------------------------------------------------- */

static void test_open_version(void **state)
{
	struct fixture *fx = *state;

	NEED_DOCKER(fx);
	assert_string_equal(berth_docker_api_version(fx->d), "1.41");
}

static void test_image_load_inspect_remove(void **state)
{
	struct fixture *fx = *state;
	char id[BERTH_DOCKER_ID_MAX];
	bool present;
	double ms;

	NEED_DOCKER(fx);
	ms = load_image(fx);
	print_message("load: %.1f ms\n", ms);
	CHECK(berth_docker_image_inspect(fx->d, fx->tag, &present, id, &fx->err), fx);
	assert_true(present);
	assert_string_equal(id, fx->image_id);
	CHECK(berth_docker_image_inspect(fx->d, fx->image_id, &present, id, &fx->err), fx);
	assert_true(present);
	CHECK(berth_docker_image_remove(fx->d, fx->tag, &fx->err), fx);
	CHECK(berth_docker_image_inspect(fx->d, fx->tag, &present, id, &fx->err), fx);
	assert_false(present);
	assert_string_equal(id, "");
	/* removing again is fine */
	CHECK(berth_docker_image_remove(fx->d, fx->tag, &fx->err), fx);
}

/* dockerd:// images: the export streams to a file, never into memory,
 * capped, and the socket path form that the cache uses. */
static void test_image_save(void **state)
{
	struct fixture *fx = *state;
	const char *out = tmp_path(fx, "saved.tar");
	char head[512];
	struct stat st;

	NEED_DOCKER(fx);
	load_image(fx);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	CHECK(berth_docker_image_save(fx->d, fx->image_id, fd, 0, &fx->err), fx);
	close(fd);
	assert_int_equal(stat(out, &st), 0);
	assert_true(st.st_size > 10 * 1024); /* larger than any answer kept */
	fd = open(out, O_RDONLY | O_CLOEXEC);
	assert_int_equal(read(fd, head, sizeof(head)), (ssize_t)sizeof(head));
	close(fd);
	assert_memory_equal(head + 257, "ustar", 5); /* a tar archive */
	/* capped */
	fd = open(out, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_int_equal(berth_docker_image_save(fx->d, fx->image_id, fd, 1024, &fx->err), -1);
	close(fd);
	if (!strstr(fx->err.msg, "larger than 1024 bytes (CacheMaxSize)"))
		fail_msg("capped export: %s", fx->err.msg);
	/* on a connection of its own, by name; an absent image says so */
	bool present = false;
	char id[BERTH_DOCKER_ID_MAX];
	CHECK(berth_docker_id_at(test_socket(), fx->tag, &present, id, &fx->err), fx);
	assert_true(present);
	assert_string_equal(id, fx->image_id);
	fd = open(out, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_int_equal(berth_docker_save_at(test_socket(), "berth-test/absent:none", fd, 0,
					      &fx->err), -1);
	close(fd);
	assert_non_null(strstr(fx->err.msg, "HTTP 404"));
}

static void test_image_load_from_pipe(void **state)
{
	struct fixture *fx = *state;
	const char *path = tmp_path(fx, "pipe.tar");
	char digest[80], id[BERTH_DOCKER_ID_MAX];
	int p[2];
	pid_t pid;

	NEED_DOCKER(fx);
	mkimage("legacy", path, fx->tag, digest);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDONLY);
		char buf[4096];
		ssize_t n;

		close(p[0]);
		while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
			if (write(p[1], buf, (size_t)n) != n)
				_exit(1);
		_exit(0);
	}
	close(p[1]);
	fx->image_loaded = true;
	if (berth_docker_image_load(fx->d, p[0], id, &fx->err) < 0) {
		close(p[0]);
		waitpid(pid, NULL, 0);
		fail_msg("load from pipe (chunked): %s", fx->err.msg);
	}
	close(p[0]);
	waitpid(pid, NULL, 0);
	assert_string_equal(id, digest);
}

static void test_image_load_corrupt(void **state)
{
	struct fixture *fx = *state;
	const char *kinds[] = { "not-a-tar", "truncated", "no-manifest", "bad-manifest-json" };
	char digest[80], id[BERTH_DOCKER_ID_MAX];
	const char *path;
	int fd;

	NEED_DOCKER(fx);
	fx->image_loaded = true; /* a wrongly accepted archive gets our tag */
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		path = tmp_path(fx, kinds[i]);
		mkimage(kinds[i], path, fx->tag, digest);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		memset(&fx->err, 0, sizeof(fx->err));
		assert_int_equal(berth_docker_image_load(fx->d, fd, id, &fx->err), -1);
		close(fd);
		print_message("%s: %s\n", kinds[i], fx->err.msg);
		assert_non_null(strstr(fx->err.msg, "loading image: Docker"));
	}
}

/* Daemon behaviour worth knowing: dockerd does not read a layer file whose
 * chain it already has, so an archive missing such a layer loads fine. */
static void test_image_load_missing_known_layer(void **state)
{
	struct fixture *fx = *state;
	const char *path = tmp_path(fx, "missing-layer");
	char digest[80], id[BERTH_DOCKER_ID_MAX];
	int fd;

	NEED_DOCKER(fx);
	load_image(fx); /* the layers are now known to the daemon */
	mkimage("missing-layer", path, fx->tag, digest);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	if (berth_docker_image_load(fx->d, fd, id, &fx->err) < 0) {
		close(fd);
		fail_msg("missing-layer with known layers: %s", fx->err.msg);
	}
	close(fd);
	assert_string_equal(id, digest);
}

static void test_image_inspect_absent(void **state)
{
	struct fixture *fx = *state;
	char id[BERTH_DOCKER_ID_MAX];
	bool present = true;

	NEED_DOCKER(fx);
	CHECK(berth_docker_image_inspect(fx->d, "berth/no-such-image:nope", &present, id, &fx->err),
	      fx);
	assert_false(present);
	assert_int_equal(berth_docker_image_inspect(fx->d, "bad name!", &present, id, &fx->err), -1);
}

static int run_container(struct fixture *fx, const char *cid, const char *stdin_data,
			 const char *out, const char *errp)
{
	int sock, in[2], ofd, efd, code;

	CHECK(berth_docker_attach(fx->d, cid, &sock, &fx->err), fx);
	CHECK(berth_docker_container_start(fx->d, cid, &fx->err), fx);
	assert_int_equal(pipe(in), 0);
	if (stdin_data)
		assert_int_equal(write(in[1], stdin_data, strlen(stdin_data)),
				 (ssize_t)strlen(stdin_data));
	close(in[1]);
	ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	efd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(ofd >= 0 && efd >= 0);
	if (berth_docker_relay(sock, in[0], ofd, efd, &fx->err) < 0)
		fail_msg("relay: %s", fx->err.msg);
	close(sock);
	close(in[0]);
	close(ofd);
	close(efd);
	CHECK(berth_docker_container_wait(fx->d, cid, &code, &fx->err), fx);
	return code;
}

static void test_run_stdio(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { "sh", "-c", "cat; echo to-err >&2; id -u; id -G", NULL };
	gid_t groups[] = { 100, 200 };
	const char *out = tmp_path(fx, "out"), *errp = tmp_path(fx, "err");
	struct berth_docker_create c;
	const char *cid;

	NEED_DOCKER(fx);
	load_image(fx);
	base_create(fx, &c, argv);
	c.open_stdin = true;
	c.groups = groups;
	c.n_groups = 2;
	cid = create(fx, &c);
	assert_int_equal(run_container(fx, cid, "hello\nworld\n", out, errp), 0);
	assert_string_equal(slurp(out), "hello\nworld\n65534\n65534 100 200\n");
	assert_string_equal(slurp(errp), "to-err\n");
}

static void test_exit_codes(void **state)
{
	struct fixture *fx = *state;
	char *a0[] = { "true", NULL };
	char *a3[] = { "sh", "-c", "exit 3", NULL };
	char *a9[] = { "sh", "-c", "kill -9 $$", NULL };
	char *const *argvs[] = { a0, a3, a9 };
	const int want[] = { 0, 3, 137 };
	const char *out = tmp_path(fx, "out"), *errp = tmp_path(fx, "err");
	struct berth_docker_create c;
	struct berth_docker_state st;
	bool present;

	NEED_DOCKER(fx);
	load_image(fx);
	for (int i = 0; i < 3; i++) {
		const char *cid;

		base_create(fx, &c, argvs[i]);
		cid = create(fx, &c);
		assert_int_equal(run_container(fx, cid, NULL, out, errp), want[i]);
		CHECK(berth_docker_container_inspect(fx->d, cid, &present, &st, &fx->err), fx);
		assert_true(present);
		assert_string_equal(st.status, "exited");
		assert_int_equal(st.exit_code, want[i]);
		assert_int_equal(st.pid, 0);
	}
}

static void test_create_vetted_fields(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { "sleep", "1", NULL };
	char *env[] = { "BERTH_X=1", NULL };
	gid_t groups[] = { 100, 200 };
	struct berth_docker_bind b[] = { { .src = "/tmp", .dst = "/mnt/tmp", .read_only = true } };
	struct berth_docker_create c;
	struct berth_docker_state st;
	json_object *o, *hc, *v;
	char path[128];
	const char *cid;
	bool present;

	NEED_DOCKER(fx);
	load_image(fx);
	base_create(fx, &c, argv);
	c.uid = 1234;
	c.gid = 5678;
	c.groups = groups;
	c.n_groups = 2;
	c.env = env;
	c.workdir = "/tmp";
	c.binds = b;
	c.n_binds = 1;
	c.memory_bytes = 64 << 20;
	c.cpus = 1;
	c.cpuset_cpus = "0";
	c.pids_limit = 64;
	struct berth_ulimit ul[] = { { "nofile", 321, 4096 }, { "core", 0, -1 } };
	c.ulimits = ul;
	c.n_ulimits = 2;
	cid = create(fx, &c);
	CHECK(berth_docker_container_inspect(fx->d, cid, &present, &st, &fx->err), fx);
	assert_true(present);
	assert_string_equal(st.status, "created");

	snprintf(path, sizeof(path), "/containers/%s/json", cid);
	o = raw_get(fx, path);
	assert_string_equal(jpath(o, "Config", "User"), "1234:5678");
	assert_string_equal(jpath(o, "Config", "WorkingDir"), "/tmp");
	assert_string_equal(jpath(o, "Config", "Entrypoint"), "[ \"sleep\" ]");
	assert_string_equal(jpath(o, "Config", "Cmd"), "[ \"1\" ]");
	assert_string_equal(jpath(o, "Config", "Tty"), "false");
	assert_true(json_object_object_get_ex(o, "HostConfig", &hc));
	assert_string_equal(jpath(hc, "Privileged", NULL), "false");
	assert_string_equal(jpath(hc, "CapDrop", NULL), "[ \"ALL\" ]");
	assert_string_equal(jpath(hc, "SecurityOpt", NULL), "[ \"no-new-privileges\" ]");
	assert_string_equal(jpath(hc, "NetworkMode", NULL), "host");
	assert_string_equal(jpath(hc, "GroupAdd", NULL), "[ \"100\", \"200\" ]");
	assert_string_equal(jpath(hc, "Binds", NULL), "[ \"\\/tmp:\\/mnt\\/tmp:ro\" ]");
	assert_string_equal(jpath(hc, "Memory", NULL), "67108864");
	assert_string_equal(jpath(hc, "NanoCpus", NULL), "1000000000");
	/* issue 23 item 5: no swap on top, the task's CPUs, a process limit */
	assert_string_equal(jpath(hc, "MemorySwap", NULL), "67108864");
	assert_string_equal(jpath(hc, "CpusetCpus", NULL), "0");
	assert_string_equal(jpath(hc, "PidsLimit", NULL), "64");
	assert_string_equal(jpath(hc, "Ulimits", NULL),
			    "[ { \"Name\": \"nofile\", \"Hard\": 4096, \"Soft\": 321 }, "
			    "{ \"Name\": \"core\", \"Hard\": -1, \"Soft\": 0 } ]");
	assert_string_equal(jpath(hc, "Init", NULL), "true");
	assert_string_equal(jpath(hc, "AutoRemove", NULL), "false");
	/* read-only unless the job asked for --container-writable */
	assert_string_equal(jpath(hc, "ReadonlyRootfs", NULL), "true");
	assert_string_equal(jpath(hc, "Tmpfs", NULL),
			    "{ \"\\/tmp\": \"rw,nosuid,nodev,mode=1777\" }");
	assert_true(json_object_object_get_ex(o, "Config", &v));
	assert_true(json_object_object_get_ex(v, "Labels", &v));
	assert_string_equal(jpath(v, "berth.job", NULL), fx->job);
	assert_string_equal(jpath(v, "berth.step", NULL), "0");
	assert_string_equal(jpath(v, "berth.uid", NULL), "65534");
	json_object_put(o);

	/* --container-unshare=net,ipc: network none with the node's name,
	 * a private IPC namespace */
	c.network_none = true;
	c.ipc_private = true;
	c.hostname = "berth-node-7";
	cid = create(fx, &c);
	snprintf(path, sizeof(path), "/containers/%s/json", cid);
	o = raw_get(fx, path);
	assert_true(json_object_object_get_ex(o, "HostConfig", &hc));
	assert_string_equal(jpath(hc, "NetworkMode", NULL), "none");
	assert_string_equal(jpath(hc, "IpcMode", NULL), "private");
	assert_string_equal(jpath(o, "Config", "Hostname"), "berth-node-7");
	json_object_put(o);
}

static void test_kill_sigterm(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { "sleep", "100", NULL };
	struct berth_docker_create c;
	struct berth_docker_state st;
	const char *cid;
	bool present;
	double t0;
	int code;

	NEED_DOCKER(fx);
	load_image(fx);
	base_create(fx, &c, argv);
	cid = create(fx, &c);
	CHECK(berth_docker_container_start(fx->d, cid, &fx->err), fx);
	CHECK(berth_docker_container_inspect(fx->d, cid, &present, &st, &fx->err), fx);
	assert_string_equal(st.status, "running");
	assert_true(st.pid > 0);
	t0 = now_ms();
	CHECK(berth_docker_container_kill(fx->d, cid, SIGTERM, &fx->err), fx);
	CHECK(berth_docker_container_wait(fx->d, cid, &code, &fx->err), fx);
	print_message("SIGTERM -> exit %d after %.0f ms\n", code, now_ms() - t0);
	assert_int_equal(code, 143);
	assert_true(now_ms() - t0 < 5000);
	/* killing a stopped container is not an error */
	CHECK(berth_docker_container_kill(fx->d, cid, SIGKILL, &fx->err), fx);
	assert_int_equal(berth_docker_container_kill(fx->d, cid, 0, &fx->err), -1);
}

static void test_list_and_remove(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { "sleep", "100", NULL };
	struct berth_docker_create c;
	struct berth_docker_state st;
	char label[96], **ids;
	size_t n;
	bool present;
	const char *a, *b;

	NEED_DOCKER(fx);
	load_image(fx);
	base_create(fx, &c, argv);
	a = create(fx, &c);
	b = create(fx, &c);
	CHECK(berth_docker_container_start(fx->d, b, &fx->err), fx); /* force removes running */
	snprintf(label, sizeof(label), "berth.job=%s", fx->job);
	CHECK(berth_docker_container_list(fx->d, label, NULL, &ids, &n, &fx->err), fx);
	assert_int_equal(n, 2);
	assert_true((strcmp(ids[0], a) == 0 && strcmp(ids[1], b) == 0) ||
		    (strcmp(ids[0], b) == 0 && strcmp(ids[1], a) == 0));
	assert_null(ids[2]);
	berth_docker_ids_free(ids);
	CHECK(berth_docker_container_remove(fx->d, a, &fx->err), fx);
	CHECK(berth_docker_container_remove(fx->d, b, &fx->err), fx);
	CHECK(berth_docker_container_remove(fx->d, b, &fx->err), fx); /* gone: fine */
	CHECK(berth_docker_container_list(fx->d, label, NULL, &ids, &n, &fx->err), fx);
	assert_int_equal(n, 0);
	assert_null(ids[0]);
	berth_docker_ids_free(ids);
	CHECK(berth_docker_container_inspect(fx->d, a, &present, &st, &fx->err), fx);
	assert_false(present);
	/* a daemon error answer shows its message and status */
	assert_int_equal(berth_docker_container_start(fx->d, a, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "HTTP 404"));
	assert_non_null(strstr(fx->err.msg, "No such container"));
}

static void test_timings(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { "true", NULL };
	struct berth_docker_create c;
	char id[BERTH_DOCKER_ID_MAX];
	double t[5], ld;
	int code;

	NEED_DOCKER(fx);
	ld = load_image(fx);
	print_message("load (image already known to the daemon under another tag?): %.1f ms\n", ld);
	base_create(fx, &c, argv);
	for (int i = 0; i < 3; i++) {
		t[0] = now_ms();
		CHECK(berth_docker_container_create(fx->d, &c, id, &fx->err), fx);
		memcpy(fx->cids[fx->n_cids++], id, sizeof(id));
		t[1] = now_ms();
		CHECK(berth_docker_container_start(fx->d, id, &fx->err), fx);
		t[2] = now_ms();
		CHECK(berth_docker_container_wait(fx->d, id, &code, &fx->err), fx);
		t[3] = now_ms();
		CHECK(berth_docker_container_remove(fx->d, id, &fx->err), fx);
		t[4] = now_ms();
		fx->n_cids--;
		assert_int_equal(code, 0);
		print_message("create %.1f start %.1f wait %.1f remove %.1f ms\n", t[1] - t[0],
			      t[2] - t[1], t[3] - t[2], t[4] - t[3]);
	}
}

/* ---- the archive berth sends dockerd (no daemon needed) ------------------ */

/* berth_image_write_verified_archive of `archive` (picking `tag`) into
 * OUT; returns its result, err holds the reason. */
static int write_verified(const char *dir, const char *archive, const char *tag,
			  struct berth_image *img, struct berth_err *err)
{
	char out[256];

	assert_int_equal(berth_image_open(img, archive, tag, dir, err), 0);
	snprintf(out, sizeof(out), "%s/out.tar", dir);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	int rc = berth_image_write_verified_archive(img, fd, err);
	close(fd);
	return rc;
}

static void sh(const char *fmt, const char *dir)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), fmt, dir, dir, dir, dir);
	if (system(cmd) != 0)
		fail_msg("'%s' failed", cmd);
}

/* From a two-image archive: the chosen image only, untagged, and the
 * archive written is one berth reads back as that very image. */
static void test_verified_archive_one_untagged_image(void **state)
{
	char dir[] = "/tmp/berth-verified-XXXXXX", path[256], digest[80], out[256];
	struct berth_image img, back;
	struct berth_err err = {0};
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/multi.tar", dir);
	mkimage("multi", path, NULL, digest);
	if (write_verified(dir, path, "berth/two:2", &img, &err) < 0)
		fail_msg("%s", err.msg);
	snprintf(out, sizeof(out), "%s/out.tar", dir);
	assert_int_equal(berth_image_open(&back, out, NULL, dir, &err), 0);
	assert_string_equal(back.digest, img.digest);
	assert_string_not_equal(back.digest, digest); /* not the first image */
	assert_int_equal(back.n_tags, 0);
	berth_image_close(&back);
	berth_image_close(&img);
	/* exactly one config and its two layers */
	sh("test \"$(tar -tf %s/out.tar | grep -c '\\.json$')\" = 2 && "
	   "test \"$(tar -tf %s/out.tar | grep -c 'layer.tar$')\" = 2 && "
	   "tar -xOf %s/out.tar manifest.json | grep -q '\"RepoTags\":null' && rm -rf %s", dir);
}

/* An archive holding a config without its layers (or with other ones):
 * nothing to send, and the error says which layer. */
static void test_verified_archive_needs_its_layers(void **state)
{
	char dir[] = "/tmp/berth-verified-XXXXXX", path[256], digest[80];
	struct berth_image img;
	struct berth_err err = {0};
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/full.tar", dir);
	mkimage("legacy", path, NULL, digest);
	/* the config and manifest only */
	sh("cd %s && mkdir x && tar -xf full.tar -C x && cd x && tar -cf ../cfg.tar *.json", dir);
	snprintf(path, sizeof(path), "%s/cfg.tar", dir);
	assert_int_equal(write_verified(dir, path, NULL, &img, &err), -1);
	assert_non_null(strstr(err.msg, "layer 0"));
	assert_non_null(strstr(err.msg, "holds itself"));
	berth_image_close(&img);
	/* a layer swapped for another of the same name */
	sh("cd %s/x && for l in */layer.tar; do cp ../x/$(ls -d */ | head -1)layer.tar $l.new; "
	   "done; for l in */layer.tar; do mv $l.new $l; done && tar -cf ../swap.tar * && rm -rf ../x", dir);
	snprintf(path, sizeof(path), "%s/swap.tar", dir);
	memset(&err, 0, sizeof(err));
	assert_int_equal(write_verified(dir, path, NULL, &img, &err), -1);
	assert_non_null(strstr(err.msg, "is not the layer"));
	berth_image_close(&img);
	/* gzip layers (OCI): verified through the decompressed tar */
	snprintf(path, sizeof(path), "%s/gz.tar", dir);
	sh("python3 " MKIMAGE " oci %s/gz.tar --gzip-layers >/dev/null", dir);
	memset(&err, 0, sizeof(err));
	if (write_verified(dir, path, NULL, &img, &err) < 0)
		fail_msg("%s", err.msg);
	berth_image_close(&img);
	sh("rm -rf %s", dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_bad_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ulimit_rejected_before_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cpuset_rejected_before_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_rejected_before_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_negotiates_from_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refuses_what_is_not_docker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_keeps_the_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_error_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_fields_in_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_demux_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_load_inspect_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_load_from_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_save, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_load_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_load_missing_known_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_inspect_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_stdio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_vetted_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_sigterm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timings, setup, teardown),
		cmocka_unit_test(test_verified_archive_one_untagged_image),
		cmocka_unit_test(test_verified_archive_needs_its_layers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
