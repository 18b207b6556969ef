/* berth: a client of the OCI distribution API (see registry.h). */
#define _GNU_SOURCE
#include "executor/source/registry.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include "executor/base/dl/crypto_lazy.h"

#include "executor/base/dl/curl_lazy.h"
#include "executor/source/fetch.h"
#include "executor/base/fs.h"
#include "executor/source/tarmember.h"

#ifndef BERTH_VERSION
#define BERTH_VERSION "dev"
#endif

#define REG_BODY_MAX (4u << 20)  /* manifests, indexes, token answers */
#define REG_CRED_MAX 512
#define REG_HEADER_MAX 8192      /* an Authorization line */
#define REG_PARALLEL_MAX 16
#define REG_TOKEN_LIFE_MAX (366L * 24 * 3600) /* a longer expires_in counts as this */

static const char manifest_accept[] =
	"Accept: application/vnd.oci.image.index.v1+json, "
	"application/vnd.docker.distribution.manifest.list.v2+json, "
	"application/vnd.oci.image.manifest.v1+json, "
	"application/vnd.docker.distribution.manifest.v2+json";

/* One registry and repository, with what authenticates us there.  Shared
 * by the download threads: `lock` guards the Authorization line. */
struct reg_session {
	const struct berth_registry_opts *opts;
	const struct berth_imageref *ref;
	char base[300];          /* "https://host:port" */
	char ca_file[4096];      /* "" = the system's bundle */
	char user[REG_CRED_MAX];
	char password[REG_CRED_MAX];
	bool have_creds;
	char authz[REG_HEADER_MAX]; /* "Authorization: ..." or "" */
	time_t authz_expires;       /* 0 = does not expire */
	pthread_mutex_t lock;
};

/* One answer held in memory. */
struct reg_response {
	long status;
	char *body;
	size_t len;
	bool too_big;
	char challenge[1024];    /* WWW-Authenticate */
	char content_type[128];
	unsigned retry_after;
	char errbuf[CURL_ERROR_SIZE];
	CURLcode rc;
};

static void reg_response_free(struct reg_response *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* ---- small helpers -------------------------------------------------------- */

static void reg_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n--)
		*v++ = 0;
}



static bool reg_in_list(const char *list, const char *host)
{
	size_t n = strlen(host);

	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",");
		const char *q = p;
		while (len && isspace((unsigned char)*q)) {
			q++;
			len--;
		}
		while (len && isspace((unsigned char)q[len - 1]))
			len--;
		if (len == n && !strncasecmp(q, host, n))
			return true;
		p += strcspn(p, ",");
		if (*p)
			p++;
	}
	return false;
}

static const char *reg_home(const char *given)
{
	const char *env = getenv("HOME");
	struct passwd *pw;

	if (given)
		return given;
	/* The command as the user may look where the user says; the plugin's
	 * stagers get no HOME and use the password database. */
	if (env && env[0] == '/')
		return env;
	pw = getpwuid(getuid());
	return pw ? pw->pw_dir : NULL;
}

/* Docker Hub answers to several names in credential files. */
static bool reg_host_matches(const char *have, const char *registry)
{
	const char *h = have;

	if (!strncmp(h, "https://", 8))
		h += 8;
	else if (!strncmp(h, "http://", 7))
		h += 7;
	size_t n = strcspn(h, "/");
	if (strlen(registry) == n && !strncasecmp(h, registry, n))
		return true;
	if (strcmp(registry, BERTH_DOCKER_HUB) != 0)
		return false;
	return (n == 9 && !strncmp(h, "docker.io", 9)) ||
	       (n == 15 && !strncmp(h, "index.docker.io", 15));
}

/* ---- credentials ---------------------------------------------------------- */

/* Next netrc word: bare, or "double quoted" with \ escapes. */
static bool netrc_word(const char **pp, char *out, size_t cap)
{
	const char *p = *pp;
	size_t n = 0;

	if (!p)
		return false;
	while (*p && isspace((unsigned char)*p))
		p++;
	if (!*p)
		return false;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 < cap)
				out[n++] = *p;
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && !isspace((unsigned char)*p)) {
			if (n + 1 < cap)
				out[n++] = *p;
			p++;
		}
	}
	out[n] = '\0';
	*pp = p;
	return true;
}

/* Read a whole small file of the user's, refusing one others may read. */
static int reg_read_private(const char *path, bool must_be_private, char **out,
			    struct berth_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;

	*out = NULL;
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : berth_fail(err, errno, "cannot read %s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 1 << 20)
		return berth_fail(err, EINVAL, "%s is not a regular file under 1 MiB; fix or remove it", path);
	if (must_be_private && (st.st_mode & 077))
		return berth_fail(err, 0, "%s holds passwords but others may read it (mode %03o); "
				  "run chmod 600 %s", path, (unsigned)(st.st_mode & 0777), path);
	if (!(*out = calloc(1, (size_t)st.st_size + 1)))
		return berth_fail(err, ENOMEM, "%s", path);
	if (berth_read_all(fd, *out, (size_t)st.st_size) < 0) {
		free(*out);
		*out = NULL;
		return berth_fail(err, errno, "cannot read %s", path);
	}
	return 1;
}

static int creds_from_netrc(struct reg_session *s, const char *home, struct berth_err *err)
{
	char path[4096], word[REG_CRED_MAX], machine[300] = "";
	_cleanup_free_ char *text = NULL;
	bool here = false;
	const char *p;

	snprintf(path, sizeof(path), "%s/" BERTH_CREDENTIALS_FILE, home);
	int rc = reg_read_private(path, true, &text, err);
	if (rc <= 0 || !text)
		return rc;
	for (p = text; netrc_word(&p, word, sizeof(word));) {
		if (!strcmp(word, "machine") && netrc_word(&p, machine, sizeof(machine))) {
			if (here && s->have_creds)
				break;
			here = reg_host_matches(machine, s->ref->registry);
		} else if (!strcmp(word, "default")) {
			if (here && s->have_creds)
				break;
			here = false; /* never send a catch-all password to any registry */
		} else if (here && !strcmp(word, "login")) {
			netrc_word(&p, s->user, sizeof(s->user));
		} else if (here && !strcmp(word, "password")) {
			s->have_creds = netrc_word(&p, s->password, sizeof(s->password));
		}
	}
	reg_wipe(text, strlen(text));
	return 0;
}

static int creds_from_auth_field(struct reg_session *s, const char *b64)
{
	unsigned char raw[2 * REG_CRED_MAX];
	size_t len = strlen(b64);
	int n;

	if (len == 0 || len > (sizeof(raw) - 1) / 3 * 4)
		return 0;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
	if (n <= 0)
		return 0;
	while (n > 0 && raw[n - 1] == '\0' && b64[len - 1] == '=')
		n--; /* EVP_DecodeBlock counts the padding */
	raw[n] = '\0';
	char *colon = strchr((char *)raw, ':');
	if (colon) {
		*colon = '\0';
		snprintf(s->user, sizeof(s->user), "%s", raw);
		snprintf(s->password, sizeof(s->password), "%s", colon + 1);
		s->have_creds = true;
	}
	reg_wipe(raw, sizeof(raw));
	return 0;
}

static int creds_from_docker_config(struct reg_session *s, const char *home,
				    struct berth_err *err)
{
	char path[4096];
	_cleanup_free_ char *text = NULL;
	struct json_object *root, *auths;

	snprintf(path, sizeof(path), "%s/.docker/config.json", home);
	int rc = reg_read_private(path, false, &text, err);
	if (rc <= 0 || !text)
		return rc;
	root = json_tokener_parse(text);
	reg_wipe(text, strlen(text));
	if (!root)
		return berth_fail(err, 0, "%s is not valid JSON; fix it or move it away", path);
	if (json_object_object_get_ex(root, "auths", &auths) &&
	    json_object_is_type(auths, json_type_object)) {
		json_object_object_foreach(auths, key, val) {
			struct json_object *u, *pw;
			const char *auth = bj_member_string(val, "auth");
			if (s->have_creds || !reg_host_matches(key, s->ref->registry))
				continue;
			if (auth)
				creds_from_auth_field(s, auth);
			else if (json_object_object_get_ex(val, "username", &u) &&
				 json_object_object_get_ex(val, "password", &pw)) {
				snprintf(s->user, sizeof(s->user), "%s", bj_text(u));
				snprintf(s->password, sizeof(s->password), "%s", bj_text(pw));
				s->have_creds = true;
			}
		}
	}
	json_object_put(root);
	return 0;
}

static int reg_load_creds(struct reg_session *s, struct berth_err *err)
{
	const char *home = reg_home(s->opts->home);

	if (!home)
		return 0;
	if (creds_from_netrc(s, home, err) < 0)
		return -1;
	if (!s->have_creds && creds_from_docker_config(s, home, err) < 0)
		return -1;
	return 0;
}

/* ---- HTTP in memory ------------------------------------------------------- */

static size_t reg_body_cb(char *buf, size_t size, size_t n, void *ud)
{
	struct reg_response *r = ud;
	size_t len = size * n;

	if (r->len + len > REG_BODY_MAX) {
		r->too_big = true;
		return 0;
	}
	char *grown = realloc(r->body, r->len + len + 1);
	if (!grown)
		return 0;
	r->body = grown;
	memcpy(r->body + r->len, buf, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

static void reg_header_copy(const char *line, size_t len, const char *name, char *out,
			    size_t cap)
{
	size_t k = strlen(name);

	if (len <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return;
	line += k + 1;
	len -= k + 1;
	while (len && isspace((unsigned char)*line)) {
		line++;
		len--;
	}
	while (len && isspace((unsigned char)line[len - 1]))
		len--;
	snprintf(out, cap, "%.*s", (int)len, line);
}

static size_t reg_header_cb(char *buf, size_t size, size_t n, void *ud)
{
	struct reg_response *r = ud;
	size_t len = size * n;
	char after[16] = "";

	if (len >= 5 && !strncasecmp(buf, "HTTP/", 5)) {
		r->challenge[0] = r->content_type[0] = '\0';
		r->retry_after = 0;
	}
	reg_header_copy(buf, len, "WWW-Authenticate", r->challenge, sizeof(r->challenge));
	reg_header_copy(buf, len, "Content-Type", r->content_type, sizeof(r->content_type));
	reg_header_copy(buf, len, "Retry-After", after, sizeof(after));
	if (after[0])
		r->retry_after = (unsigned)strtoul(after, NULL, 10);
	return len;
}

/* GET url into r.  `headers` are extra request lines; user/password, when
 * given, go through libcurl's Basic auth (never a command line). */
static int reg_http_get(struct reg_session *s, const char *url, const char *const *headers,
			const char *user, const char *password, struct reg_response *r)
{
	struct curl_slist *hdrs = NULL, *tmp;
	CURL *c = curl_easy_init();
	long timeout = s->opts->timeout_s ? (long)s->opts->timeout_s : BERTH_FETCH_DEFAULT_TIMEOUT;

	memset(r, 0, sizeof(*r));
	if (!c)
		return -1;
	for (; headers && *headers; headers++)
		if ((tmp = curl_slist_append(hdrs, *headers)))
			hdrs = tmp;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, timeout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, reg_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, reg_header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (s->ca_file[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
	if (user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, password);
	}
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	return 0;
}

/* Why a transfer failed, in words a user can act on. */
static int reg_transport_error(struct reg_session *s, const struct reg_response *r,
			       const char *what, struct berth_err *err)
{
	const char *host = s->ref->registry;
	const char *msg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->rc);

	switch (r->rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
		return berth_fail(err, 0, "cannot reach registry %s for %s: TLS failed (%s); if the "
				  "registry uses a private CA, install it as %s/%s/ca.crt; if it "
				  "speaks plain HTTP, the site lists it in InsecureRegistries",
				  host, what, msg, s->opts->certs_dir ? s->opts->certs_dir
								     : "/etc/docker/certs.d", host);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
		return berth_fail(err, 0, "cannot reach registry %s for %s (%s); check the "
				  "registry name in the image reference and the node's network",
				  host, what, msg);
	default:
		if (r->too_big)
			return berth_fail(err, 0, "registry %s sent more than %u bytes for %s; "
					  "that is not a manifest", host, REG_BODY_MAX, what);
		return berth_fail(err, 0, "cannot fetch %s from registry %s: %s", what, host, msg);
	}
}

/* The registry's own words: errors[0].message (or .code). */
static void reg_reason(const struct reg_response *r, char *out, size_t cap)
{
	struct json_object *root = r->body ? json_tokener_parse(r->body) : NULL;
	struct json_object *errs, *first, *v;

	out[0] = '\0';
	if (root && json_object_object_get_ex(root, "errors", &errs) &&
	    json_object_is_type(errs, json_type_array) && (first = json_object_array_get_idx(errs, 0))) {
		if (json_object_object_get_ex(first, "message", &v) ||
		    json_object_object_get_ex(first, "code", &v))
			snprintf(out, cap, "%s", bj_text(v));
	} else if (root && json_object_object_get_ex(root, "details", &v)) {
		snprintf(out, cap, "%s", bj_text(v));
	}
	json_object_put(root);
	for (char *p = out; *p; p++)
		if (iscntrl((unsigned char)*p))
			*p = ' ';
}

/* ---- authentication ------------------------------------------------------- */

/* Value of key="..." (or key=bare) in a WWW-Authenticate parameter list. */
static bool challenge_param(const char *params, const char *key, char *out, size_t cap)
{
	size_t k = strlen(key);

	for (const char *p = params; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		bool match = !strncasecmp(p, key, k) && p[k] == '=';
		const char *eq = strchr(p, '=');
		if (!eq)
			return false;
		const char *v = eq + 1, *end;
		if (*v == '"') {
			v++;
			end = strchr(v, '"');
			if (!end)
				return false;
		} else {
			end = v + strcspn(v, ",");
		}
		if (match) {
			snprintf(out, cap, "%.*s", (int)(end - v), v);
			return true;
		}
		p = *end == '"' ? end + 1 : end;
	}
	return false;
}

static int set_basic_authz(struct reg_session *s)
{
	char pair[2 * REG_CRED_MAX + 2];
	unsigned char b64[sizeof(pair) * 4 / 3 + 4];

	snprintf(pair, sizeof(pair), "%s:%s", s->user, s->password);
	EVP_EncodeBlock(b64, (const unsigned char *)pair, (int)strlen(pair));
	snprintf(s->authz, sizeof(s->authz), "Authorization: Basic %s", b64);
	s->authz_expires = 0;
	reg_wipe(pair, sizeof(pair));
	reg_wipe(b64, sizeof(b64));
	return 0;
}

static int no_creds_error(struct reg_session *s, const char *what, const char *reason,
			  struct berth_err *err)
{
	return berth_fail(err, 0, "registry %s wants credentials for %s%s%s%s; store yours with "
			  "`berth login %s` (or in ~/" BERTH_CREDENTIALS_FILE ")",
			  s->ref->registry, what, reason[0] ? " (" : "", reason,
			  reason[0] ? ")" : "", s->ref->registry);
}

/* A token server's answer: {"token" or "access_token": "...", "expires_in": N}
 * becomes the session's Authorization line. */
static int token_from_answer(struct reg_session *s, const struct reg_response *r,
			     struct berth_err *err)
{
	struct json_object *root = r->status == 200 && r->body ? json_tokener_parse(r->body) : NULL;
	struct json_object *tok = NULL, *exp = NULL;
	if (!root || (!json_object_object_get_ex(root, "token", &tok) &&
		      !json_object_object_get_ex(root, "access_token", &tok)) ||
	    !json_object_is_type(tok, json_type_string) ||
	    strlen(json_object_get_string(tok)) + 40 > sizeof(s->authz)) {
		json_object_put(root);
		return berth_fail(err, 0, "the token server of registry %s answered %ld without a "
				  "usable token; tell the registry's operator", s->ref->registry,
				  r->status);
	}
	long expires = json_object_object_get_ex(root, "expires_in", &exp) ? json_object_get_int64(exp) : 0;
	snprintf(s->authz, sizeof(s->authz), "Authorization: Bearer %s", json_object_get_string(tok));
	/* The spec's default lifetime is 60 s; renew a little early.  A token
	 * of a few seconds is used until the registry refuses it (a 401 asks
	 * again): whole-second clocks would call it expired before its first
	 * use. */
	if (expires <= 0)
		expires = 60;
	if (expires > REG_TOKEN_LIFE_MAX) /* the server's number, capped before adding */
		expires = REG_TOKEN_LIFE_MAX;
	s->authz_expires = expires > 10 ? time(NULL) + expires - 5 : 0;
	json_object_put(root);
	return 0;
}

/* Ask the token server named by a Bearer challenge for a pull token. */
static int fetch_token(struct reg_session *s, const char *params, const char *what,
		       struct berth_err *err)
{
	char realm[1024], service[256] = "", url[2048], reason[256];
	struct reg_response r;
	CURL *esc = curl_easy_init();

	if (!challenge_param(params, "realm", realm, sizeof(realm)) ||
	    (strncmp(realm, "https://", 8) != 0 && strncmp(realm, "http://", 7) != 0)) {
		if (esc)
			curl_easy_cleanup(esc);
		return berth_fail(err, 0, "registry %s sent an authentication challenge without a "
				  "usable realm (%s); tell its operator", s->ref->registry, params);
	}
	/* A password never travels in clear text to a token server the site
	 * did not declare plain-HTTP (it would be an easy way to harvest it). */
	if (s->have_creds && !strncmp(realm, "http://", 7) &&
	    !reg_in_list(s->opts->insecure, s->ref->registry)) {
		if (esc)
			curl_easy_cleanup(esc);
		return berth_fail(err, 0, "registry %s sends credentials to a token server over plain "
				  "HTTP (%s); berth refuses: tell the registry's operator, or the site "
				  "lists the registry in InsecureRegistries", s->ref->registry, realm);
	}
	challenge_param(params, "service", service, sizeof(service));
	char *svc = esc ? curl_easy_escape(esc, service, 0) : NULL;
	char scope[400];
	snprintf(scope, sizeof(scope), "repository:%s:pull", s->ref->repository);
	char *sc = esc ? curl_easy_escape(esc, scope, 0) : NULL;
	/* No repository (a login check): no scope, the server says who we are. */
	snprintf(url, sizeof(url), "%s%sservice=%s%s%s", realm, strchr(realm, '?') ? "&" : "?",
		 svc ? svc : "", s->ref->repository[0] ? "&scope=" : "",
		 s->ref->repository[0] && sc ? sc : "");
	curl_free(svc);
	curl_free(sc);
	if (esc)
		curl_easy_cleanup(esc);
	reg_http_get(s, url, NULL, s->have_creds ? s->user : NULL, s->password, &r);
	if (r.rc != CURLE_OK) {
		int rc = reg_transport_error(s, &r, "an access token", err);
		reg_response_free(&r);
		return rc;
	}
	if (r.status == 401 || r.status == 403) {
		reg_reason(&r, reason, sizeof(reason));
		reg_response_free(&r);
		if (!s->have_creds)
			return no_creds_error(s, what, reason, err);
		return berth_fail(err, 0, "registry %s refused the credentials of %s for %s (%ld%s%s); "
				  "check them with `berth login %s`", s->ref->registry, s->user, what,
				  r.status, reason[0] ? ": " : "", reason, s->ref->registry);
	}
	int rc = token_from_answer(s, &r, err);
	reg_wipe(r.body, r.len);
	reg_response_free(&r);
	return rc;
}

/* Answer a 401's challenge: a token, or Basic with the stored credentials. */
static int reg_authenticate(struct reg_session *s, const struct reg_response *r,
			    const char *what, struct berth_err *err)
{
	char reason[256];

	reg_reason(r, reason, sizeof(reason));
	if (!strncasecmp(r->challenge, "Bearer ", 7))
		return fetch_token(s, r->challenge + 7, what, err);
	if (!strncasecmp(r->challenge, "Basic", 5)) {
		if (!s->have_creds)
			return no_creds_error(s, what, reason, err);
		if (!strncmp(s->authz, "Authorization: Basic ", 21))
			return berth_fail(err, 0, "registry %s refused the credentials of %s for %s%s%s%s; "
					  "check them with `berth login %s`", s->ref->registry, s->user,
					  what, reason[0] ? " (" : "", reason, reason[0] ? ")" : "",
					  s->ref->registry);
		return set_basic_authz(s);
	}
	return berth_fail(err, 0, "registry %s answered 401 for %s with an authentication scheme "
			  "berth does not speak (%.60s)", s->ref->registry, what, r->challenge);
}

static void reg_current_authz(struct reg_session *s, char *out, size_t cap)
{
	pthread_mutex_lock(&s->lock);
	if (s->authz_expires && time(NULL) >= s->authz_expires)
		s->authz[0] = '\0'; /* expired: the next 401 gets a new one */
	snprintf(out, cap, "%s", s->authz);
	pthread_mutex_unlock(&s->lock);
}

/* GET BASE/v2/PATH with the current authorization; on a 401, authenticate
 * once and ask again. */
static int reg_get(struct reg_session *s, const char *path, const char *accept,
		   const char *what, struct reg_response *r, struct berth_err *err)
{
	char url[1024], authz[REG_HEADER_MAX];

	snprintf(url, sizeof(url), "%s/v2/%s", s->base, path);
	for (int attempt = 0;; attempt++) {
		reg_current_authz(s, authz, sizeof(authz));
		const char *hdrs[] = {accept, authz[0] ? authz : NULL, NULL};
		if (!accept) {
			hdrs[0] = hdrs[1];
			hdrs[1] = NULL;
		}
		reg_http_get(s, url, hdrs, NULL, NULL, r);
		reg_wipe(authz, sizeof(authz));
		if (r->rc != CURLE_OK) {
			int rc = reg_transport_error(s, r, what, err);
			reg_response_free(r);
			return rc;
		}
		if (r->status != 401 || attempt > 0)
			return 0;
		pthread_mutex_lock(&s->lock);
		int rc = reg_authenticate(s, r, what, err);
		pthread_mutex_unlock(&s->lock);
		if (rc < 0) {
			reg_response_free(r);
			return -1;
		}
		reg_response_free(r);
	}
}

static int reg_session_init(struct reg_session *s, const struct berth_registry_opts *opts,
			    const struct berth_imageref *ref, struct berth_err *err)
{
	const char *certs = opts->certs_dir ? opts->certs_dir : "/etc/docker/certs.d";
	bool plain = reg_in_list(opts->insecure, ref->registry);
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->opts = opts;
	s->ref = ref;
	pthread_mutex_init(&s->lock, NULL);
	if (berth_curl_load(err) < 0)
		return -1;
	snprintf(s->base, sizeof(s->base), "%s://%s", plain ? "http" : "https", ref->registry);
	snprintf(s->ca_file, sizeof(s->ca_file), "%s/%s/ca.crt", certs, ref->registry);
	if (plain || stat(s->ca_file, &st) < 0)
		s->ca_file[0] = '\0';
	return reg_load_creds(s, err);
}

static void reg_session_end(struct reg_session *s)
{
	reg_wipe(s->password, sizeof(s->password));
	reg_wipe(s->authz, sizeof(s->authz));
	pthread_mutex_destroy(&s->lock);
}

/* ---- manifests ------------------------------------------------------------ */

static void ref_text(const struct berth_imageref *ref, char *out, size_t cap)
{
	berth_imageref_format(ref, out, cap);
}

/* Fetch manifest `which` (tag or digest); check it against `digest` when
 * pinned; *got_digest is the sha256 of the bytes. */
static int fetch_manifest(struct reg_session *s, const char *which, const char *digest,
			  char **body, size_t *len, char got_digest[72], struct berth_err *err)
{
	char path[600], what[700], reason[256], shown[600];
	struct reg_response r;

	ref_text(s->ref, shown, sizeof(shown));
	snprintf(path, sizeof(path), "%s/manifests/%s", s->ref->repository, which);
	snprintf(what, sizeof(what), "%s", shown);
	if (reg_get(s, path, manifest_accept, what, &r, err) < 0)
		return -1;
	if (r.status != 200) {
		reg_reason(&r, reason, sizeof(reason));
		long st = r.status;
		unsigned after = r.retry_after;
		reg_response_free(&r);
		if (st == 404)
			return berth_fail(err, 0, "registry %s has no image %s: unknown repository or "
					  "tag%s%s%s; check the name and the tag", s->ref->registry,
					  shown, reason[0] ? " (" : "", reason, reason[0] ? ")" : "");
		if (st == 401 && !strncmp(s->authz, "Authorization: Basic ", 21))
			return berth_fail(err, 0, "registry %s refused the credentials of %s for %s%s%s%s; "
					  "check them with `berth login %s`", s->ref->registry, s->user,
					  shown, reason[0] ? " (" : "", reason, reason[0] ? ")" : "",
					  s->ref->registry);
		if (st == 401 || st == 403)
			return s->have_creds
				       ? berth_fail(err, 0, "registry %s refused %s access to %s (%ld%s%s); "
						    "check the name and your rights there", s->ref->registry,
						    s->user, shown, st, reason[0] ? ": " : "", reason)
				       : no_creds_error(s, shown, reason, err);
		if (st == 429)
			return berth_fail(err, 0, "registry %s is rate limiting (429%s%s)%s%.0u%s; wait, "
					  "or use credentials or a mirror", s->ref->registry,
					  reason[0] ? ": " : "", reason, after ? ", retry after " : "",
					  after, after ? " s" : "");
		return berth_fail(err, 0, "registry %s answered %ld for %s%s%s%s", s->ref->registry, st,
				  shown, reason[0] ? " (" : "", reason, reason[0] ? ")" : "");
	}
	berth_sha256_hex(r.body ? r.body : "", r.len, got_digest);
	if (digest && strcmp(digest, got_digest) != 0) {
		reg_response_free(&r);
		return berth_fail(err, 0, "registry %s sent a manifest for %s whose digest is %s, not "
				  "%s; nothing was kept: tell the registry's operator",
				  s->ref->registry, shown, got_digest, digest);
	}
	*body = r.body;
	*len = r.len;
	return 0;
}

/* ---- the layout folder ---------------------------------------------------- */

struct layout {
	int dir_fd;   /* LAYOUT */
	int blobs_fd; /* LAYOUT/blobs/sha256 */
	char blobs[4200];
};

static int layout_open(struct layout *l, const char *dir, struct berth_err *err)
{
	l->dir_fd = l->blobs_fd = -1;
	snprintf(l->blobs, sizeof(l->blobs), "%s/blobs/sha256", dir);
	l->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dir_fd < 0)
		return berth_fail(err, errno, "cannot open %s", dir);
	mkdirat(l->dir_fd, "blobs", 0700);
	mkdirat(l->dir_fd, "blobs/sha256", 0700);
	mkdirat(l->dir_fd, "locks", 0700);
	l->blobs_fd = openat(l->dir_fd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (l->blobs_fd < 0)
		return berth_fail(err, errno, "cannot open %s", l->blobs);
	return 0;
}

static void layout_close(struct layout *l)
{
	if (l->blobs_fd >= 0)
		close(l->blobs_fd);
	if (l->dir_fd >= 0)
		close(l->dir_fd);
}

static bool blob_present(struct layout *l, const char *digest)
{
	struct stat st;

	return fstatat(l->blobs_fd, digest + 7, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* A small blob already in the layout (verified when it was stored; checked
 * again here, it is cheap). */
static int blob_read_small(struct layout *l, const char *digest, char **body, size_t *len)
{
	_cleanup_close_ int fd = openat(l->blobs_fd, digest + 7, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	char seen[72];

	*body = NULL;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > REG_BODY_MAX)
		return -1;
	if (!(*body = malloc((size_t)st.st_size + 1)))
		return -1;
	if (berth_read_all(fd, *body, (size_t)st.st_size) < 0)
		goto bad;
	(*body)[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	berth_sha256_hex(*body, *len, seen);
	if (strcmp(seen, digest) == 0)
		return 0;
bad:
	free(*body);
	*body = NULL;
	return -1;
}

static int blob_store_small(struct layout *l, const char *digest, const char *body, size_t len,
			    struct berth_err *err)
{
	char tmp[96];

	snprintf(tmp, sizeof(tmp), "%s.part-%d", digest + 7, (int)getpid());
	_cleanup_close_ int fd = openat(l->blobs_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
					O_CLOEXEC, 0600);
	if (fd < 0 || berth_write_all(fd, body, len) < 0 ||
	    renameat(l->blobs_fd, tmp, l->blobs_fd, digest + 7) < 0) {
		int e = errno;
		unlinkat(l->blobs_fd, tmp, 0);
		return berth_fail(err, e, "cannot store blob %s in %s (check the free space there)",
				  digest, l->blobs);
	}
	return 0;
}

/* Manifest or index `digest` (or the tag), from the layout when there,
 * else from the registry, stored. */
static int get_manifest(struct reg_session *s, struct layout *l, const char *which,
			const char *digest, char **body, size_t *len, char got[72],
			struct berth_err *err)
{
	if (digest && blob_read_small(l, digest, body, len) == 0) {
		snprintf(got, 72, "%s", digest);
		return 0;
	}
	if (fetch_manifest(s, which, digest, body, len, got, err) < 0)
		return -1;
	if (blob_store_small(l, got, *body, *len, err) < 0) {
		free(*body);
		*body = NULL;
		return -1;
	}
	return 0;
}


void berth_registry_platform(char *out, size_t len)
{
	struct utsname u;
	const char *arch = "amd64", *variant = "";

	if (uname(&u) == 0) {
		if (!strcmp(u.machine, "aarch64") || !strcmp(u.machine, "arm64")) {
			arch = "arm64";
			variant = "/v8";
		} else if (!strncmp(u.machine, "armv7", 5)) {
			arch = "arm";
			variant = "/v7";
		} else if (!strcmp(u.machine, "ppc64le") || !strcmp(u.machine, "s390x") ||
			   !strcmp(u.machine, "riscv64")) {
			arch = u.machine;
		} else if (!strcmp(u.machine, "i686") || !strcmp(u.machine, "i386")) {
			arch = "386";
		}
	}
	snprintf(out, len, "linux/%s%s", arch, variant);
}

static bool is_index(struct json_object *root, const char *content_type)
{
	const char *mt = bj_member_string(root, "mediaType");
	struct json_object *m;

	if (!mt)
		mt = content_type;
	if (mt && (strstr(mt, "manifest.list") || strstr(mt, "image.index")))
		return true;
	return json_object_object_get_ex(root, "manifests", &m) &&
	       !json_object_object_get_ex(root, "layers", &m);
}

/* The entry of an index for this node: os and architecture must match; a
 * variant, when both name one, too. */
static int pick_platform(struct reg_session *s, struct json_object *index, char digest[72],
			 struct berth_err *err)
{
	char want[64], seen[512] = "";
	struct json_object *list;
	size_t used = 0;

	berth_registry_platform(want, sizeof(want));
	char *want_variant = strchr(want + 6, '/');
	size_t arch_len = want_variant ? (size_t)(want_variant - want - 6) : strlen(want + 6);
	if (!json_object_object_get_ex(index, "manifests", &list) ||
	    !json_object_is_type(list, json_type_array))
		return berth_fail(err, 0, "the index of %s lists no manifests", s->ref->repository);
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *m = json_object_array_get_idx(list, i), *p;
		const char *d = bj_member_string(m, "digest");
		if (!json_object_object_get_ex(m, "platform", &p))
			continue;
		const char *os = bj_member_string(p, "os"), *arch = bj_member_string(p, "architecture");
		const char *variant = bj_member_string(p, "variant");
		if (!os || !arch)
			continue;
		if (used < sizeof(seen))
			used += (size_t)snprintf(seen + used, sizeof(seen) - used, "%s%s/%s%s%s",
						 used ? ", " : "", os, arch, variant ? "/" : "",
						 variant ? variant : "");
		if (strcmp(os, "linux") != 0 || strlen(arch) != arch_len ||
		    memcmp(arch, want + 6, arch_len) != 0)
			continue;
		if (variant && want_variant && strcmp(variant, want_variant + 1) != 0)
			continue;
		if (!berth_digest_valid(d))
			return berth_fail(err, 0, "the index of %s names a manifest with a digest berth "
					  "cannot verify (%s)", s->ref->repository, d ? d : "none");
		snprintf(digest, 72, "%s", d);
		return 0;
	}
	char shown[600];
	ref_text(s->ref, shown, sizeof(shown));
	return berth_fail(err, 0, "image %s has no manifest for this node's platform %s (it has: "
			  "%s); use an image built for %s", shown, want, seen[0] ? seen : "none", want);
}

/* ---- blobs ---------------------------------------------------------------- */

struct blob_job {
	char digest[72];
	uint64_t size;
	uint64_t done;  /* bytes so far, for progress */
	bool fetched;
};

struct blob_pool {
	struct reg_session *s;
	struct layout *l;
	struct blob_job *jobs;
	size_t n, next;
	uint64_t total;
	int failed;
	struct berth_err err;
	pthread_mutex_t lock;
	struct timespec last_progress;
	bool finished_shown;    /* the 100% line is said once */
};

struct blob_progress {
	struct blob_pool *pool;
	struct blob_job *job;
};

static void pool_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct blob_progress *bp = ctx;
	struct blob_pool *p = bp->pool;
	struct timespec now;
	uint64_t sum = 0;

	(void)total;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&p->lock);
	bp->job->done = done;
	for (size_t i = 0; i < p->n; i++)
		sum += p->jobs[i].done;
	bool all = sum == p->total;
	bool due = (now.tv_sec > p->last_progress.tv_sec && !all) || (all && !p->finished_shown);
	if (due)
		p->last_progress = now;
	if (all)
		p->finished_shown = true;
	pthread_mutex_unlock(&p->lock);
	if (due)
		p->s->opts->progress(p->s->opts->progress_ctx, sum, p->total);
}

/* Remove what killed downloads of this blob left: we hold its lock. */
static void sweep_partial_blob(struct layout *l, const char *hex)
{
	DIR *d = fdopendir(dup(l->blobs_fd));
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, hex, 64) && !strncmp(de->d_name + 64, ".part-", 6))
			unlinkat(l->blobs_fd, de->d_name, 0);
	closedir(d);
}

static int download_blob(struct blob_pool *p, struct blob_job *job, struct berth_err *err)
{
	struct reg_session *s = p->s;
	char url[1024], lock[96], authz[REG_HEADER_MAX], what[800], shown[600];
	struct berth_fetch_opts o;
	struct berth_fetch_result res;
	struct blob_progress bp = {p, job};

	snprintf(lock, sizeof(lock), "locks/blob-%s", job->digest + 7);
	_cleanup_close_ int fd = openat(p->l->dir_fd, lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0)
		return berth_fail(err, errno, "cannot lock %s", lock);
	if (blob_present(p->l, job->digest))
		return 0; /* another job on this node fetched it meanwhile */
	sweep_partial_blob(p->l, job->digest + 7);
	ref_text(s->ref, shown, sizeof(shown));
	snprintf(what, sizeof(what), "blob %.19s of %s", job->digest, shown);
	snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", s->base, s->ref->repository, job->digest);
	for (int attempt = 0;; attempt++) {
		reg_current_authz(s, authz, sizeof(authz));
		const char *hdrs[] = {authz[0] ? authz : NULL, NULL};
		berth_fetch_opts_init(&o);
		if (s->opts->timeout_s)
			o.timeout_s = s->opts->timeout_s;
		/* The descriptor says how big it is: more is refused. */
		o.max_bytes = job->size ? job->size : s->opts->max_bytes;
		o.headers = hdrs;
		o.ca_file = s->ca_file[0] ? s->ca_file : NULL;
		o.dest_name = job->digest + 7;
		o.expect_digest = job->digest;
		o.what = what;
		if (s->opts->progress) {
			o.progress = pool_progress;
			o.progress_ctx = &bp;
		}
		int rc = berth_fetch(url, p->l->blobs, &o, &res, err);
		reg_wipe(authz, sizeof(authz));
		if (rc == 0) {
			job->fetched = true;
			return 0;
		}
		if (res.http_status != 401 || attempt > 0)
			return -1;
		/* The token expired mid-pull: get the challenge again from the
		 * (small) manifest, not from the blob. */
		struct reg_response r;
		char path[600];
		snprintf(path, sizeof(path), "%s/manifests/%s", s->ref->repository,
			 s->ref->digest[0] ? s->ref->digest : s->ref->tag);
		pthread_mutex_lock(&s->lock);
		s->authz[0] = '\0';
		pthread_mutex_unlock(&s->lock);
		if (reg_get(s, path, manifest_accept, what, &r, err) < 0)
			return -1;
		reg_response_free(&r);
	}
}

static void *pool_worker(void *arg)
{
	struct blob_pool *p = arg;

	for (;;) {
		struct berth_err err = {0};
		pthread_mutex_lock(&p->lock);
		if (p->failed || p->next == p->n) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		struct blob_job *job = &p->jobs[p->next++];
		pthread_mutex_unlock(&p->lock);
		if (download_blob(p, job, &err) < 0) {
			pthread_mutex_lock(&p->lock);
			if (!p->failed++)
				p->err = err;
			pthread_mutex_unlock(&p->lock);
		}
	}
}

static int fetch_blobs(struct reg_session *s, struct layout *l, struct blob_job *jobs, size_t n,
		       struct berth_registry_pull *res, struct berth_err *err)
{
	struct blob_pool p = {.s = s, .l = l, .jobs = jobs, .n = n};
	unsigned want = s->opts->parallel ? s->opts->parallel : BERTH_REGISTRY_DEFAULT_PARALLEL;
	pthread_t threads[REG_PARALLEL_MAX];
	size_t started = 0;

	if (want > REG_PARALLEL_MAX)
		want = REG_PARALLEL_MAX;
	for (size_t i = 0; i < n; i++)
		p.total += jobs[i].size;
	pthread_mutex_init(&p.lock, NULL);
	for (; started < want && started < n; started++)
		if (pthread_create(&threads[started], NULL, pool_worker, &p) != 0)
			break;
	if (started == 0)
		pool_worker(&p); /* no thread: do it here */
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&p.lock);
	for (size_t i = 0; i < n; i++)
		if (jobs[i].fetched) {
			res->blobs_fetched++;
			res->bytes_fetched += jobs[i].size;
		}
	if (p.failed) {
		*err = p.err;
		return -1;
	}
	return 0;
}

static int add_blob(struct blob_job *jobs, size_t *n, struct json_object *desc,
		    const char *what, struct berth_err *err)
{
	const char *d = bj_member_string(desc, "digest");
	struct json_object *size;

	if (!berth_digest_valid(d))
		return berth_fail(err, 0, "the manifest names a %s with a digest berth cannot verify "
				  "(%s); berth takes sha256 digests only", what, d ? d : "none");
	snprintf(jobs[*n].digest, sizeof(jobs[*n].digest), "%s", d);
	jobs[*n].size = json_object_object_get_ex(desc, "size", &size)
				? (uint64_t)json_object_get_int64(size) : 0;
	(*n)++;
	return 0;
}

/* Config and layers the manifest names that the layout lacks. */
static int missing_blobs(struct layout *l, struct json_object *manifest, struct blob_job **jobs,
			 size_t *n, unsigned *present, struct berth_err *err)
{
	struct json_object *config, *layers;
	size_t cap, all = 0;

	*n = 0;
	if (!json_object_object_get_ex(manifest, "config", &config) ||
	    !json_object_object_get_ex(manifest, "layers", &layers) ||
	    !json_object_is_type(layers, json_type_array))
		return berth_fail(err, 0, "the manifest has no config or no layers: it is not an "
				  "image manifest (schema 1 images are too old: push the image again "
				  "with a current docker)");
	cap = json_object_array_length(layers) + 1;
	if (!(*jobs = calloc(cap, sizeof(**jobs))))
		return berth_fail(err, ENOMEM, "blob list");
	if (add_blob(*jobs, &all, config, "config", err) < 0)
		return -1;
	for (size_t i = 0; i < cap - 1; i++)
		if (add_blob(*jobs, &all, json_object_array_get_idx(layers, i), "layer", err) < 0)
			return -1;
	/* Keep the ones to fetch, each once (a layer may repeat). */
	for (size_t i = 0; i < all; i++) {
		bool dup = false;
		for (size_t j = 0; j < *n; j++)
			dup = dup || !strcmp((*jobs)[j].digest, (*jobs)[i].digest);
		if (dup)
			continue;
		if (blob_present(l, (*jobs)[i].digest)) {
			(*present)++;
			continue;
		}
		(*jobs)[(*n)++] = (*jobs)[i];
	}
	return 0;
}

/* ---- the entry points ----------------------------------------------------- */

static int resolve_at(const struct berth_registry_opts *opts, const struct berth_imageref *ref,
		      char digest[72], struct berth_err *err)
{
	struct reg_session s;
	char *body = NULL;
	size_t len = 0;

	if (ref->digest[0]) {
		snprintf(digest, 72, "%s", ref->digest);
		return 0;
	}
	int rc = reg_session_init(&s, opts, ref, err);
	if (rc == 0)
		rc = fetch_manifest(&s, ref->tag, NULL, &body, &len, digest, err);
	free(body);
	reg_session_end(&s);
	return rc;
}

static int pull_manifests(struct reg_session *s, struct layout *l, const struct berth_imageref *ref,
			  struct berth_registry_pull *res, struct json_object **manifest,
			  struct berth_err *err)
{
	_cleanup_free_ char *body = NULL;
	size_t len = 0;

	if (get_manifest(s, l, ref->digest[0] ? ref->digest : ref->tag,
			 ref->digest[0] ? ref->digest : NULL, &body, &len, res->pinned, err) < 0)
		return -1;
	struct json_object *root = json_tokener_parse(body);
	if (!root)
		return berth_fail(err, 0, "the manifest of %s from %s is not JSON", ref->repository,
				  ref->registry);
	snprintf(res->manifest, sizeof(res->manifest), "%s", res->pinned);
	if (is_index(root, NULL)) {
		char chosen[72];
		_cleanup_free_ char *mbody = NULL;
		int rc = pick_platform(s, root, chosen, err);
		json_object_put(root);
		root = NULL;
		if (rc < 0 || get_manifest(s, l, chosen, chosen, &mbody, &len, res->manifest, err) < 0)
			return -1;
		root = json_tokener_parse(mbody);
		if (!root || is_index(root, NULL)) {
			json_object_put(root);
			return berth_fail(err, 0, "the platform manifest %s of %s is not an image "
					  "manifest", chosen, ref->repository);
		}
	}
	*manifest = root;
	return 0;
}

static int pull_at(const struct berth_registry_opts *opts, const char *layout_dir,
		   const struct berth_imageref *ref, struct berth_registry_pull *res,
		   struct berth_err *err)
{
	struct reg_session s;
	struct layout l;
	struct json_object *manifest = NULL;
	struct blob_job *jobs = NULL;
	size_t n = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = reg_session_init(&s, opts, ref, err);
	if (rc == 0)
		rc = layout_open(&l, layout_dir, err);
	else
		l.dir_fd = l.blobs_fd = -1;
	if (rc == 0)
		rc = pull_manifests(&s, &l, ref, res, &manifest, err);
	if (rc == 0)
		rc = missing_blobs(&l, manifest, &jobs, &n, &res->blobs_present, err);
	if (rc == 0 && n > 0)
		rc = fetch_blobs(&s, &l, jobs, n, res, err);
	free(jobs);
	json_object_put(manifest);
	layout_close(&l);
	reg_session_end(&s);
	return rc;
}

/* ---- mirrors -------------------------------------------------------------- */

/* The n-th place to ask for ref: the site's mirrors first (Docker Hub
 * images only, as Docker does), then the registry itself.  False when
 * there is none left. */
static bool candidate(const struct berth_registry_opts *opts, const struct berth_imageref *ref,
		      unsigned n, struct berth_imageref *out)
{
	const char *p = opts->mirrors;

	*out = *ref;
	if (strcmp(ref->registry, BERTH_DOCKER_HUB) != 0 || !p)
		return n == 0;
	for (;;) {
		p += strspn(p, ", ");
		if (!*p)
			return n == 0;
		size_t len = strcspn(p, ", ");
		if (n-- == 0) {
			snprintf(out->registry, sizeof(out->registry), "%.*s", (int)len, p);
			return true;
		}
		p += len;
	}
}

/* A mirror's failure is not the answer while another place is left; the
 * registry's own is.  Digests make a mirror's bytes as good as the
 * registry's: every blob is verified. */
int berth_registry_resolve(const struct berth_registry_opts *opts,
			   const struct berth_imageref *ref, char digest[72],
			   struct berth_err *err)
{
	struct berth_imageref at;
	int rc = -1;

	for (unsigned n = 0; candidate(opts, ref, n, &at); n++)
		if ((rc = resolve_at(opts, &at, digest, err)) == 0)
			return 0;
	return rc;
}

int berth_registry_pull(const struct berth_registry_opts *opts, const char *layout_dir,
			const struct berth_imageref *ref, struct berth_registry_pull *res,
			struct berth_err *err)
{
	struct berth_imageref at;
	int rc = -1;

	for (unsigned n = 0; candidate(opts, ref, n, &at); n++)
		if ((rc = pull_at(opts, layout_dir, &at, res, err)) == 0)
			return 0;
	return rc;
}

/* ---- login ---------------------------------------------------------------- */

static void netrc_quote(FILE *f, const char *v)
{
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('"', f);
}

int berth_registry_save_login(const char *home, const char *registry, const char *user,
			      const char *password, struct berth_err *err)
{
	char dir[4096], path[4200], tmp[4300], machine[300], word[REG_CRED_MAX];
	_cleanup_free_ char *old = NULL;

	home = reg_home(home);
	if (!home)
		return berth_fail(err, 0, "cannot find your home folder");
	for (const char *p = registry; *p; p++)
		if (isspace((unsigned char)*p) || *p == '"')
			return berth_fail(err, EINVAL, "bad registry name %s", registry);
	snprintf(dir, sizeof(dir), "%s/.config", home);
	mkdir(dir, 0700);
	snprintf(dir, sizeof(dir), "%s/.config/berth", home);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s", dir);
	snprintf(path, sizeof(path), "%s/credentials", dir);
	if (reg_read_private(path, true, &old, err) < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return berth_fail(err, errno, "cannot write %s", tmp);
	}
	/* Keep other machines' entries, one per line, as they were parsed. */
	const char *p = old;
	bool keep = false;
	while (p && netrc_word(&p, word, sizeof(word))) {
		if (!strcmp(word, "machine") && netrc_word(&p, machine, sizeof(machine))) {
			keep = strcasecmp(machine, registry) != 0;
			if (keep)
				fprintf(f, "machine %s", machine);
		} else if (keep && (!strcmp(word, "login") || !strcmp(word, "password"))) {
			fprintf(f, " %s ", word);
			if (netrc_word(&p, word, sizeof(word)))
				netrc_quote(f, word);
		}
		if (keep && (!*p || *p == '\n'))
			fputc('\n', f);
	}
	fprintf(f, "machine %s login ", registry);
	netrc_quote(f, user);
	fputs(" password ", f);
	netrc_quote(f, password);
	fputc('\n', f);
	if (old)
		reg_wipe(old, strlen(old));
	reg_wipe(word, sizeof(word));
	if (fflush(f) != 0 || fsync(fileno(f)) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return berth_fail(err, e, "cannot write %s", path);
	}
	return 0;
}

int berth_registry_check_login(const struct berth_registry_opts *opts, const char *registry,
			       struct berth_err *err)
{
	struct berth_imageref ref = {0};
	struct reg_session s;
	struct reg_response r;
	char reason[256];

	snprintf(ref.registry, sizeof(ref.registry), "%s", registry);
	int rc = reg_session_init(&s, opts, &ref, err);
	if (rc == 0 && !s.have_creds)
		rc = berth_fail(err, 0, "no credentials for %s in ~/" BERTH_CREDENTIALS_FILE, registry);
	if (rc == 0)
		rc = reg_get(&s, "", NULL, "a login check", &r, err);
	if (rc == 0) {
		if (r.status != 200) {
			reg_reason(&r, reason, sizeof(reason));
			rc = berth_fail(err, 0, "registry %s refused the login of %s (%ld%s%s)", registry,
					s.user, r.status, reason[0] ? ": " : "", reason);
		}
		reg_response_free(&r);
	}
	reg_session_end(&s);
	return rc;
}
