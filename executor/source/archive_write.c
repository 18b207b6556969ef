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

/* [{"Config":"<hex>.json","RepoTags":TAGS,"Layers":["<hex>/layer.tar",...]}]
 * where TAGS is [repo_tag], [] (repo_tag NULL), or null (untagged: no name
 * at all) and layer i's folder is layer_digest(img, i, arg) without "sha256:".
 * Each object is given to its parent as soon as it is made, so freeing
 * `top` frees everything, whatever failed. */
static char *docker_manifest(const struct berth_image *img, const char *repo_tag, bool untagged,
			     const char *(*layer_digest)(const struct berth_image *, size_t, void *),
			     void *arg)
{
	struct json_object *top = json_object_new_array();
	struct json_object *item = json_object_new_object();
	struct json_object *tags = NULL, *layers;
	char name[96];
	const char *s = NULL;
	char *out = NULL;

	if (!top) {
		json_object_put(item);
		return NULL;
	}
	if (json_give(top, NULL, item) < 0)
		goto out;
	if (untagged) {
		if (json_object_object_add(item, "RepoTags", NULL) < 0)
			goto out;
	} else if (json_give(item, "RepoTags", (tags = json_object_new_array())) < 0) {
		goto out;
	}
	layers = json_object_new_array();
	if (json_give(item, "Layers", layers) < 0)
		goto out;
	snprintf(name, sizeof(name), "%s.json", img->digest + 7);
	if (json_give(item, "Config", json_object_new_string(name)) < 0 ||
	    (repo_tag && tags && json_give(tags, NULL, json_object_new_string(repo_tag)) < 0))
		goto out;
	for (size_t i = 0; i < img->n_layers; i++) {
		snprintf(name, sizeof(name), "%s/layer.tar", layer_digest(img, i, arg) + 7);
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

/* Layer folders named by the stored blob (the layout writer)... */
static const char *blob_digest(const struct berth_image *img, size_t i, void *arg)
{
	(void)arg;
	return img->layers[i].digest;
}

/* ... or by the layer's diff_id (the verified writer: `arg` the config's
 * rootfs.diff_ids, checked as long as the layers). */
static const char *diff_id_digest(const struct berth_image *img, size_t i, void *arg)
{
	(void)img;
	return json_object_get_string(json_object_array_get_idx(arg, i));
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
	if (!(manifest = docker_manifest(img, repo_tag, false, blob_digest, NULL)) || !(a = archive_write_new()))
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

/* ---- the one verified image of a docker-save archive ------------------------ */

/* The config's rootfs.diff_ids, in order (borrowed from `root`). */
static int config_diff_ids(const struct berth_image *img, struct json_object **root,
			   struct json_object **ids, struct berth_err *err)
{
	struct json_object *rootfs;

	*root = json_tokener_parse(img->config_json);
	if (!*root || !json_object_object_get_ex(*root, "rootfs", &rootfs) ||
	    !json_object_object_get_ex(rootfs, "diff_ids", ids) ||
	    !json_object_is_type(*ids, json_type_array))
		return berth_fail(err, 0, "image %s: its config has no rootfs.diff_ids; "
				  "berth loads into Docker only images whose config "
				  "names its layers", img->digest);
	if ((size_t)json_object_array_length(*ids) != img->n_layers || !img->n_layers)
		return berth_fail(err, 0, "image %s: its config names %zu layers and its "
				  "manifest %zu; the archive is inconsistent, save the "
				  "image again", img->digest,
				  (size_t)json_object_array_length(*ids), img->n_layers);
	for (size_t i = 0; i < img->n_layers; i++) {
		const char *id = json_object_get_string(json_object_array_get_idx(*ids, i));
		if (!id || strlen(id) != BERTH_DIGEST_LEN || strncmp(id, "sha256:", 7) != 0)
			return berth_fail(err, 0, "image %s: diff_id %zu of its config is not "
					  "a sha256 digest", img->digest, i);
	}
	return 0;
}

/* The rest of a member, for the decompressing check below: hashed raw. */
struct member_src {
	struct archive *outer;
	EVP_MD_CTX *raw;
	char *buf;
	bool started;
};

static la_ssize_t member_read(struct archive *a, void *data, const void **out)
{
	struct member_src *s = data;
	la_ssize_t n = archive_read_data(s->outer, s->buf, BLOB_BLOCK);

	if (n < 0) {
		archive_set_error(a, EIO, "%s", archive_error_string(s->outer));
		return -1;
	}
	/* gzip only: no other decompressor (nor external program) runs here */
	if (!s->started && n > 0 &&
	    (n < 2 || (unsigned char)s->buf[0] != 0x1f || (unsigned char)s->buf[1] != 0x8b)) {
		archive_set_error(a, EINVAL, "not gzip-compressed");
		return -1;
	}
	s->started = true;
	EVP_DigestUpdate(s->raw, s->buf, (size_t)n);
	*out = s->buf;
	return n;
}

/* A gzip-compressed layer: read the member again, decompressing; its raw
 * bytes must be those just sent (`sent`), and the tar inside them must
 * hash to `diff_id`. */
static int check_gzip_layer(const struct berth_image *img, const char *entry,
			    const char *diff_id, const char *sent, size_t i,
			    struct berth_err *err)
{
	_cleanup_archive_ struct archive *outer = berth_tar_seek_member(img->archive, entry, NULL, err);
	_cleanup_archive_ struct archive *mid = NULL;
	_cleanup_free_ char *buf = malloc(BLOB_BLOCK), *out = malloc(BLOB_BLOCK);
	_cleanup_md_ EVP_MD_CTX *raw = EVP_MD_CTX_new();
	_cleanup_md_ EVP_MD_CTX *tar = EVP_MD_CTX_new();
	struct archive_entry *e;
	char seen_raw[72], seen_tar[72];
	la_ssize_t n;

	if (!outer)
		return -1;
	if (!buf || !out || !raw || !tar || !EVP_DigestInit_ex(raw, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(tar, EVP_sha256(), NULL) || !(mid = archive_read_new()))
		return berth_fail(err, ENOMEM, "checking layer %zu", i);
	struct member_src src = {.outer = outer, .raw = raw, .buf = buf};
	/* built-in gzip only (ARCHIVE_WARN: an external program): no other */
	if (archive_read_support_filter_gzip(mid) != ARCHIVE_OK)
		return berth_fail(err, 0, "image archive %s: layer %zu is gzip-compressed "
				  "and this libarchive has no built-in gzip; save the image "
				  "with uncompressed layers (docker save)", img->archive, i);
	archive_read_support_format_raw(mid);
	if (archive_read_open(mid, &src, NULL, member_read, NULL) != ARCHIVE_OK ||
	    archive_read_next_header(mid, &e) != ARCHIVE_OK)
		goto bad;
	while ((n = archive_read_data(mid, out, BLOB_BLOCK)) > 0)
		EVP_DigestUpdate(tar, out, (size_t)n);
	if (n < 0)
		goto bad;
	if (archive_filter_count(mid) <= 1)
		goto bad; /* not compressed after all */
	const void *rest;
	while ((n = member_read(mid, &src, &rest)) > 0)
		; /* the trailer the decompressor left */
	if (n < 0)
		goto bad;
	berth_sha256_final(raw, seen_raw);
	berth_sha256_final(tar, seen_tar);
	if (strcmp(seen_raw, sent) != 0)
		return berth_fail(err, 0, "image archive %s changed while berth read it "
				  "(layer %zu, '%s'); leave it alone while the job starts",
				  img->archive, i, entry);
	if (strcmp(seen_tar, diff_id) != 0)
		goto bad;
	return 0;
bad:
	return berth_fail(err, 0, "image archive %s: layer %zu ('%s') is not the layer "
			  "%s that the image's config names; berth loads into Docker "
			  "only the layers an archive holds itself, verified: save the "
			  "whole image again (docker save)", img->archive, i, entry, diff_id);
}

/* Send one layer member as `name`, hashing what is sent. */
static int put_member(struct archive *a, const struct berth_image *img, size_t i,
		      const char *name, char sent[72], bool *gzip, struct berth_err *err)
{
	const char *entry = img->layers[i].entry;
	int64_t size = 0;
	_cleanup_archive_ struct archive *in = NULL;
	_cleanup_free_ char *buf = malloc(BLOB_BLOCK);
	_cleanup_md_ EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint64_t total = 0;
	la_ssize_t n;

	if (!buf || !md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		return berth_fail(err, ENOMEM, "copying layer %zu", i);
	if (!entry || !(in = berth_tar_seek_member(img->archive, entry, &size, err)))
		return berth_wrap(err, "layer %zu of image %s (berth loads into Docker only "
				  "the layers an archive holds itself)", i, img->digest);
	if (size < 0)
		return berth_fail(err, 0, "image archive %s: layer '%s' has no size",
				  img->archive, entry);
	if (put_header(a, name, AE_IFREG, size, err) < 0)
		return -1;
	while ((n = archive_read_data(in, buf, BLOB_BLOCK)) > 0) {
		if (total == 0)
			*gzip = n >= 2 && (unsigned char)buf[0] == 0x1f &&
				(unsigned char)buf[1] == 0x8b;
		if ((total += (uint64_t)n) > (uint64_t)size)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		if (put_data(a, name, buf, (size_t)n, err) < 0)
			return -1;
	}
	if (n < 0)
		return berth_fail(err, 0, "image archive %s: cannot read '%s' (%s)",
				  img->archive, entry, archive_error_string(in));
	if (total != (uint64_t)size)
		return berth_fail(err, 0, "image archive %s is truncated inside '%s'",
				  img->archive, entry);
	berth_sha256_final(md, sent);
	return 0;
}

static int put_verified_layers(struct archive *a, const struct berth_image *img,
			       struct json_object *ids, struct berth_err *err)
{
	char name[96], sent[72];

	for (size_t i = 0; i < img->n_layers; i++) {
		const char *id = json_object_get_string(json_object_array_get_idx(ids, i));
		bool dup = false, gzip = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = !strcmp(id, json_object_get_string(json_object_array_get_idx(ids, j)));
		if (dup)
			continue; /* the same layer twice: one member, as docker save does */
		snprintf(name, sizeof(name), "%s/", id + 7);
		if (put_header(a, name, AE_IFDIR, 0, err) < 0)
			return -1;
		snprintf(name, sizeof(name), "%s/layer.tar", id + 7);
		if (put_member(a, img, i, name, sent, &gzip, err) < 0)
			return -1;
		if (strcmp(sent, id) == 0)
			continue;
		if (!gzip)
			return berth_fail(err, 0, "image archive %s: layer %zu ('%s') is not "
					  "the layer %s that the image's config names (content "
					  "is %s); berth loads into Docker only the layers an "
					  "archive holds itself, verified: save the whole image "
					  "again (docker save)", img->archive, i,
					  img->layers[i].entry, id, sent);
		if (check_gzip_layer(img, img->layers[i].entry, id, sent, i, err) < 0)
			return -1;
	}
	return 0;
}

int berth_image_write_verified_archive(const struct berth_image *img, int out_fd,
				       struct berth_err *err)
{
	_cleanup_write_ struct archive *a = NULL;
	_cleanup_free_ char *manifest = NULL;
	struct json_object *root = NULL, *ids = NULL;
	struct sink sink = {.fd = out_fd};
	char name[80];
	int rc = -1;

	if (!img->archive || !img->config_json)
		return berth_fail(err, 0, "image %s was not opened from an archive", img->digest);
	if (berth_archive_load(err) < 0 || berth_crypto_load(err) < 0)
		return -1;
	if (config_diff_ids(img, &root, &ids, err) < 0)
		goto out;
	if (!(manifest = docker_manifest(img, NULL, true, diff_id_digest, ids)) || !(a = archive_write_new())) {
		berth_fail(err, ENOMEM, "docker archive");
		goto out;
	}
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, &sink, NULL, sink_write, NULL, NULL) != ARCHIVE_OK) {
		berth_fail(err, 0, "cannot start the docker archive (%s)", archive_error_string(a));
		goto out;
	}
	snprintf(name, sizeof(name), "%s.json", img->digest + 7);
	/* manifest.json last: a stream cut after a bad layer loads nothing */
	if (put_bytes(a, name, img->config_json, img->config_len, err) < 0 ||
	    put_verified_layers(a, img, ids, err) < 0 ||
	    put_bytes(a, "manifest.json", manifest, strlen(manifest), err) < 0) {
		sink.failed = true;
		goto out;
	}
	if (archive_write_close(a) != ARCHIVE_OK) {
		berth_fail(err, 0, "cannot finish the docker archive (%s)", archive_error_string(a));
		goto out;
	}
	rc = 0;
out:
	json_object_put(root);
	return rc;
}
