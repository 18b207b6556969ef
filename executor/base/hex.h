/* berth: hex digits: the one encoder (bytes as lowercase hex) and the
 * checks for lowercase hex digits and for the one digest form berth
 * verifies. */
#ifndef BERTH_HEX_H
#define BERTH_HEX_H

#include <stdbool.h>
#include <stddef.h>

/* `n` bytes as 2n lowercase hex digits and a NUL into `out`, which holds
 * 2n + 1 bytes. */
void berth_hex_encode(const void *data, size_t n, char *out);

/* Does `s` begin with `n` lowercase hex digits?  A shorter string does not
 * (its NUL is no digit); what follows them is not looked at, so a caller
 * that wants exactly n digits checks that s[n] is the NUL. */
bool berth_is_hex(const char *s, size_t n);

/* "sha256:" and 64 lowercase hex digits: the only digest form berth
 * verifies (references, manifests, blob names). */
bool berth_digest_valid(const char *digest);

#endif
