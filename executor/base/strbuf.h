/* berth: a growing string that remembers running out of memory, so that
 * a builder appends without checking each call and asks once, at the end
 * (berth_sb_take). */
#ifndef BERTH_STRBUF_H
#define BERTH_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/* Zero-initialised, it is the empty string. */
struct berth_sb {
	char *p;
	size_t len, cap;
	bool oom;
};

void berth_sb_addn(struct berth_sb *b, const char *s, size_t n);
void berth_sb_add(struct berth_sb *b, const char *s);
void berth_sb_addc(struct berth_sb *b, char c);
/* For short pieces (numbers, escapes): one that formats to 64 bytes or
 * more counts as running out of memory. */
void berth_sb_printf(struct berth_sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The string, or NULL (and freed) when memory ran out. */
char *berth_sb_take(struct berth_sb *b);
void berth_sb_free(struct berth_sb *b);

#endif
