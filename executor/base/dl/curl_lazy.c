#define _GNU_SOURCE
#include "executor/base/dl/curl_lazy.h"
#include "executor/base/dl/lazy.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct berth_curl_fns berth_curl;

#define LIBCURL "libcurl.so.4"

static char load_error[512];

static void load_once(void)
{
	static const struct berth_lazy_sym symbols[] = {
		{"curl_easy_init", offsetof(struct berth_curl_fns, easy_init)},
		{"curl_easy_setopt", offsetof(struct berth_curl_fns, easy_setopt)},
		{"curl_easy_getinfo", offsetof(struct berth_curl_fns, easy_getinfo)},
		{"curl_easy_perform", offsetof(struct berth_curl_fns, easy_perform)},
		{"curl_easy_cleanup", offsetof(struct berth_curl_fns, easy_cleanup)},
		{"curl_easy_reset", offsetof(struct berth_curl_fns, easy_reset)},
		{"curl_easy_strerror", offsetof(struct berth_curl_fns, easy_strerror)},
		{"curl_easy_escape", offsetof(struct berth_curl_fns, easy_escape)},
		{"curl_global_init", offsetof(struct berth_curl_fns, global_init)},
		{"curl_slist_append", offsetof(struct berth_curl_fns, slist_append)},
		{"curl_slist_free_all", offsetof(struct berth_curl_fns, slist_free_all)},
		{"curl_free", offsetof(struct berth_curl_fns, free)},
	};
	struct berth_curl_fns fns;

	if (berth_lazy_fill(LIBCURL, symbols, sizeof(symbols) / sizeof(*symbols), &fns, load_error,
			    sizeof(load_error)) < 0)
		return;
	berth_curl = fns;
}

int berth_curl_load(struct berth_err *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, load_once);
	if (!berth_curl.easy_init)
		return berth_fail(err, 0, "cannot load %s (%s); install libcurl4", LIBCURL,
				  load_error[0] ? load_error : "unknown error");
	return 0;
}
