/* berth: the registry client's HTTP (see registry.h): answers held in
 * memory, the registry's error words, authentication (Bearer tokens from
 * the WWW-Authenticate challenge, Basic) and the session that carries it.
 * Blobs are not fetched here but by berth_fetch (registry.c). */
#define _GNU_SOURCE
#include "executor/source/registry_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include "executor/base/dl/crypto_lazy.h"

#include "executor/base/dl/curl_lazy.h"
#include "executor/source/fetch.h"

#ifndef BERTH_VERSION
#define BERTH_VERSION "dev"
#endif

#define REG_TOKEN_LIFE_MAX (366L * 24 * 3600) /* a longer expires_in counts as this */

void reg_response_free(struct reg_response *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* ---- small helpers -------------------------------------------------------- */

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
void reg_reason(const struct reg_response *r, char *out, size_t cap)
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

int no_creds_error(struct reg_session *s, const char *what, const char *reason,
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

void reg_current_authz(struct reg_session *s, char *out, size_t cap)
{
	pthread_mutex_lock(&s->lock);
	if (s->authz_expires && time(NULL) >= s->authz_expires)
		s->authz[0] = '\0'; /* expired: the next 401 gets a new one */
	snprintf(out, cap, "%s", s->authz);
	pthread_mutex_unlock(&s->lock);
}

/* GET BASE/v2/PATH with the current authorization; on a 401, authenticate
 * once and ask again. */
int reg_get(struct reg_session *s, const char *path, const char *accept,
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

int reg_session_init(struct reg_session *s, const struct berth_registry_opts *opts,
		     const struct berth_imageref *ref, struct berth_err *err)
{
	const char *certs = opts->certs_dir ? opts->certs_dir : "/etc/docker/certs.d";
	bool plain = reg_in_list(opts->insecure, ref->registry);
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->opts = opts;
	s->ref = ref;
	pthread_mutex_init(&s->lock, NULL);
	if (berth_curl_load(err) < 0 || berth_crypto_load(err) < 0)
		return -1;
	snprintf(s->base, sizeof(s->base), "%s://%s", plain ? "http" : "https", ref->registry);
	snprintf(s->ca_file, sizeof(s->ca_file), "%s/%s/ca.crt", certs, ref->registry);
	if (plain || stat(s->ca_file, &st) < 0)
		s->ca_file[0] = '\0';
	return reg_load_creds(s, err);
}

void reg_session_end(struct reg_session *s)
{
	reg_wipe(s->password, sizeof(s->password));
	reg_wipe(s->authz, sizeof(s->authz));
	pthread_mutex_destroy(&s->lock);
}
