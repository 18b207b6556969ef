/* berth: registry image references, in the forms users already write.
 *
 *   docker://[REGISTRY/]REPO[:TAG][@sha256:HEX]   (Docker, Apptainer)
 *   [REGISTRY#]REPO[:TAG][@sha256:HEX]            (pyxis, enroot)
 *   REPO[:TAG][@sha256:HEX]                       (bare, as `docker pull`)
 *
 * Resolved as Docker resolves them: a first path component with a '.' or
 * a ':' or "localhost" names the registry (docker:// and bare forms), else
 * the default registry (Docker Hub unless the site sets one), where a
 * one-component repository gets "library/".  The tag defaults to "latest"
 * unless a digest is given.  Grammar from the OCI distribution spec: the
 * parser only checks text; whether a string is a local archive instead is
 * the caller's question (it asks the file system first). */
#ifndef BERTH_IMAGEREF_H
#define BERTH_IMAGEREF_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/error.h"
#include "executor/base/hex.h" /* berth_digest_valid, which lived here */

#define BERTH_DOCKER_HUB "registry-1.docker.io"

struct berth_imageref {
	char registry[256];    /* host[:port], as the API is reached */
	char repository[256];  /* "library/ubuntu", "nvidia/pytorch" */
	char tag[129];         /* "" only when a digest pins it */
	char digest[72];       /* "sha256:<64 hex>" or "" */
};

/* Parse `text`; `default_registry` NULL means Docker Hub.  Errors say what
 * is wrong with the text and what a valid reference looks like. */
int berth_imageref_parse(const char *text, const char *default_registry,
			 struct berth_imageref *ref, struct berth_err *err);

/* Is `text` meant as a file, even if no such file exists: an absolute or
 * ./ ../ ~ path, or an archive/SIF extension (before any #TAG)?  A missing
 * archive must say so, not go asking Docker Hub. */
bool berth_imageref_looks_like_path(const char *text);

/* "REGISTRY/REPOSITORY:TAG@DIGEST" (parts that are set), for messages and
 * for the pinned form handed to the nodes. */
void berth_imageref_format(const struct berth_imageref *ref, char *out, size_t len);

/* A URL's pin (berth_fetch_pin's "etag:..." or "lm:...") as one word for
 * BERTH_IMAGE_PINS: percent-encoded outside [A-Za-z0-9:._~/+-], and back.
 * decode returns -1 on a malformed escape or when out is too small. */
void berth_pin_encode(const char *pin, char *out, size_t cap);
int berth_pin_decode(const char *word, char *out, size_t cap);

/* The longest image text berth takes from --container-image or on a
 * stager's stdin (--image-stdin): a URL with a pre-signed query fits. */
#define BERTH_IMAGE_MAX 8192

/* `image` as every message, log line and cache record shows it: in a URL
 * (any "scheme://" but docker://) the userinfo becomes "***@" and the query
 * "?***": "https://u:pw@host/x.tar?sig=S#repo:tag" is shown with "***@"
 * for "u:pw@" and "?***" for "?sig=S", and its "#repo:tag" (berth's #TAG
 * stays: it is never sent to a server).  The authority ends at the first '/', '?' or '#', as
 * RFC 3986 and libcurl read it, so an '@' in the path is not userinfo.
 * Anything else (paths, registry references) is copied unchanged.  Returns
 * true when something was masked.  out is always terminated; text cut to
 * fit never reveals a masked part. */
bool berth_url_masked(const char *image, char *out, size_t cap);

/* Free text with every URL in it masked as above (a libcurl error may
 * quote one, a redirect's Location too); a URL ends at white space or a
 * quote.  out is always terminated. */
void berth_url_scrub(const char *text, char *out, size_t cap);

/* What BERTH_IMAGE_PINS files a URL pin under: the URL itself when nothing
 * in it is secret, else the masked form and "|sha256:" and the SHA-256 of
 * the whole image text, so a node can tell two URLs that mask alike apart
 * without the job's environment holding the secret.  false when out is
 * too small. */
bool berth_url_pin_key(const char *image, char *out, size_t cap);

#endif
