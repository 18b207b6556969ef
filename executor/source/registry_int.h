/* berth: what the pieces of the registry client share, internal to
 * executor/source (callers use registry.h): the session and the answer in
 * memory, and the functions one piece calls in another:
 *   registry.c       manifests, the layout folder, blobs, the entry points
 *   registry_http.c  HTTP in memory, authentication, the session
 *   credentials.c    the user's credential files, `berth login`'s writing
 * Calls go registry.c -> registry_http.c -> credentials.c, never back. */
#ifndef BERTH_REGISTRY_INT_H
#define BERTH_REGISTRY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "executor/base/dl/curl_lazy.h"
#include "executor/source/registry.h"

#define REG_BODY_MAX (4u << 20)  /* manifests, indexes, token answers */
#define REG_CRED_MAX 512
#define REG_HEADER_MAX 8192      /* an Authorization line */

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

/* ---- registry_http.c ------------------------------------------------------ */

void reg_response_free(struct reg_response *r);

/* The registry's own words: errors[0].message (or .code). */
void reg_reason(const struct reg_response *r, char *out, size_t cap);

/* "registry X wants credentials for WHAT ...; store yours with berth login". */
int no_creds_error(struct reg_session *s, const char *what, const char *reason,
		   struct berth_err *err);

/* The session's Authorization line now ("" once it expired). */
void reg_current_authz(struct reg_session *s, char *out, size_t cap);

/* GET BASE/v2/PATH with the current authorization; on a 401, authenticate
 * once and ask again. */
int reg_get(struct reg_session *s, const char *path, const char *accept,
	    const char *what, struct reg_response *r, struct berth_err *err);

/* A session for ref at its registry, with the user's credentials loaded. */
int reg_session_init(struct reg_session *s, const struct berth_registry_opts *opts,
		     const struct berth_imageref *ref, struct berth_err *err);
void reg_session_end(struct reg_session *s);

/* ---- credentials.c -------------------------------------------------------- */

/* Zero a secret in a way the compiler keeps. */
void reg_wipe(void *p, size_t n);

/* The user's credentials for s->ref->registry, when the files hold some. */
int reg_load_creds(struct reg_session *s, struct berth_err *err);

#endif
