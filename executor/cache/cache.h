/* berth: the per-user, content-addressed image cache.
 *
 *   CacheDir/<uid>/                 0700, owned by the user
 *     images/<hex>/rootfs/          flattened root filesystem (charliecloud)
 *     images/<hex>/image.sif        the SIF built from it (singularity;
 *                                   zstd; image.lz4.sif etc. for others)
 *     images/<hex>/config.json      the image config, verbatim
 *     images/<hex>/source           where it came from
 *     images/<hex>/size             disk use in bytes, measured at build
 *     images/<hex>/last-use         its mtime is the last time a job used it
 *     images/<hex>/<leaf>.manifest  what the artifact held when built
 *                                   (manifest.h), for `berth cache verify`
 *     images/<hex>/<leaf>.stamp     what a few stats saw of the artifact
 *                                   when built (stamp.c), compared at every
 *                                   stage and job start
 *     images/<hex>/corrupt          verify (or a stamp that no longer
 *                                   matches) found a file changed: no job
 *                                   runs the entry, the next stage rebuilds it
 *     locks/<hex>                   flock: EX while building, SH while in use
 *     locks/<hex>.rebuild           flock: one rebuild of a corrupt entry
 *     tmp/<random>/.lock            flock: its builder lives; stamped ("1")
 *                                   once taken, so a sweep tells a dead
 *                                   builder from one about to take it
 *     tmp/<random>/                 build folders; published with rename()
 *     conversions.log               one line per conversion done
 *     downloads/<hex>.tar           an image fetched by URL (hex = sha256 of
 *                                   the URL), with <hex>.meta validators and
 *                                   <hex>.lock serialising its fetches
 *     downloads/dockerd-<hex>.tar   a dockerd:// image, exported as the user
 *                                   (hex = its image ID), once per ID
 *     imports/                      the site Importer's folder (its `fetch`
 *                                   DIR), kept for its own cache; gc leaves it
 *     docker-archives/<hex>.tar     a registry image as a docker-save archive
 *                                   for Docker (hex = its manifest digest);
 *                                   gc removes them, they are remade
 *     images/<hex>/registry         the digests a registry entry came from
 *     blobs/sha256/<hex>            registry manifests, configs and layers,
 *                                   verified, shared between images
 *     locks/blob-<hex>              flock: one download of a blob at a time
 *
 * gc removes blobs no entry needs (blobs.h), then evicts entries least
 * recently used first, counting the blobs they still need.
 *
 * A build happens in tmp/ under the digest's exclusive lock and is published
 * with one rename(), so a reader sees a whole entry or none, and N steps that
 * need the same cold image convert it once.  A build folder carries a lock of
 * its own; one whose lock is free belongs to a dead builder and is removed. */
#ifndef BERTH_CACHE_H
#define BERTH_CACHE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/error.h"
#include "conf/config.h"
#include "executor/convert/flatten.h"
#include "executor/source/image.h"
#include "executor/source/imageref.h"
#include "executor/source/registry.h"

struct berth_cache {
	char dir[PATH_MAX]; /* CacheDir/<uid> */
	int dir_fd;
	/* URL downloads (downloads/<sha256(url)>.tar): FetchTimeout, cap, and
	 * where progress goes (NULL: nowhere). */
	unsigned fetch_timeout;
	uint64_t fetch_max_bytes;
	void (*progress)(void *ctx, const char *what, uint64_t done, uint64_t total);
	void *progress_ctx;
	/* Registry images: blobs/sha256/ in this folder, shared by images. */
	const char *default_registry;     /* NULL: Docker Hub */
	const char *url_pin;              /* a URL pinned at submission (fetch.h's pin) */
	/* Root loading a job user's archive (berth docker load): a compressed
	 * one is refused, root never decompresses user data; the user's own
	 * fetch (berth_cache_plain_archive) hands over an uncompressed one. */
	bool plain_archives_only;
	struct berth_registry_opts registry;
	/* dockerd:// images: the node's Docker (DockerSocket). */
	const char *docker_socket;
	/* Importer=: the site's importer, asked first about every image that
	 * is not a local file (NULL: none); run as the caller, FetchTimeout. */
	const char *importer;
};

/* dockerd://NAME: how the cache reaches the node's Docker.  The cache may
 * not include executor/dockerd/ (the layers), so the berth command wires
 * the client in (cli/main.c); NULL: dockerd:// is refused.  Both run as the
 * calling user: the socket's own permissions decide who may export.
 * image_id: the image ID ("sha256:...") NAME names now; *present false
 * when Docker has none.  save: the image `id` as `docker save` writes it,
 * to out_fd, at most max_bytes (0: no cap). */
struct berth_cache_dockerd {
	int (*image_id)(const char *socket, const char *name, bool *present, char id[72],
			struct berth_err *err);
	int (*save)(const char *socket, const char *id, int out_fd, uint64_t max_bytes,
		    struct berth_err *err);
};
extern const struct berth_cache_dockerd *berth_cache_dockerd;

/* Importer=: ask the site's importer about `ref` (`IMPORTER claim REF`)
 * and, when it claims it, have it fetch it (`IMPORTER fetch REF DIR`):
 * *path gets the local archive or SquashFS/SIF file it names.  Returns 1
 * when claimed, 0 when not (no importer, a local file, a reference with a
 * secret in it, or the importer said no), -1 on error. */
int berth_cache_import(struct berth_cache *cache, const char *ref, char **path,
		       struct berth_err *err);
/* Only its answer to `claim` (1 yes, 0 no, -1 error): `berth resolve`
 * leaves what the importer claims unpinned. */
int berth_cache_import_claims(const struct berth_cache *cache, const char *ref,
			      struct berth_err *err);

/* Fetch and registry settings from the site's configuration (cfg must
 * outlive the cache). */
void berth_cache_configure(struct berth_cache *cache, const struct berth_config *cfg);

/* Does `ref` name a registry image (not a URL, not a file, not a path)?
 * Fills *iref when it does. */
bool berth_cache_is_registry_ref(const struct berth_cache *cache, const char *ref,
				 struct berth_imageref *iref);

/* Open CacheDir/<uid> as the user, creating it (0700) when the parent lets
 * us.  Refuses a folder that is a symlink, not owned by `uid`, or readable
 * by others. */
int berth_cache_open(struct berth_cache *cache, const char *cache_dir,
		     uid_t uid, struct berth_err *err);
void berth_cache_close(struct berth_cache *cache);

/* As root: create CacheDir (0755) and CacheDir/<uid> (0700, owned by
 * uid:gid) if they do not exist.  Used by the plugin before staging. */
int berth_cache_prepare_user(const char *cache_dir, uid_t uid, gid_t gid,
			     struct berth_err *err);

struct berth_stage_result {
	char digest[BERTH_DIGEST_LEN + 1];
	bool converted; /* false when the entry was already there */
	char damaged[256]; /* set when a damaged entry was found (and rebuilt) */
	struct berth_flatten_stats stats;
};

/* What an executor keeps in a cache entry, and how to make it from an
 * opened image: `convert` writes `out_path` (inside a private build folder;
 * the cache publishes it with rename()); `work_dir` is scratch space in the
 * same build folder, removed afterwards. */
struct berth_artifact {
	const char *leaf; /* "rootfs", "image.sif", ... */
	int (*convert)(void *ctx, const struct berth_image *img, const char *out_path,
		       const char *work_dir, struct berth_flatten_stats *stats,
		       struct berth_err *err);
	void *ctx;
};

/* The flattened root filesystem (charliecloud, and the base of others). */
extern const struct berth_artifact berth_artifact_rootfs;
/* The same as one SquashFS file (ImageStorage=squashfs), mounted per step. */
#define BERTH_ROOTFS_SQFS "rootfs.sqfs"
extern const struct berth_artifact berth_artifact_rootfs_sqfs;

/* Make sure the image `ref` (PATH[#TAG], an http://, https:// or
 * file:// URL of an archive [#TAG], or a registry reference) is in the cache with artifact
 * `art`, converting it once under the digest's lock when it is not. */
int berth_cache_stage(struct berth_cache *cache, const char *ref,
		      const struct berth_artifact *art,
		      struct berth_stage_result *res, struct berth_err *err);

/* Split PATH[#TAG] and, for a URL, fetch it into downloads/; for a
 * registry reference, pull it and write it as an archive there: *path is
 * then a local archive.  Both strings are malloc'd (tag may be NULL). */
int berth_cache_resolve(struct berth_cache *cache, const char *ref, char **path,
			char **tag, struct berth_err *err);

/* Remove what stopped stagers left in this cache: build folders in tmp/
 * and partial files in downloads/ that no live process holds. */
void berth_cache_sweep(struct berth_cache *cache);

/* When the archive *path is compressed, decompress it (as the caller,
 * the job user) into downloads/ of this cache, at most fetch_max_bytes
 * (CacheMaxSize), once per unchanged file, and point *path there. */
int berth_cache_plain_archive(struct berth_cache *cache, char **path, struct berth_err *err);

/* The digest the archive at path (and tag) had when last read, while the
 * file is unchanged (device, inode, size, mtime, ctime): false when not
 * known.  remember records it after a read. */
bool berth_cache_ref_lookup(struct berth_cache *cache, const char *path, const char *tag,
			    char digest[BERTH_DIGEST_LEN + 1]);
void berth_cache_ref_remember(struct berth_cache *cache, const char *path, const char *tag,
			      const char *digest);

/* Remove an entry unless a job uses it. */
int berth_cache_remove(struct berth_cache *cache, const char *digest,
		       struct berth_err *err);

/* Remove one artifact (leaf) of an entry unless a container or job uses
 * the image (its lock held shared): EBUSY then, ENOENT when it has no such
 * artifact.  The entry's config stays; the next use rebuilds the artifact. */
int berth_cache_remove_artifact(struct berth_cache *cache, const char *digest,
				const char *leaf, struct berth_err *err);

/* Paths of an entry (no check that it exists). */
void berth_cache_entry_path(const struct berth_cache *cache,
			    const char *digest, const char *leaf,
			    char out[PATH_MAX]);

/* Take the digest's lock shared (an image in use) and keep it open across
 * exec: gc will not evict it while the returned fd lives.  Fails when the
 * entry is not in the cache. */
int berth_cache_use(struct berth_cache *cache, const char *digest,
		    const char *leaf, struct berth_err *err);

/* Does a process hold a flock on dir_fd/name (false when there is no such
 * file)?  Tried with an exclusive lock that does not wait and is let go at
 * once: an entry in use (its lock shared), a named container running. */
bool berth_lock_held(int dir_fd, const char *name);

/* Load the cached config of an entry into img (env, workdir, ...). */
int berth_cache_load_config(struct berth_cache *cache, const char *digest,
			    struct berth_image *img, struct berth_err *err);

/* One cache entry, for `berth cache ls` and gc. */
struct berth_cache_entry {
	char digest[BERTH_DIGEST_LEN + 1];
	unsigned long long size;
	long long last_use; /* seconds since the epoch */
	char source[512];
	bool in_use;        /* a job holds its lock shared */
};

/* List the entries, least recently used first.  *entries is malloc'd. */
int berth_cache_list(struct berth_cache *cache, struct berth_cache_entry **entries,
		     size_t *n, struct berth_err *err);

/* Evict least recently used entries until the total is at most max_bytes.
 * Entries in use are never evicted.  *freed gets the bytes removed. */
int berth_cache_gc(struct berth_cache *cache, unsigned long long max_bytes,
		   unsigned long long *freed, size_t *evicted,
		   struct berth_err *err);

/* `berth cache verify`: each entry's artifacts against the manifests
 * recorded when they were built (manifest.h). */
enum berth_verify_state {
	BERTH_VERIFY_OK,
	BERTH_VERIFY_NO_MANIFEST, /* built by a berth that recorded none */
	BERTH_VERIFY_CORRUPT,
};

struct berth_verify_result {
	char digest[BERTH_DIGEST_LEN + 1];
	enum berth_verify_state state;
	char path[PATH_MAX]; /* CORRUPT: first differing path; NO_MANIFEST: the artifact */
	char how[16];        /* CORRUPT: "content", "size", "mode", "missing", ... */
	bool removed;        /* repair removed it (it was not in use) */
};

typedef void (*berth_verify_report)(void *ctx, const struct berth_verify_result *r);

/* Re-hash every entry and report each.  A corrupt entry gets a flag file
 * (images/<hex>/corrupt) that makes the next stage rebuild it and keeps
 * berth_cache_use() from running it; with `repair` it is also removed now
 * unless a job uses it.  *corrupt counts the corrupt entries. */
int berth_cache_verify(struct berth_cache *cache, bool repair,
		       berth_verify_report report, void *ctx, size_t *corrupt,
		       struct berth_err *err);

#endif
