/* berth: low-level access to the members of an outer (docker-save) tar.
 * Internal to executor/: image.c and flatten.c build on it. */
#ifndef BERTH_TARMEMBER_H
#define BERTH_TARMEMBER_H

#include "executor/base/dl/archive_lazy.h"
#include "executor/base/dl/crypto_lazy.h"
#include <stdbool.h>
#include <stddef.h>

#include "conf/error.h"

/* Open `path` as a tar (any compression) for reading headers. */
struct archive *berth_tar_open(const char *path, struct berth_err *err);

/* Free a libarchive reader; for _cleanup_archive_. */
void berth_archive_freep(struct archive **a);
#define _cleanup_archive_ __attribute__((cleanup(berth_archive_freep)))

/* Member name with any leading "./" removed. */
const char *berth_member_name(struct archive_entry *entry);

/* Position a fresh reader of `path` at member `name`.  Returns the reader
 * (data readable with archive_read_data) or NULL with "missing" in err. */
struct archive *berth_tar_seek_member(const char *path, const char *name,
				      int64_t *size, struct berth_err *err);

/* Read the whole member `name` (at most `max` bytes) into a NUL-terminated
 * buffer; `*len` gets its size. */
int berth_tar_read_member(const char *path, const char *name, size_t max,
			  char **buf, size_t *len, struct berth_err *err);

/* "sha256:<hex>" of a buffer. */
void berth_sha256_hex(const void *data, size_t len, char out[72]);
/* Finish an EVP digest into "sha256:<hex>". */
void berth_sha256_final(EVP_MD_CTX *ctx, char out[72]);

/* Does `name` look like "blobs/sha256/<64 hex>"?  If so, write the digest it
 * claims into `digest` ("sha256:<hex>"). */
bool berth_blob_name_digest(const char *name, char digest[72]);

#endif
