#define _GNU_SOURCE
#include "executor/source/tarmember.h"
#include "executor/base/hex.h"
#include "executor/base/sha256.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/process.h"

#define READ_BLOCK (256 * 1024)

void berth_archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

/* Why libarchive could not open the archive, in words a user can act on:
 * a compression berth does not read is named as such. */
static void say_not_archive(struct archive *a, int fd, const char *path, struct berth_err *err)
{
	unsigned char head[16];
	ssize_t n = pread(fd, head, sizeof(head), 0);
	const char *kind = n > 0 ? berth_archive_unsupported_compression(head, (size_t)n) : NULL;

	if (kind)
		berth_fail(err, 0, "%s is compressed with %s, which berth does not read: give a "
			   "docker-save archive as .tar or .tar.gz (docker save IMAGE | gzip > "
			   "FILE.tar.gz)", path, kind);
	else
		berth_fail(err, 0, "%s is not a docker-save archive (%s); create "
			   "one with 'docker save IMAGE -o FILE.tar'",
			   path, archive_error_string(a));
}

struct archive *berth_tar_open(const char *path, struct berth_err *err)
{
	/* Checked here first: a FIFO or a device must not hold the reader
	 * (berth_open_regular).  libarchive then opens that very file through
	 * /proc/self/fd (its fd reader would never close the descriptor). */
	int fd = berth_open_regular(path, err);
	char self[64];

	if (fd < 0) {
		/* Say "no such file" plainly instead of libarchive's wording. */
		if (err && err->errnum)
			berth_fail(err, err->errnum, "cannot open image archive %s", path);
		return NULL;
	}
	if (berth_archive_load(err) < 0) {
		close(fd);
		return NULL;
	}
	struct archive *a = archive_read_new();

	if (!a) {
		close(fd);
		berth_fail(err, ENOMEM, "libarchive");
		return NULL;
	}
	berth_archive_read_filters(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if (archive_read_open_filename(a, self, READ_BLOCK) != ARCHIVE_OK) {
		say_not_archive(a, fd, path, err);
		archive_read_free(a);
		a = NULL;
	}
	close(fd);
	return a;
}

const char *berth_member_name(struct archive_entry *entry)
{
	const char *name = archive_entry_pathname(entry);

	if (!name)
		return "";
	while (name[0] == '.' && name[1] == '/')
		name += 2;
	return name;
}

struct archive *berth_tar_seek_member(const char *path, const char *name,
				      int64_t *size, struct berth_err *err)
{
	struct archive_entry *entry;
	struct archive *a = berth_tar_open(path, err);
	int rc;

	if (!a)
		return NULL;
	while ((rc = archive_read_next_header(a, &entry)) == ARCHIVE_OK) {
		if (strcmp(berth_member_name(entry), name) == 0) {
			if (size)
				*size = archive_entry_size(entry);
			return a;
		}
	}
	if (rc == ARCHIVE_EOF)
		berth_fail(err, 0, "image archive %s has no member '%s'; it is "
			   "incomplete or not a docker-save archive, save the "
			   "image again", path, name);
	else
		berth_fail(err, 0, "image archive %s is damaged (%s)",
			   path, archive_error_string(a));
	archive_read_free(a);
	return NULL;
}

int berth_tar_read_member(const char *path, const char *name, size_t max,
			  char **buf, size_t *len, struct berth_err *err)
{
	int64_t size;
	_cleanup_archive_ struct archive *a =
		berth_tar_seek_member(path, name, &size, err);
	_cleanup_free_ char *data = NULL;
	size_t have = 0;

	if (!a)
		return -1;
	if (size < 0 || (uint64_t)size > max)
		return berth_fail(err, 0,
				  "image archive %s: member '%s' is %lld bytes, "
				  "more than the %zu-byte limit; this is not a "
				  "docker-save archive berth can read",
				  path, name, (long long)size, max);
	data = malloc((size_t)size + 1);
	if (!data)
		return berth_fail(err, ENOMEM, "reading '%s'", name);
	while (have < (size_t)size) {
		la_ssize_t n = archive_read_data(a, data + have, (size_t)size - have);
		if (n < 0)
			return berth_fail(err, 0,
					  "image archive %s: cannot read '%s' (%s)",
					  path, name, archive_error_string(a));
		if (n == 0)
			return berth_fail(err, 0,
					  "image archive %s is truncated inside '%s'",
					  path, name);
		have += (size_t)n;
	}
	data[have] = '\0';
	*len = have;
	*buf = berth_steal(data);
	return 0;
}

static void hex_digest(const unsigned char *md, unsigned n, char out[72])
{
	strcpy(out, "sha256:");
	berth_hex_encode(md, n < 32 ? n : 32, out + 7);
}

void berth_sha256_hex(const void *data, size_t len, char out[72])
{
	unsigned char md[BERTH_SHA256_LEN];

	berth_sha256(data, len, md);
	hex_digest(md, BERTH_SHA256_LEN, out);
}

void berth_sha256_final(EVP_MD_CTX *ctx, char out[72])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	EVP_DigestFinal_ex(ctx, md, &n);
	hex_digest(md, n, out);
}

bool berth_blob_name_digest(const char *name, char digest[72])
{
	const char *prefix = "blobs/sha256/";
	const char *hex = name + strlen(prefix);

	if (strncmp(name, prefix, strlen(prefix)) != 0 || !berth_is_hex(hex, 64) || hex[64])
		return false;
	snprintf(digest, 72, "sha256:%s", hex);
	return true;
}
