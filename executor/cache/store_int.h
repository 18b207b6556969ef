/* berth: what the pieces of the cache share and no one else uses: the
 * store's entries, locks and build folders (store.c), for staging
 * (stage.c) and for list, gc and verify (gc.c).  The public interface is
 * cache.h. */
#ifndef BERTH_CACHE_STORE_INT_H
#define BERTH_CACHE_STORE_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf/error.h"
#include "executor/cache/cache.h"
#include "executor/source/image.h"

/* `berth cache verify` marks an entry whose files changed with this flag
 * (it holds the first differing path).  A job never runs such an entry: the
 * stage rebuilds it.  One fstatat more per warm start; re-hashing the image
 * at every start would cost a read of all of it. */
#define CORRUPT_FLAG "corrupt"

/* dockerd://NAME (import.c): is ref one; and export it into downloads/
 * as the calling user, *path the archive (malloc'd). */
bool cache_is_dockerd(const char *ref);
int cache_dockerd_archive(struct berth_cache *cache, const char *ref, char **path,
			  struct berth_err *err);
/* Remove downloads/dockerd-*.tar and import-*.tar (the OCI layouts of the
 * importer, as archives) that no process holds: partial ones always (a
 * killed export), finished ones too when `finished` (gc).  Adds the bytes
 * removed to *freed. */
void cache_sweep_exports(struct berth_cache *cache, bool finished, unsigned long long *freed);

/* The digest's lock file, opened (created) and flocked `how`: the fd. */
int cache_lock_file(struct berth_cache *cache, const char *name, int how,
		    struct berth_err *err);
int cache_lock_digest(struct berth_cache *cache, const char *digest, int how,
		      struct berth_err *err);
void cache_touch_last_use(struct berth_cache *cache, const char *digest);

/* images/<hex>/<leaf> is there (the entry itself when leaf is NULL);
 * flagged: verify (or a failed stamp check) found it corrupt; ready: there,
 * not flagged, and its stamp still matches (cache_stamp_whole). */
bool cache_entry_exists(struct berth_cache *cache, const char *digest,
			const char *leaf);
bool cache_entry_flagged(struct berth_cache *cache, const char *digest);
bool cache_entry_ready(struct berth_cache *cache, const char *digest,
		       const char *leaf);

/* The cheap wholeness check (stamp.c): record what a few stats see of
 * images/<hex>/<leaf> in <leaf>.stamp (entry_fd: the entry's folder), and
 * compare at use.  whole is true also for an entry without a stamp; when
 * false, `why` (may be NULL) says what changed. */
int cache_stamp_write(int entry_fd, const char *leaf, struct berth_err *err);
bool cache_stamp_whole(struct berth_cache *cache, const char *digest, const char *leaf,
		       char *why, size_t cap);

/* Mark an entry so no job runs it and the next stage rebuilds it; `why`
 * is kept in the flag file. */
int cache_flag_corrupt(struct berth_cache *cache, const char *digest, const char *why,
		       struct berth_err *err);

/* Remove build folders whose builder is gone (their lock is free). */
void cache_sweep_dead_builds(struct berth_cache *cache);

/* A build folder tmp/<random>, locked by us for as long as we live. */
struct build {
	char name[64];
	char path[PATH_MAX];
	int lock_fd;
};

int cache_build_begin(struct berth_cache *cache, struct build *b,
		      struct berth_err *err);
void cache_build_end(struct berth_cache *cache, struct build *b);

/* Convert into the build folder and publish (a new entry, or one more
 * artifact in an entry that exists); the caller holds the digest's lock
 * exclusive. */
int cache_build_artifact(struct berth_cache *cache, struct build *b,
			 const struct berth_image *img, const char *ref,
			 const struct berth_artifact *art,
			 struct berth_stage_result *res, struct berth_err *err);

/* Remove an entry whose lock the caller holds exclusive. */
int cache_evict_locked(struct berth_cache *cache, const char *digest,
		       struct berth_err *err);

/* Create dir_fd/name (it must not exist) holding data. */
int cache_write_file_at(int dir_fd, const char *name, const void *data,
			size_t len, struct berth_err *err);

#endif
