/* Unit tests for executor/source/fetch.c against a real HTTP server on loopback
 * (tests/harness/fixtures/httpd.py, started here; run from the repository root or
 * set BERTH_REPO). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "executor/base/fs.h"
#include "executor/source/fetch.h"

#define SRC_SIZE (1536 * 1024 + 123) /* big enough that a cut lands mid-body */

/* The server and the source folder, shared by all tests. */
static struct {
	char srcdir[64];
	pid_t pid;
	int stdin_fd; /* closing it stops the server too */
	int port;
} srv = { .pid = -1, .stdin_fd = -1 };

/* One cache folder per test. */
struct fx {
	char cache[64];
	struct berth_fetch_opts opts;
	struct berth_fetch_result res;
	struct berth_err err;
};

/* ---- helpers ---------------------------------------------------------------- */

static void tf_write_file(const char *path, size_t size, uint32_t seed)
{
	FILE *f = fopen(path, "wb");
	uint32_t x = seed ? seed : 1;

	assert_non_null(f);
	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		fputc((int)(x & 0xff), f);
	}
	assert_int_equal(fclose(f), 0);
}

static char *tf_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* "sha256:<hex>" of a file, computed here with EVP independently of fetch.c. */
static void tf_sha256_file(const char *path, char out[72])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	size_t len = 0;
	char *buf = tf_read_file(path, &len);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	assert_non_null(buf);
	assert_non_null(ctx);
	assert_true(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL));
	assert_true(EVP_DigestUpdate(ctx, buf, len));
	assert_true(EVP_DigestFinal_ex(ctx, d, &dlen));
	EVP_MD_CTX_free(ctx);
	free(buf);
	strcpy(out, "sha256:");
	for (unsigned i = 0; i < dlen; i++)
		sprintf(out + 7 + 2 * i, "%02x", d[i]);
}

static void tf_sha256_str(const char *s, char out[65])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	assert_true(EVP_Digest(s, strlen(s), d, &dlen, EVP_sha256(), NULL));
	for (unsigned i = 0; i < dlen; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void tf_assert_same_file(const char *a, const char *b)
{
	size_t la = 0, lb = 0;
	char *da = tf_read_file(a, &la), *db = tf_read_file(b, &lb);

	assert_non_null(da);
	assert_non_null(db);
	assert_int_equal(la, lb);
	assert_memory_equal(da, db, la);
	free(da);
	free(db);
}

static int tf_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

struct tf_buf {
	char data[512];
	size_t len;
};

static size_t tf_buf_write(char *p, size_t size, size_t n, void *ud)
{
	struct tf_buf *b = ud;
	size_t len = size * n, room = sizeof(b->data) - 1 - b->len;

	if (len > room)
		len = room;
	memcpy(b->data + b->len, p, len);
	b->len += len;
	b->data[b->len] = '\0';
	return size * n;
}

/* GET a control path (/stats..., /reset) of the test server. */
static void tf_get(const char *path, struct tf_buf *b)
{
	CURL *c = curl_easy_init();
	char url[256];

	assert_non_null(c);
	memset(b, 0, sizeof(*b));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", srv.port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tf_buf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
}

struct tf_stats {
	int requests, bodies, ranges, conditional, not_modified;
};

/* The number after "key " in a /stats line. */
static int tf_field(const char *line, const char *key)
{
	char k[32];
	const char *p;
	char *end;
	long v;

	snprintf(k, sizeof(k), "%s ", key);
	p = strstr(line, k);
	assert_non_null(p);
	v = strtol(p + strlen(k), &end, 10);
	assert_true(end != p + strlen(k));
	return (int)v;
}

/* Counters for one request path ("" for all). */
static struct tf_stats tf_stats(const char *path)
{
	struct tf_stats s;
	struct tf_buf b;
	char p[256];

	snprintf(p, sizeof(p), "/stats%s", path);
	tf_get(p, &b);
	s.requests = tf_field(b.data, "requests");
	s.bodies = tf_field(b.data, "bodies");
	s.ranges = tf_field(b.data, "ranges");
	s.conditional = tf_field(b.data, "conditional");
	s.not_modified = tf_field(b.data, "not_modified");
	return s;
}

static void tf_url(char *out, size_t size, const char *path)
{
	snprintf(out, size, "http://127.0.0.1:%d%s", srv.port, path);
}

static void tf_src(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", srv.srcdir, name);
}

static double tf_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- server lifecycle ---------------------------------------------------- */

static void tf_stop_server(void)
{
	if (srv.stdin_fd >= 0)
		close(srv.stdin_fd);
	srv.stdin_fd = -1;
	if (srv.pid > 0) {
		kill(srv.pid, SIGTERM);
		waitpid(srv.pid, NULL, 0);
	}
	srv.pid = -1;
}

static int group_setup(void **state)
{
	const char *repo = getenv("BERTH_REPO");
	char script[4096], path[128], line[32];
	int in[2], out[2];
	FILE *f;

	(void)state;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	snprintf(script, sizeof(script), "%s/tests/harness/fixtures/httpd.py", repo && *repo ? repo : ".");
	if (access(script, R_OK) < 0) {
		fprintf(stderr, "test_fetch: cannot find %s; run from the repository root or set BERTH_REPO\n",
			script);
		return -1;
	}
	snprintf(srv.srcdir, sizeof(srv.srcdir), "/tmp/berth-test-fetch-src-XXXXXX");
	if (!mkdtemp(srv.srcdir))
		return -1;
	tf_src(path, sizeof(path), "a.tar");
	tf_write_file(path, SRC_SIZE, 12345);
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		return -1;
	srv.pid = fork();
	if (srv.pid < 0)
		return -1;
	if (srv.pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execlp("python3", "python3", script, "--port", "0", "--dir", srv.srcdir, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	srv.stdin_fd = in[1];
	f = fdopen(out[0], "r");
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f) || (srv.port = (int)strtol(line, NULL, 10)) <= 0) {
		fclose(f);
		fprintf(stderr, "test_fetch: the test server did not start\n");
		tf_stop_server();
		return -1;
	}
	fclose(f);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	tf_stop_server();
	berth_remove_tree(AT_FDCWD, srv.srcdir);
	curl_global_cleanup();
	return 0;
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct tf_buf b;

	if (!fx)
		return -1;
	snprintf(fx->cache, sizeof(fx->cache), "/tmp/berth-test-fetch-XXXXXX");
	if (!mkdtemp(fx->cache)) {
		free(fx);
		return -1;
	}
	berth_fetch_opts_init(&fx->opts);
	fx->opts.timeout_s = 5;
	fx->opts.retry_delay_ms = 20;
	tf_get("/reset", &b);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	berth_remove_tree(AT_FDCWD, fx->cache);
	free(fx);
	return 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_http_ok(void **state)
{
	struct fx *fx = *state;
	char url[256], src[128], want[72], hex[65], path[256];
	struct tf_stats s;

	tf_url(url, sizeof(url), "/a.tar");
	tf_src(src, sizeof(src), "a.tar");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	tf_sha256_str(url, hex);
	snprintf(path, sizeof(path), "%s/%s.tar", fx->cache, hex);
	assert_string_equal(fx->res.path, path);
	tf_sha256_file(src, want);
	assert_string_equal(fx->res.sha256, want);
	assert_false(fx->res.not_modified);
	assert_int_equal(fx->res.bytes, SRC_SIZE);
	tf_assert_same_file(src, fx->res.path);
	assert_int_equal(tf_count_entries(fx->cache), 2); /* .tar and .meta */
	s = tf_stats("");
	assert_int_equal(s.requests, 1);
	assert_int_equal(s.bodies, 1);
}

static void test_conditional_304(void **state)
{
	struct fx *fx = *state;
	char url[256], first_sha[72];
	struct tf_stats s;

	tf_url(url, sizeof(url), "/a.tar");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	assert_false(fx->res.not_modified);
	strcpy(first_sha, fx->res.sha256);
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	assert_true(fx->res.not_modified);
	assert_string_equal(fx->res.sha256, first_sha);
	assert_int_equal(fx->res.bytes, SRC_SIZE);
	s = tf_stats("");
	assert_int_equal(s.requests, 2);
	assert_int_equal(s.bodies, 1);
	assert_int_equal(s.conditional, 1);
	assert_int_equal(s.not_modified, 1);
	assert_int_equal(tf_count_entries(fx->cache), 2);
}

static void test_changed_refetched(void **state)
{
	struct fx *fx = *state;
	char url[256], src[128], want[72];
	struct utimbuf times = { .actime = 1600000000, .modtime = 1600000000 };
	struct tf_stats s;

	tf_src(src, sizeof(src), "c.tar");
	tf_write_file(src, 4000, 7);
	tf_url(url, sizeof(url), "/c.tar");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	tf_write_file(src, 5000, 8);
	assert_int_equal(utime(src, &times), 0);
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	assert_false(fx->res.not_modified);
	tf_sha256_file(src, want);
	assert_string_equal(fx->res.sha256, want);
	tf_assert_same_file(src, fx->res.path);
	s = tf_stats("");
	assert_int_equal(s.requests, 2);
	assert_int_equal(s.bodies, 2);
	assert_int_equal(s.conditional, 1);
	unlink(src);
}

static void test_cut_resumes(void **state)
{
	struct fx *fx = *state;
	char url[256], src[128], want[72];
	struct tf_stats s;

	tf_url(url, sizeof(url), "/cut/a.tar");
	tf_src(src, sizeof(src), "a.tar");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	tf_assert_same_file(src, fx->res.path);
	tf_sha256_file(src, want);
	assert_string_equal(fx->res.sha256, want);
	assert_int_equal(fx->res.bytes, SRC_SIZE);
	s = tf_stats("");
	assert_int_equal(s.requests, 2);
	assert_int_equal(s.ranges, 1);
	assert_int_equal(tf_count_entries(fx->cache), 2);
}

static void test_norange_restarts(void **state)
{
	struct fx *fx = *state;
	char url[256], src[128], want[72];
	struct tf_stats s;

	tf_url(url, sizeof(url), "/norange/a.tar");
	tf_src(src, sizeof(src), "a.tar");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	tf_assert_same_file(src, fx->res.path);
	tf_sha256_file(src, want);
	assert_string_equal(fx->res.sha256, want);
	assert_int_equal(fx->res.bytes, SRC_SIZE);
	s = tf_stats("");
	assert_true(s.ranges >= 1);
	assert_true(s.requests >= 2 && s.requests <= 3);
	assert_int_equal(tf_count_entries(fx->cache), 2);
}

static void test_404(void **state)
{
	struct fx *fx = *state;
	char url[256];

	tf_url(url, sizeof(url), "/404");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "the server answered 404 Not Found"));
	assert_non_null(strstr(fx->err.msg, "check the image URL"));
	assert_int_equal(tf_stats("").requests, 1); /* 4xx: no retry */
	assert_int_equal(tf_count_entries(fx->cache), 0);
}

static void test_500_retried_then_fails(void **state)
{
	struct fx *fx = *state;
	char url[256];

	tf_url(url, sizeof(url), "/500");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "500 Internal Server Error"));
	assert_non_null(strstr(fx->err.msg, "gave up after 4 attempts"));
	assert_int_equal(tf_stats("").requests, 4);
	assert_int_equal(tf_count_entries(fx->cache), 0);
}

static void test_flaky500_retried(void **state)
{
	struct fx *fx = *state;
	char url[256], src[128], want[72];

	tf_url(url, sizeof(url), "/flaky500/a.tar");
	tf_src(src, sizeof(src), "a.tar");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	tf_sha256_file(src, want);
	assert_string_equal(fx->res.sha256, want);
	assert_int_equal(tf_stats("").requests, 2);
}

static void test_big_over_cap(void **state)
{
	struct fx *fx = *state;
	char url[256];

	fx->opts.max_bytes = 1000000;
	tf_url(url, sizeof(url), "/big/5000000");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "fetch cap of 1000000 bytes (CacheMaxSize)"));
	assert_int_equal(tf_count_entries(fx->cache), 0);
	assert_int_equal(tf_stats("").requests, 1); /* not retried */
}

static void test_big_chunked_over_cap(void **state)
{
	struct fx *fx = *state;
	char url[256];

	fx->opts.max_bytes = 1000000;
	tf_url(url, sizeof(url), "/bignolen/5000000");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "fetch cap of 1000000 bytes (CacheMaxSize)"));
	assert_int_equal(tf_count_entries(fx->cache), 0);
}

static void test_cap_exact_fits(void **state)
{
	struct fx *fx = *state;
	char url[256];

	fx->opts.max_bytes = SRC_SIZE;
	tf_url(url, sizeof(url), "/a.tar");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	assert_int_equal(fx->res.bytes, SRC_SIZE);
}

static void test_redirect(void **state)
{
	struct fx *fx = *state;
	char url[256], src[128];

	tf_url(url, sizeof(url), "/redirect/a.tar");
	tf_src(src, sizeof(src), "a.tar");
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	tf_assert_same_file(src, fx->res.path);
	assert_int_equal(tf_stats("/redirect/a.tar").requests, 1);
	assert_int_equal(tf_stats("/a.tar").requests, 1);
}

static void test_file_url(void **state)
{
	struct fx *fx = *state;
	char url[256], src[128], want[72];

	tf_src(src, sizeof(src), "a.tar");
	snprintf(url, sizeof(url), "file://%s", src);
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	tf_assert_same_file(src, fx->res.path);
	tf_sha256_file(src, want);
	assert_string_equal(fx->res.sha256, want);
	assert_int_equal(tf_count_entries(fx->cache), 1); /* no validators, no .meta */
}

static void test_file_url_missing(void **state)
{
	struct fx *fx = *state;
	char url[256];

	snprintf(url, sizeof(url), "file://%s/nope.tar", srv.srcdir);
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "check that the file exists"));
	assert_null(strstr(fx->err.msg, "gave up")); /* not retried */
	assert_int_equal(tf_count_entries(fx->cache), 0);
}

static void test_ftp_refused(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(berth_fetch("ftp://x/y.tar", fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "scheme \"ftp\" is not supported"));
	assert_non_null(strstr(fx->err.msg, "use an http://, https:// or file:// URL"));
	assert_int_equal(berth_fetch("/just/a/path.tar", fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "not a URL"));
	assert_int_equal(tf_count_entries(fx->cache), 0);
}

static void test_connect_refused(void **state)
{
	struct fx *fx = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	char url[256];
	double t0;

	/* a port that was free a moment ago and has no listener */
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
	close(s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/a.tar", ntohs(sa.sin_port));
	fx->opts.timeout_s = 2;
	fx->opts.retries = 1;
	t0 = tf_now();
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_true(tf_now() - t0 < 2.0 * fx->opts.timeout_s + 1);
	assert_non_null(strstr(fx->err.msg, "check that the server is up"));
	assert_non_null(strstr(fx->err.msg, "gave up after 2 attempts"));
	assert_int_equal(tf_count_entries(fx->cache), 0);
}

static void test_stall_times_out(void **state)
{
	struct fx *fx = *state;
	char url[256];
	double t0;

	tf_url(url, sizeof(url), "/stall");
	fx->opts.timeout_s = 1;
	fx->opts.retries = 0;
	t0 = tf_now();
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_true(tf_now() - t0 < 5.0);
	assert_non_null(strstr(fx->err.msg, "FetchTimeout"));
	assert_int_equal(tf_count_entries(fx->cache), 0);
}

static void test_symlinks_not_followed(void **state)
{
	struct fx *fx = *state;
	char url[256], hex[65], link[256], victim[128], src[128];
	size_t len = 0;
	char *data;
	struct stat st;

	tf_src(victim, sizeof(victim), "victim");
	tf_src(src, sizeof(src), "a.tar");
	tf_write_file(victim, 100, 3);
	tf_url(url, sizeof(url), "/a.tar");
	tf_sha256_str(url, hex);
	snprintf(link, sizeof(link), "%s/%s.tar", fx->cache, hex);
	assert_int_equal(symlink(victim, link), 0);
	snprintf(link, sizeof(link), "%s/%s.meta", fx->cache, hex);
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	assert_false(fx->res.not_modified);
	data = tf_read_file(victim, &len);
	assert_non_null(data);
	assert_int_equal(len, 100);
	free(data);
	assert_int_equal(lstat(fx->res.path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	tf_assert_same_file(src, fx->res.path);
	unlink(victim);
}

struct tf_progress {
	int calls;
	uint64_t done, total;
};

static void tf_progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	struct tf_progress *p = ctx;

	p->calls++;
	p->done = done;
	p->total = total;
}

static void test_progress(void **state)
{
	struct fx *fx = *state;
	struct tf_progress p = { 0 };
	char url[256];
	double t0 = tf_now();

	tf_url(url, sizeof(url), "/a.tar");
	fx->opts.progress = tf_progress_cb;
	fx->opts.progress_ctx = &p;
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	assert_true(p.calls >= 1);
	assert_true(p.calls <= (int)(tf_now() - t0) + 2); /* about once a second */
	assert_int_equal(p.done, SRC_SIZE);
	assert_int_equal(p.total, SRC_SIZE);
}

static void test_secrets_masked(void **state)
{
	struct fx *fx = *state;
	char url[256];

	snprintf(url, sizeof(url), "http://user:hunter2@127.0.0.1:%d/404?sig=topsecret", srv.port);
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "404"));
	assert_null(strstr(fx->err.msg, "hunter2"));
	assert_null(strstr(fx->err.msg, "topsecret"));
	assert_non_null(strstr(fx->err.msg, "http://***@127.0.0.1"));
}

/* The cache keeps what a message forgets: .meta holds the URL masked and
 * its hash, never the password or the query, and still validates. */
static void test_secrets_not_in_meta(void **state)
{
	struct fx *fx = *state;
	char url[256], hex[65], meta[256];
	size_t len = 0;

	snprintf(url, sizeof(url), "http://user:hunter2@127.0.0.1:%d/a.tar?sig=topsecret", srv.port);
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	tf_sha256_str(url, hex);
	snprintf(meta, sizeof(meta), "%s/%s.meta", fx->cache, hex);
	char *data = tf_read_file(meta, &len);
	assert_non_null(data);
	char *text = strndup(data, len);
	free(data);
	assert_non_null(text);
	assert_null(strstr(text, "hunter2"));
	assert_null(strstr(text, "topsecret"));
	assert_non_null(strstr(text, "url http://***@127.0.0.1:"));
	free(text);
	/* the record still matches its URL: the next fetch is conditional */
	assert_int_equal(berth_fetch(url, fx->cache, &fx->opts, &fx->res, &fx->err), 0);
	assert_true(fx->res.not_modified);
}

static void test_missing_dir(void **state)
{
	struct fx *fx = *state;
	char url[256];

	tf_url(url, sizeof(url), "/a.tar");
	assert_int_equal(berth_fetch(url, "/nonexistent/berth", &fx->opts, &fx->res, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "cannot open the cache folder /nonexistent/berth"));
	assert_int_equal(fx->err.errnum, ENOENT);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_http_ok),
		T(test_conditional_304),
		T(test_changed_refetched),
		T(test_cut_resumes),
		T(test_norange_restarts),
		T(test_404),
		T(test_500_retried_then_fails),
		T(test_flaky500_retried),
		T(test_big_over_cap),
		T(test_big_chunked_over_cap),
		T(test_cap_exact_fits),
		T(test_redirect),
		T(test_secrets_not_in_meta),
		T(test_file_url),
		T(test_file_url_missing),
		T(test_ftp_refused),
		T(test_connect_refused),
		T(test_stall_times_out),
		T(test_symlinks_not_followed),
		T(test_progress),
		T(test_secrets_masked),
		T(test_missing_dir),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
