/* berth: a growing string that remembers running out of memory (see
 * strbuf.h). */
#include "executor/base/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void berth_sb_addn(struct berth_sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (!b->p || b->len + n + 1 > b->cap) { /* no buffer means cap 0 */
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void berth_sb_add(struct berth_sb *b, const char *s)
{
	berth_sb_addn(b, s, strlen(s));
}

void berth_sb_addc(struct berth_sb *b, char c)
{
	berth_sb_addn(b, &c, 1);
}

void berth_sb_printf(struct berth_sb *b, const char *fmt, ...)
{
	char buf[64];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		b->oom = true;
	else
		berth_sb_addn(b, buf, (size_t)n);
}

/* The string, or NULL (and freed) when memory ran out. */
char *berth_sb_take(struct berth_sb *b)
{
	if (b->oom || (!b->p && (berth_sb_addn(b, "", 0), b->oom))) {
		free(b->p);
		*b = (struct berth_sb){0};
		return NULL;
	}
	char *p = b->p;
	*b = (struct berth_sb){0};
	return p;
}

void berth_sb_free(struct berth_sb *b)
{
	free(b->p);
	*b = (struct berth_sb){0};
}
