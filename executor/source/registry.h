/* berth: a client of the OCI distribution API (registry images).
 *
 * Pulls what `docker pull` pulls, into an OCI image layout folder that the
 * image reader opens (berth_image_open_layout):
 *
 *   LAYOUT/blobs/sha256/<hex>     manifests, indexes, configs and layers,
 *                                 each verified against its digest while it
 *                                 streams in and published with rename()
 *   LAYOUT/locks/blob-<hex>       flock: one download of a blob per node
 *
 * A layer common to many images is stored once.  Blobs are fetched by
 * berth_fetch (retries, resume with Range, size cap), several at once.
 *
 * Manifests: Docker schema 2, OCI manifests, manifest lists and OCI indexes
 * (the node's platform is picked).  Auth: anonymous, Bearer tokens from the
 * registry's WWW-Authenticate challenge (scope repository:NAME:pull, reused
 * while valid), Basic.  Credentials come from the user's files only, never
 * from argv or the environment:
 *   ~/.config/berth/credentials   netrc lines: machine HOST login USER password PASS
 *                                  (mode 0600; values may be "double quoted")
 *   ~/.docker/config.json          "auths": {"HOST": {"auth": base64(user:pass)}}
 * TLS is verified; a registry listed in InsecureRegistries is reached over
 * plain HTTP; CERTS_DIR/HOST[:PORT]/ca.crt is trusted for that registry (the
 * layout of Docker's /etc/docker/certs.d).
 *
 * The pieces: registry.c (manifests, the layout folder, blobs, the entry
 * points), registry_http.c (HTTP, authentication), credentials.c (the
 * credential files, `berth login`; credentials.h). */
#ifndef BERTH_REGISTRY_H
#define BERTH_REGISTRY_H

#include <stdint.h>

#include "conf/error.h"
#include "executor/source/credentials.h"
#include "executor/source/imageref.h"

#define BERTH_REGISTRY_DEFAULT_PARALLEL 4

struct berth_registry_opts {
	const char *insecure;  /* comma-separated host[:port] spoken to over http */
	const char *mirrors;   /* comma-separated host[:port] asked first for Docker Hub images */
	const char *certs_dir; /* NULL: /etc/docker/certs.d */
	const char *home;      /* the user's home for credentials; NULL: $HOME, else passwd */
	unsigned parallel;     /* blobs downloaded at once; 0: the default */
	unsigned timeout_s;    /* FetchTimeout; 0: fetch's default */
	uint64_t max_bytes;    /* cap per blob (CacheMaxSize), 0: none */
	/* Bytes of the blobs this pull downloads (about once a second). */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
};

struct berth_registry_pull {
	char pinned[72];   /* the digest the reference names (index or manifest) */
	char manifest[72]; /* the image manifest for this node's platform */
	unsigned blobs_fetched, blobs_present;
	uint64_t bytes_fetched;
};

/* The digest `ref` names now: its own digest when it has one (no request),
 * else the registry's answer for the tag.  This is what a job is pinned to. */
int berth_registry_resolve(const struct berth_registry_opts *opts,
			   const struct berth_imageref *ref, char digest[72],
			   struct berth_err *err);

/* Make sure manifest, config and layers of `ref` are in layout_dir (a folder
 * the caller owns).  A pinned reference whose blobs are all there costs no
 * request at all. */
int berth_registry_pull(const struct berth_registry_opts *opts, const char *layout_dir,
			const struct berth_imageref *ref, struct berth_registry_pull *res,
			struct berth_err *err);

/* The platform this node runs ("linux/amd64", "linux/arm64/v8", ...). */
void berth_registry_platform(char *out, size_t len);

/* Check that `registry` accepts the user's stored credentials (GET /v2/
 * through the challenge). */
int berth_registry_check_login(const struct berth_registry_opts *opts, const char *registry,
			       struct berth_err *err);

#endif
