/* libFuzzer target: what a registry (and its token server) answers, and
 * the credential files berth reads, parsed by executor/source/registry.c,
 * registry_http.c and credentials.c.  The files are included so that their
 * static parsers are reachable without a network.  Byte 0 picks:
 *   0  a manifest or an index: an index picks this node's platform, a
 *      manifest lists the blobs to fetch (against an empty layout)
 *   1  a token server's answer
 *   2  a 401's WWW-Authenticate parameters, headers, an error body
 *   3  ~/.config/berth/credentials and ~/.docker/config.json (split at the
 *      first NUL byte), read from a private scratch home
 * Properties checked: a picked manifest digest or a blob to fetch is a
 * valid sha256 digest, an accepted token fits its header, a parse that
 * fails says why. */
#include "executor/source/registry.c"
#include "executor/source/registry_http.c"
/* a fuzzed `password $(...)` or credential helper must run nothing */
#define BERTH_CRED_NO_PROGRAMS 1
#include "executor/source/credentials.c"
#include "scratch.h"
#include "text.h"

static char home[2048];
static struct layout layout;
static struct berth_imageref ref = {
	.registry = "registry.example:5000",
	.repository = "lab/tool",
	.tag = "1",
};
static struct berth_registry_opts opts = { .home = home };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct berth_err err = { 0 };
	char dir[sizeof(home) + 32];

	(void)argc;
	(void)argv;
	fuzz_scratch(home, sizeof(home), "registry");
	snprintf(dir, sizeof(dir), "%s/.config", home);
	mkdir(dir, 0700);
	snprintf(dir, sizeof(dir), "%s/.config/berth", home);
	mkdir(dir, 0700);
	snprintf(dir, sizeof(dir), "%s/.docker", home);
	mkdir(dir, 0700);
	snprintf(dir, sizeof(dir), "%s/layout", home);
	mkdir(dir, 0700);
	if (layout_open(&layout, dir, &err) < 0)
		abort();
	return 0;
}

static void check_failed(int rc, const struct berth_err *err)
{
	if (rc < 0 && !err->msg[0])
		abort(); /* a refusal must say why */
}

static void session(struct reg_session *s)
{
	memset(s, 0, sizeof(*s));
	s->opts = &opts;
	s->ref = &ref;
}

static void manifest(const char *text)
{
	struct berth_err err = { 0 };
	struct reg_session s;
	struct json_object *root = json_tokener_parse(text);
	struct blob_job *jobs = NULL;
	size_t n = 0;
	unsigned present = 0;
	char digest[72];
	int rc;

	if (!root)
		return;
	session(&s);
	if (is_index(root, NULL)) {
		rc = pick_platform(&s, root, digest, &err);
		if (rc == 0 && !berth_digest_valid(digest))
			abort();
	} else {
		rc = missing_blobs(&layout, root, &jobs, &n, &present, &err);
		for (size_t i = 0; rc == 0 && i < n; i++)
			if (!berth_digest_valid(jobs[i].digest))
				abort();
		free(jobs);
	}
	json_object_put(root);
	check_failed(rc, &err);
}

static void token(char *text, size_t len)
{
	struct berth_err err = { 0 };
	struct reg_session s;
	struct reg_response r = { .status = 200, .body = text, .len = len };

	session(&s);
	int rc = token_from_answer(&s, &r, &err);
	if (rc == 0 && (strncmp(s.authz, "Authorization: Bearer ", 22) != 0 ||
			strlen(s.authz) >= sizeof(s.authz)))
		abort();
	check_failed(rc, &err);
}

static void challenge(char *text, size_t len)
{
	struct reg_response r = { .status = 401, .body = text, .len = len };
	char realm[1024], reason[256];

	(void)challenge_param(text, "realm", realm, sizeof(realm));
	(void)challenge_param(text, "service", realm, sizeof(realm));
	reg_reason(&r, reason, sizeof(reason));
	for (const char *p = reason; *p; p++)
		if (iscntrl((unsigned char)*p))
			abort(); /* shown to the user on one line */
	/* Every line as a header the way libcurl hands them over. */
	for (char *line = text; line < text + len;) {
		size_t n = strcspn(line, "\n");
		if (line + n < text + len)
			n++;
		(void)reg_header_cb(line, 1, n, &r);
		line += n;
	}
}

static void write_private(const char *rel, const char *text, size_t len)
{
	char path[sizeof(home) + 64];

	snprintf(path, sizeof(path), "%s/%s", home, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || berth_write_all(fd, text, len) < 0)
		abort();
	close(fd);
}

static void credentials(const char *text, size_t len)
{
	struct berth_err err = { 0 };
	struct reg_session s;
	size_t first = strnlen(text, len);

	write_private(BERTH_CREDENTIALS_FILE, text, first);
	write_private(".docker/config.json", text + first + (first < len),
		      len - first - (first < len));
	session(&s);
	int rc = reg_load_creds(&s, &err);
	if (strlen(s.user) >= sizeof(s.user) || strlen(s.password) >= sizeof(s.password))
		abort();
	check_failed(rc, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned pick;
	char *text = fuzz_text(data, size, REG_BODY_MAX, &pick);
	if (!text)
		return 0;
	switch (pick % 4) {
	case 0: manifest(text); break;
	case 1: token(text, size - 1); break;
	case 2: challenge(text, size - 1); break;
	default: credentials((const char *)data + 1, size - 1); break;
	}
	free(text);
	return 0;
}
