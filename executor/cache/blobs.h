/* berth: which registry blobs the user's cache still needs.
 *
 * A cache entry made from a registry image records where it came from in
 * images/<hex>/registry: the digest it was pinned to and its platform
 * manifest.  A blob no entry leads to (manifest, config, layers) is garbage
 * once it is older than a pull could be using it; so are the docker-save
 * archives written for Docker (docker-archives/, regenerated from the
 * blobs when needed). */
#ifndef BERTH_BLOBS_H
#define BERTH_BLOBS_H

#include <time.h>

/* Write images/<entry hex>/registry.  Returns 0 or -1 (errno). */
int berth_blobs_record(int cache_fd, const char *entry_digest, const char *pinned,
		       const char *manifest);

/* Remove blobs no entry needs and docker archives, each only when older
 * than min_age seconds and not being downloaded (its lock is free).
 * *freed: bytes removed; *kept: bytes of blobs and archives left. */
void berth_blobs_sweep(int cache_fd, time_t min_age, unsigned long long *freed,
		       unsigned long long *kept);

#endif
