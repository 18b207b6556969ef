#define _GNU_SOURCE
/* berth: docker-save archives written from a layout folder, so that a
 * pulled image can be given to `docker load` (berth_image_write_docker_archive
 * in image.h): the blobs streamed and verified on the way. */
#include "executor/source/image.h"

#include "executor/base/dl/archive_lazy.h"
#include "executor/base/dl/crypto_lazy.h"
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/fs.h" /* berth_write_all, berth_read_full */
#include "executor/source/tarmember.h"

/* ---- docker-save archives from a layout ------------------------------------ */

#define BLOB_BLOCK (256 * 1024)

static void write_freep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}
#define _cleanup_write_ __attribute__((cleanup(write_freep)))

/* Where the archive goes.  Once something failed, nothing more is written:
 * closing the archive would otherwise pad the cut blob with zeros (up to
 * its full size) and add end-of-archive blocks. */
struct sink {
	int fd;
	bool failed;
};

static la_ssize_t sink_write(struct archive *a, void *data, const void *buf,
			     size_t len)
{
	struct sink *sink = data;

	if (sink->failed) {
		archive_set_error(a, ECANCELED, "stopped after an error");
		return -1;
	}
	if (berth_write_all(sink->fd, buf, len) < 0) {
		archive_set_error(a, errno, "%s", strerror(errno));
		return -1;
	}
	return (la_ssize_t)len;
}

static void md_freep(EVP_MD_CTX **ctx)
{
	EVP_MD_CTX_free(*ctx);
}
#define _cleanup_md_ __attribute__((cleanup(md_freep)))

static int put_header(struct archive *a, const char *name, mode_t type,
		      int64_t size, struct berth_err *err)
{
	struct archive_entry *e = archive_entry_new();
	int rc;

	if (!e)
		return berth_fail(err, ENOMEM, "archive entry");
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
	archive_entry_set_size(e, type == AE_IFDIR ? 0 : size);
	rc = archive_write_header(a, e);
	archive_entry_free(e);
	if (rc != ARCHIVE_OK)
		return berth_fail(err, 0,
				  "cannot write '%s' to the docker archive (%s)",
				  name, archive_error_string(a));
	return 0;
}

static int put_data(struct archive *a, const char *name, const char *buf,
		    size_t len, struct berth_err *err)
{
	for (size_t done = 0; done < len;) {
		la_ssize_t n = archive_write_data(a, buf + done, len - done);
		if (n <= 0)
			return berth_fail(err, 0,
					  "cannot write '%s' to the docker archive (%s)",
					  name, archive_error_string(a));
		done += (size_t)n;
	}
	return 0;
}

/* Copy one blob into the archive as `name`, hashing it on the way: the
 * archive is only as good as the cache it comes from. */
static int put_blob(struct archive *a, const char *layout_dir,
		    const char *digest, const char *name, struct berth_err *err)
{
	_cleanup_close_ int fd = berth_layout_blob_open(layout_dir, digest, err);
	_cleanup_free_ char *buf = malloc(BLOB_BLOCK);
	_cleanup_md_ EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint64_t total = 0;
	struct stat st;
	char seen[72];
	ssize_t n;

	if (fd < 0)
		return -1;
	if (!buf || !md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		return berth_fail(err, ENOMEM, "copying blob %s", digest);
	if (fstat(fd, &st) < 0)
		return berth_fail(err, errno, "blob %s", digest);
	if (put_header(a, name, AE_IFREG, st.st_size, err) < 0)
		return -1;
	while ((n = berth_read_full(fd, buf, BLOB_BLOCK)) != 0) {
		if (n < 0)
			return berth_fail(err, errno, "cannot read blob %s in %s",
					  digest, layout_dir);
		if ((total += (uint64_t)n) > (uint64_t)st.st_size)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		if (put_data(a, name, buf, (size_t)n, err) < 0)
			return -1;
	}
	if (total != (uint64_t)st.st_size)
		return berth_fail(err, 0, "blob %s in %s changed size while it was "
				  "copied; is another process writing the cache?",
				  digest, layout_dir);
	berth_sha256_final(md, seen);
	if (strcmp(seen, digest) != 0)
		return berth_fail(err, 0, "blob %s in %s does not match its digest "
				  "(content is %s); the cached copy is corrupt: pull "
				  "the image again", digest, layout_dir, seen);
	return 0;
}

static int put_bytes(struct archive *a, const char *name, const char *buf,
		     size_t len, struct berth_err *err)
{
	if (put_header(a, name, AE_IFREG, (int64_t)len, err) < 0)
		return -1;
	return put_data(a, name, buf, len, err);
}

/* Give `val` to the array or object `to` (under `key`); it is freed when
 * that fails, so callers only check the result. */
static int json_give(struct json_object *to, const char *key,
		     struct json_object *val)
{
	int rc = -1;

	if (val)
		rc = key ? json_object_object_add(to, key, val)
			 : json_object_array_add(to, val);
	if (rc < 0)
		json_object_put(val);
	return rc;
}

/* [{"Config":"<hex>.json","RepoTags":[...],"Layers":["<hex>/layer.tar",...]}]
 * Each object is given to its parent as soon as it is made, so freeing
 * `top` frees everything, whatever failed. */
static char *docker_manifest(const struct berth_image *img, const char *repo_tag)
{
	struct json_object *top = json_object_new_array();
	struct json_object *item = json_object_new_object();
	struct json_object *tags, *layers;
	char name[80];
	const char *s = NULL;
	char *out = NULL;

	if (!top) {
		json_object_put(item);
		return NULL;
	}
	if (json_give(top, NULL, item) < 0)
		goto out;
	tags = json_object_new_array();
	if (json_give(item, "RepoTags", tags) < 0)
		goto out;
	layers = json_object_new_array();
	if (json_give(item, "Layers", layers) < 0)
		goto out;
	snprintf(name, sizeof(name), "%s.json", img->digest + 7);
	if (json_give(item, "Config", json_object_new_string(name)) < 0 ||
	    (repo_tag && json_give(tags, NULL, json_object_new_string(repo_tag)) < 0))
		goto out;
	for (size_t i = 0; i < img->n_layers; i++) {
		snprintf(name, sizeof(name), "%s/layer.tar", img->layers[i].digest + 7);
		if (json_give(layers, NULL, json_object_new_string(name)) < 0)
			goto out;
	}
	s = json_object_to_json_string_ext(top, JSON_C_TO_STRING_PLAIN |
						JSON_C_TO_STRING_NOSLASHESCAPE);
	out = s ? strdup(s) : NULL;
out:
	json_object_put(top);
	return out;
}

/* A layer listed twice is one member, as `docker save` does it. */
static bool seen_before(const struct berth_layer *layers, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(layers[j].digest, layers[i].digest) == 0)
			return true;
	return false;
}

static int put_layers(struct archive *a, const struct berth_image *img,
		      struct berth_err *err)
{
	const struct berth_layer *layers = img->layers;
	char name[80];

	if (!layers)
		return berth_fail(err, 0, "image %s has no layers", img->digest);
	for (size_t i = 0; i < img->n_layers; i++) {
		const char *hex = layers[i].digest + 7;
		if (seen_before(layers, i))
			continue;
		snprintf(name, sizeof(name), "%s/", hex);
		if (put_header(a, name, AE_IFDIR, 0, err) < 0)
			return -1;
		snprintf(name, sizeof(name), "%s/layer.tar", hex);
		if (put_blob(a, img->layout_dir, layers[i].digest, name, err) < 0)
			return -1;
	}
	return 0;
}

int berth_image_write_docker_archive(const struct berth_image *img, int out_fd,
				     const char *repo_tag, struct berth_err *err)
{
	_cleanup_write_ struct archive *a = NULL;
	_cleanup_free_ char *manifest = NULL;
	struct sink sink = {.fd = out_fd};
	char name[80];

	if (!img->layout_dir || !img->config_json)
		return berth_fail(err, 0, "image %s was not opened from a layout "
				  "folder; only pulled images are written as docker "
				  "archives", img->digest);
	if (berth_archive_load(err) < 0 || berth_crypto_load(err) < 0)
		return -1;
	if (!(manifest = docker_manifest(img, repo_tag)) || !(a = archive_write_new()))
		return berth_fail(err, ENOMEM, "docker archive");
	/* pax: a layer may be over ustar's 8 GiB; no padding to 10 KiB blocks. */
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, &sink, NULL, sink_write, NULL, NULL) != ARCHIVE_OK)
		return berth_fail(err, 0, "cannot start the docker archive (%s)",
				  archive_error_string(a));
	snprintf(name, sizeof(name), "%s.json", img->digest + 7);
	/* manifest.json last, as `docker save` writes it: an archive cut
	 * short has none and cannot pass for a whole one. */
	if (put_bytes(a, name, img->config_json, img->config_len, err) < 0 ||
	    put_layers(a, img, err) < 0 ||
	    put_bytes(a, "manifest.json", manifest, strlen(manifest), err) < 0)
		goto fail;
	if (archive_write_close(a) != ARCHIVE_OK)
		return berth_fail(err, 0,
				  "cannot finish the docker archive (%s)",
				  archive_error_string(a));
	return 0;
fail:
	sink.failed = true; /* for the close in archive_write_free */
	return -1;
}
