/* berth: SHA-256 of a buffer in memory, without libcrypto.
 *
 * A warm start hashes one short string (the image path, for its cache key),
 * and loading libcrypto for it cost more than berth's whole share of a
 * start (dlopen, relocations, reading openssl.cnf: several ms measured).
 * This plain FIPS 180-4 implementation serves the one-shot hashes of short
 * things (keys, manifests, configs); the streams of layer data keep
 * libcrypto's hardware-accelerated digest (crypto_lazy.h). */
#ifndef BERTH_SHA256_H
#define BERTH_SHA256_H

#include <stddef.h>

#define BERTH_SHA256_LEN 32

void berth_sha256(const void *data, size_t len, unsigned char md[BERTH_SHA256_LEN]);

#endif
