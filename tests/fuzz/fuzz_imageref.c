/* libFuzzer target: registry references and URL pins, the text users and
 * the job's environment hand to berth.  Properties checked, not just "no
 * crash": a parsed reference formats to text that parses back to the same
 * reference, and a pin survives its one-word encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "executor/source/imageref.h"

static void check_round_trip(const char *text)
{
	struct berth_imageref ref, again;
	struct berth_err err = {0};
	char formatted[1024];

	(void)berth_imageref_looks_like_path(text);
	if (berth_imageref_parse(text, NULL, &ref, &err) < 0)
		return;
	berth_imageref_format(&ref, formatted, sizeof(formatted));
	memset(&again, 0, sizeof(again));
	if (berth_imageref_parse(formatted, NULL, &again, &err) < 0 ||
	    strcmp(ref.registry, again.registry) || strcmp(ref.repository, again.repository) ||
	    strcmp(ref.tag, again.tag) || strcmp(ref.digest, again.digest))
		abort(); /* the pinned form handed to the nodes must mean the same */
}

static void check_pin(const char *text)
{
	char word[3 * 1024 + 1], back[1024];

	if (strlen(text) >= sizeof(back))
		return;
	berth_pin_encode(text, word, sizeof(word));
	if (strchr(word, ' '))
		abort(); /* pins are space-separated in BERTH_IMAGE_PINS */
	if (berth_pin_decode(word, back, sizeof(back)) < 0 || strcmp(back, text) != 0)
		abort();
	(void)berth_pin_decode(text, back, sizeof(back));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[1100];

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	check_round_trip(text);
	check_pin(text);
	return 0;
}
