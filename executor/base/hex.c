/* berth: hex digits (hex.h): encoding bytes, checking digits and digests. */
#include "executor/base/hex.h"

#include <string.h>

void berth_hex_encode(const void *data, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *d = data;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

bool berth_is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool berth_digest_valid(const char *d)
{
	return d && strncmp(d, "sha256:", 7) == 0 && berth_is_hex(d + 7, 64) && !d[71];
}
