/* berth: growing NULL-terminated string vectors (argv, environments). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor/base/strv.h"

void berth_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

int berth_strv_add(struct berth_strv *sv, const char *s, struct berth_err *err)
{
	if (sv->n + 2 > sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 32;
		char **bigger = realloc(sv->v, cap * sizeof(char *));
		if (!bigger)
			return berth_fail(err, ENOMEM, "argv");
		sv->v = bigger;
		sv->cap = cap;
	}
	if (!(sv->v[sv->n] = strdup(s)))
		return berth_fail(err, ENOMEM, "argv");
	sv->v[++sv->n] = NULL;
	return 0;
}

int berth_strv_addf(struct berth_strv *sv, struct berth_err *err, const char *fmt, ...)
{
	_cleanup_free_ char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		s = NULL;
		return berth_fail(err, ENOMEM, "argv");
	}
	return berth_strv_add(sv, s, err);
}


const char *berth_strv_getenv(char *const *env, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], name, len) && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}
