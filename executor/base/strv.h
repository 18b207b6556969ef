/* berth: growing NULL-terminated string vectors (argv, environments). */
#ifndef BERTH_STRV_H
#define BERTH_STRV_H

#include <stddef.h>

#include "conf/error.h"

/* A growing NULL-terminated argv/env vector. */
struct berth_strv {
	char **v;
	size_t n, cap;
};
int berth_strv_add(struct berth_strv *sv, const char *s, struct berth_err *err);
int berth_strv_addf(struct berth_strv *sv, struct berth_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Free a NULL-terminated vector and its strings (NULL is fine). */
void berth_strv_free(char **v);

/* The value of NAME in a NULL-terminated NAME=VALUE vector (env may be
 * NULL), or NULL. */
const char *berth_strv_getenv(char *const *env, const char *name);

#endif
