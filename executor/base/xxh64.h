/* berth: XXH64, a fast non-cryptographic 64-bit hash (Yann Collet's
 * xxHash, the 64-bit variant, seed 0), streamed.
 *
 * It fingerprints the files of a cache artifact in its manifest
 * (manifest.h).  The manifest lives beside the artifact, in a folder only
 * its owner writes, so it guards against accidents (a stray script, a bad
 * copy, a disk) and not against that owner; a cryptographic digest bought
 * nothing there and cost a cold staging of 223 MB 0.35 s (SHA-256 of every
 * byte a second time, after the layers' own).  XXH64 runs at memory speed.
 * Its values are xxhsum -H1's (checked in tests/unit/test_xxh64.c). */
#ifndef BERTH_XXH64_H
#define BERTH_XXH64_H

#include <stddef.h>
#include <stdint.h>

struct berth_xxh64 {
	uint64_t v[4];
	uint64_t total;
	unsigned char buf[32];
	size_t buffered;
};

void berth_xxh64_init(struct berth_xxh64 *s);
void berth_xxh64_update(struct berth_xxh64 *s, const void *data, size_t len);
uint64_t berth_xxh64_digest(const struct berth_xxh64 *s);
/* One shot. */
uint64_t berth_xxh64(const void *data, size_t len);

#endif
