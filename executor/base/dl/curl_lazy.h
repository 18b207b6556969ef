/* berth: libcurl, loaded when first needed.
 *
 * Most berth runs never touch the network: the per-task launcher and a warm
 * `berth run` only exec a runtime.  Linking libcurl would make every one of
 * them map its ~40 shared libraries (2.4 ms measured here, half of berth's
 * whole start-up), so the URL fetcher and the registry client
 * (executor/source/fetch.c, registry_http.c) reach libcurl through this
 * table instead, filled by dlopen() on first use.  Include this header
 * instead of <curl/curl.h>. */
#ifndef BERTH_CURL_LAZY_H
#define BERTH_CURL_LAZY_H

#define CURL_DISABLE_TYPECHECK /* the macros below replace the functions */
#include <curl/curl.h>

#include "conf/error.h"

struct berth_curl_fns {
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	CURLcode (*easy_perform)(CURL *);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	char *(*easy_escape)(CURL *, const char *, int);
	CURLcode (*global_init)(long);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	void (*free)(void *);
};

extern struct berth_curl_fns berth_curl;

/* Load libcurl (once).  Every entry point of fetch.c and of the registry
 * client calls this before any curl_* call. */
int berth_curl_load(struct berth_err *err);

#define curl_easy_init berth_curl.easy_init
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_easy_setopt berth_curl.easy_setopt
#define curl_easy_getinfo berth_curl.easy_getinfo
#define curl_easy_perform berth_curl.easy_perform
#define curl_easy_cleanup berth_curl.easy_cleanup
#define curl_easy_reset berth_curl.easy_reset
#define curl_easy_strerror berth_curl.easy_strerror
#define curl_easy_escape berth_curl.easy_escape
#define curl_global_init berth_curl.global_init
#define curl_slist_append berth_curl.slist_append
#define curl_slist_free_all berth_curl.slist_free_all
#define curl_free berth_curl.free

#endif
