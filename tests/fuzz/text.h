/* The input of a fuzz target that serves several parsers: byte 0 picks the
 * parser, the rest is its text, NUL-terminated (malloc'ed; NULL when the
 * input is empty or longer than max).  The caller frees it. */
#ifndef BERTH_FUZZ_TEXT_H
#define BERTH_FUZZ_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline char *fuzz_text(const uint8_t *data, size_t size, size_t max, unsigned *pick)
{
	char *text = size >= 1 && size <= max ? malloc(size) : NULL;

	if (!text)
		return NULL;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	*pick = data[0];
	return text;
}

#endif
