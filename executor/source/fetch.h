/* berth: download an image archive by URL into the user's cache folder.
 *
 *   dir/<hex>.tar    the body, hex = sha256 of the URL string
 *   dir/<hex>.meta   "url" (masked: berth_url_masked), "url-sha256" (hex),
 *                    "etag", "last-modified", "sha256", "size" lines
 *   dir/<hex>.part-XXXXXX   a download in progress (O_CREAT|O_EXCL|O_NOFOLLOW)
 *
 * Schemes: http, https and file only, redirects (at most 5) to http and
 * https only.  A body is written to a temporary file, hashed while it is
 * written and renamed over <hex>.tar only when it is complete; on failure the
 * temporary file is removed, so no half file ever carries the final name.
 *
 * Timeouts: opts->timeout_s (FetchTimeout) bounds the connect phase and is
 * the low-speed window: a transfer that moves less than 1 KiB/s for
 * timeout_s seconds is aborted.  There is no total time limit, so a big
 * image on a slow but live link still completes.
 *
 * Retries: connection failures, cut or stalled transfers and 5xx (also 408
 * and 429) answers are retried opts->retries times with a doubling pause;
 * a partial body is resumed with a Range request (re-hashing the prefix
 * already on disk first) and restarted from zero when the server ignores the
 * Range.  Other 4xx answers, bad URLs, the size cap and local errors are not
 * retried.
 *
 * Conditional requests: when <hex>.tar and a matching <hex>.meta with an
 * ETag or Last-Modified are there, the request carries If-None-Match /
 * If-Modified-Since; a 304 answer costs that one request, leaves the file
 * alone and sets res->not_modified.
 *
 * The caller is expected to serialise fetches of one URL (the cache lock);
 * concurrent fetches stay safe (each has its own temporary file, renames are
 * atomic) but may do the work twice.
 *
 * Secrets: a URL's userinfo and query (a password, a pre-signed signature)
 * appear in no message and no file: messages name the URL masked
 * (berth_url_masked), libcurl's error text and a server's reason phrase are
 * scrubbed of URLs (a redirect's Location), and .meta keeps the hash.  Temporary files of a killed process
 * (<hex>.part-*) are left for the cache's garbage collection. */
#ifndef BERTH_FETCH_H
#define BERTH_FETCH_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/error.h"

#define BERTH_FETCH_DEFAULT_TIMEOUT 300  /* seconds, when timeout_s is 0 */
#define BERTH_FETCH_DEFAULT_RETRIES 3
#define BERTH_FETCH_DEFAULT_DELAY_MS 1000 /* first pause between attempts */

struct berth_fetch_opts {
	unsigned timeout_s;      /* FetchTimeout: connect limit and low-speed window; 0 = default */
	unsigned retries;        /* extra attempts after a transient failure */
	unsigned retry_delay_ms; /* first pause between attempts, doubled each time (max 30 s); 0 = default */
	uint64_t max_bytes;      /* size cap (CacheMaxSize), 0 = none */
	/* May be NULL.  Called at most about once per second while the body
	 * moves, and once more when it is complete.  total is 0 when unknown. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	/* Registry blobs (all NULL for an archive URL): */
	const char *const *headers; /* extra "Name: value" request headers, NULL-terminated */
	const char *ca_file;        /* CA bundle for https, NULL = the system's */
	const char *dest_name;      /* final name in dir instead of <hex>.tar; no .meta */
	const char *expect_digest;  /* "sha256:<hex>": a body that hashes otherwise is not kept */
	const char *what;           /* how messages name it, NULL = the URL */
	/* An archive URL pinned at submission (berth_fetch_pin): the body must
	 * still be what the validator named, else 412 and an error.  A cached
	 * copy with that very ETag is used without a request. */
	const char *pin;            /* "etag:<ETag>" or "lm:<Last-Modified>", NULL = none */
};

struct berth_fetch_result {
	char path[PATH_MAX]; /* dir/<hex>.tar */
	char sha256[72];     /* "sha256:" + 64 hex digits, of the whole body */
	bool not_modified;   /* the server answered 304; the file was kept */
	uint64_t bytes;      /* size of the file */
	long http_status;    /* on failure: the last HTTP status, 0 = none */
	unsigned retry_after; /* on failure: a 429/503's Retry-After seconds, 0 = none */
};

/* What the server says identifies `url`'s current body (a HEAD request):
 * "etag:<strong ETag>", else "lm:<Last-Modified>", else "" (nothing to pin
 * by).  For the submitting side, so every node fetches those same bytes. */
int berth_fetch_pin(const char *url, const struct berth_fetch_opts *opts, char *pin,
		    size_t cap, struct berth_err *err);

/* Defaults: timeout 300 s, 3 retries, 1 s first pause, no cap, no progress. */
void berth_fetch_opts_init(struct berth_fetch_opts *opts);

/* Fetch `url` into `dir` (an existing folder the caller owns).  opts may be
 * NULL for the defaults.  Returns 0 and fills *res, or -1 and fills *err. */
int berth_fetch(const char *url, const char *dir, const struct berth_fetch_opts *opts,
		struct berth_fetch_result *res, struct berth_err *err);

#endif
