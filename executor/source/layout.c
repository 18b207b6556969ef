#define _GNU_SOURCE
/* berth: images in a layout folder (pulled images, see image.h):
 * LAYOUT/blobs/sha256/<hex>, every manifest, config and layer a plain file
 * named by its sha256, each verified against it. */
#include "executor/source/image.h"
#include "executor/source/image_int.h"
#include "executor/source/imageref.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/source/tarmember.h"

/* ---- layout folders (pulled images) -------------------------------------- */

#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"

/* "sha256:" and 64 lowercase hex digits, the only form berth verifies.
 * Another algorithm gets its own message: the image is fine, berth is not. */
static int check_digest_form(const char *digest, const char *what,
			     struct berth_err *err)
{
	size_t alg = digest ? strcspn(digest, ":") : 0;

	if (!digest || !*digest)
		return berth_fail(err, 0, "%s has no digest; the image is malformed",
				  what);
	if (digest[alg] == ':' && alg && strncmp(digest, "sha256:", 7) != 0 &&
	    strspn(digest, "abcdefghijklmnopqrstuvwxyz0123456789+._-") == alg)
		return berth_fail(err, 0, "%s has a %.*s digest (%.80s); berth "
				  "verifies sha256 digests only: push the image "
				  "with sha256 digests (the default)", what,
				  (int)(alg > 16 ? 16 : alg), digest, digest);
	if (!berth_digest_valid(digest))
		return berth_fail(err, 0, "%s has a malformed digest '%.80s' "
				  "(expected sha256: and 64 lowercase hex digits)",
				  what, digest);
	return 0;
}

int berth_layout_blob_open(const char *layout_dir, const char *digest,
			   struct berth_err *err)
{
	char rel[sizeof("blobs/sha256/") + 64];
	_cleanup_close_ int dir = -1, fd = -1;
	struct stat st;

	if (check_digest_form(digest, "blob", err) < 0)
		return -1;
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", digest + 7);
	dir = open(layout_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return berth_fail(err, errno, "cannot open image folder %s; the "
				  "image must be pulled again", layout_dir);
	/* The name is checked hex, so O_NOFOLLOW is all a planted symlink
	 * needs; O_NONBLOCK so that a fifo cannot hang the open (it is
	 * refused below; no effect on a regular file). */
	fd = openat(dir, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return berth_fail(err, 0, "blob %s is missing from %s; the image "
				  "must be pulled again", digest, layout_dir);
	if (fd < 0)
		return berth_fail(err, errno, "cannot open blob %s in %s%s", digest,
				  layout_dir, errno == ELOOP
						      ? " (it is a symlink; berth reads "
							"blobs as plain files only)"
						      : "");
	if (fstat(fd, &st) < 0)
		return berth_fail(err, errno, "blob %s in %s", digest, layout_dir);
	if (!S_ISREG(st.st_mode))
		return berth_fail(err, 0, "blob %s in %s is not a regular file; the "
				  "image must be pulled again", digest, layout_dir);
	return berth_steal_fd(fd);
}

/* The whole blob `digest` (at most `max` bytes), verified, NUL-terminated. */
static int read_blob(const char *layout_dir, const char *digest, size_t max,
		     char **buf, size_t *len, struct berth_err *err)
{
	_cleanup_close_ int fd = berth_layout_blob_open(layout_dir, digest, err);
	_cleanup_free_ char *data = NULL;
	struct stat st;
	size_t have = 0;
	char seen[72];

	if (fd < 0 || fstat(fd, &st) < 0)
		return fd < 0 ? -1 : berth_fail(err, errno, "blob %s", digest);
	if ((uint64_t)st.st_size > max)
		return berth_fail(err, 0, "blob %s in %s is %lld bytes, more than "
				  "the %zu-byte limit for a manifest or config; "
				  "this is not an image berth can read", digest,
				  layout_dir, (long long)st.st_size, max);
	if (!(data = malloc((size_t)st.st_size + 1)))
		return berth_fail(err, ENOMEM, "blob %s", digest);
	ssize_t n = berth_read_full(fd, data, (size_t)st.st_size);
	if (n < st.st_size)
		return berth_fail(err, n < 0 ? errno : 0, "cannot read blob "
				  "%s in %s%s", digest, layout_dir,
				  n >= 0 ? " (it shrank while read)" : "");
	have = (size_t)n;
	data[have] = '\0';
	berth_sha256_hex(data, have, seen);
	if (strcmp(seen, digest) != 0)
		return berth_fail(err, 0, "blob %s in %s does not match its digest "
				  "(content is %s); the cached copy is corrupt: pull "
				  "the image again", digest, layout_dir, seen);
	*len = have;
	*buf = berth_steal(data);
	return 0;
}

/* An image manifest, or say what else it is. */
static int check_manifest_kind(struct json_object *m, const char *digest,
			       struct berth_err *err)
{
	struct json_object *ver = img_json_get(m, "schemaVersion", json_type_int);
	const char *mt = bj_member_string(m, "mediaType");

	if (!json_object_is_type(m, json_type_object))
		return berth_fail(err, 0, "manifest %s is not a JSON object; it is "
				  "not an image manifest", digest);
	if ((ver && json_object_get_int(ver) == 1) ||
	    (mt && strstr(mt, "distribution.manifest.v1")))
		return berth_fail(err, 0, "manifest %s is a Docker schema 1 manifest, "
				  "a format too old for berth (it names no config "
				  "digest): push the image again with a current "
				  "docker, which writes schema 2", digest);
	if ((mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST))) ||
	    img_json_get(m, "manifests", json_type_array))
		return berth_fail(err, 0, "manifest %s is an image index (a list of "
				  "manifests, one per platform); a platform manifest "
				  "must be chosen first and its digest given", digest);
	if (mt && strcmp(mt, MT_DOCKER_MANIFEST) != 0 && strcmp(mt, MT_OCI_MANIFEST) != 0)
		return berth_fail(err, 0, "manifest %s has media type '%.100s', not "
				  "a Docker schema 2 or OCI image manifest; it is not "
				  "a container image", digest, mt);
	/* OCI lets mediaType out: then the content decides. */
	if (!img_json_get(m, "config", json_type_object) ||
	    !img_json_get(m, "layers", json_type_array))
		return berth_fail(err, 0, "manifest %s has no config or no layers; "
				  "it is not an image manifest", digest);
	return 0;
}

/* Tar layers, plain or compressed (libarchive detects which); the media
 * type may be absent, then the content decides as well. */
static int check_layer_type(const char *mt, const char *what,
			    struct berth_err *err)
{
	static const char *const tar_layers[] = {
		"application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.diff.tar",
		"application/vnd.oci.image.layer.v1.tar",
		"application/vnd.oci.image.layer.v1.tar+gzip",
		"application/vnd.oci.image.layer.v1.tar+zstd",
	};
	size_t len = mt ? strlen(mt) : 0;

	for (size_t i = 0; mt && i < sizeof(tar_layers) / sizeof(*tar_layers); i++)
		if (!strcmp(mt, tar_layers[i]))
			return 0;
	if (!mt)
		return 0;
	if (len > 10 && !strcmp(mt + len - 10, "+encrypted"))
		return berth_fail(err, 0, "%s is encrypted (media type %.100s); "
				  "berth cannot decrypt layers: use an unencrypted "
				  "image", what, mt);
	if (strstr(mt, "foreign") || strstr(mt, "nondistributable"))
		return berth_fail(err, 0, "%s is a foreign layer (media type %.100s), "
				  "kept outside the registry, as Windows base layers "
				  "are; berth runs Linux images with all layers in the "
				  "registry", what, mt);
	return berth_fail(err, 0, "%s has media type '%.100s', not a tar layer; "
			  "this is not a container image berth can run", what, mt);
}

static int layout_layer(struct berth_image *img, struct json_object *desc,
			size_t i, const char *mdigest, struct berth_err *err)
{
	struct berth_layer *layer = &img->layers[i];
	const char *digest = bj_member_string(desc, "digest");
	char what[128];
	int fd;

	snprintf(what, sizeof(what), "manifest %.19s...: layer %zu", mdigest, i);
	if (!json_object_is_type(desc, json_type_object))
		return berth_fail(err, 0, "%s is not a descriptor object", what);
	if (check_digest_form(digest, what, err) < 0 ||
	    check_layer_type(bj_member_string(desc, "mediaType"), what, err) < 0)
		return -1;
	/* Present now: better said at open than halfway through flattening. */
	if ((fd = berth_layout_blob_open(img->layout_dir, digest, err)) < 0)
		return berth_wrap(err, "layer %zu", i);
	close(fd);
	if (asprintf(&layer->entry, "blobs/sha256/%s", digest + 7) < 0) {
		layer->entry = NULL;
		return berth_fail(err, ENOMEM, "layers");
	}
	snprintf(layer->digest, sizeof(layer->digest), "%s", digest);
	return 0;
}

static int layout_layers(struct berth_image *img, struct json_object *layers,
			 const char *mdigest, struct berth_err *err)
{
	size_t n = layers ? json_object_array_length(layers) : 0; /* json-c asserts on NULL */

	if (n == 0)
		return berth_fail(err, 0, "manifest %s lists no layers; berth needs "
				  "at least one to make a file system", mdigest);
	if (!(img->layers = calloc(n, sizeof(*img->layers))))
		return berth_fail(err, ENOMEM, "layers");
	for (size_t i = 0; i < n; i++) {
		img->n_layers = i + 1; /* so that close frees a half-filled entry */
		if (layout_layer(img, json_object_array_get_idx(layers, i), i,
				 mdigest, err) < 0)
			return -1;
	}
	return 0;
}

/* The config's rootfs.diff_ids must pair up with the manifest's layers:
 * flatten checks each layer against both. */
static int check_diff_id_count(const char *buf, size_t len, const char *digest,
			       size_t n_layers, struct berth_err *err)
{
	struct json_object *root = img_parse_json(buf, len, "image config", err);
	struct json_object *rootfs = img_json_get(root, "rootfs", json_type_object);
	struct json_object *ids = img_json_get(rootfs, "diff_ids", json_type_array);
	size_t n = ids ? json_object_array_length(ids) : 0;

	json_object_put(root);
	if (!root)
		return berth_wrap(err, "config %s", digest);
	if (n != n_layers)
		return berth_fail(err, 0, "the manifest lists %zu layers but its "
				  "config %s lists %zu (rootfs.diff_ids): manifest "
				  "and config disagree, the image is malformed",
				  n_layers, digest, n);
	return 0;
}

static int layout_config(struct berth_image *img, struct json_object *desc,
			 struct berth_err *err)
{
	const char *digest = bj_member_string(desc, "digest");
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	if (check_digest_form(digest, "the manifest's config", err) < 0 ||
	    read_blob(img->layout_dir, digest, BERTH_CONFIG_MAX, &buf, &len, err) < 0 ||
	    check_diff_id_count(buf, len, digest, img->n_layers, err) < 0 ||
	    berth_image_parse_config(img, buf, len, digest, err) < 0)
		return -1;
	snprintf(img->digest, sizeof(img->digest), "%s", digest);
	img->config_json = berth_steal(buf);
	img->config_len = len;
	return 0;
}

int berth_image_open_layout(struct berth_image *img, const char *layout_dir,
			    const char *manifest_digest, struct berth_err *err)
{
	_cleanup_free_ char *buf = NULL;
	struct json_object *m = NULL;
	size_t len = 0;
	int rc = -1;

	memset(img, 0, sizeof(*img));
	if (!(img->layout_dir = strdup(layout_dir)) ||
	    !(img->tags = calloc(1, sizeof(char *)))) {
		berth_fail(err, ENOMEM, "image");
		goto out;
	}
	if (check_digest_form(manifest_digest, "the image manifest", err) < 0 ||
	    read_blob(layout_dir, manifest_digest, BERTH_MANIFEST_MAX, &buf, &len,
		      err) < 0)
		goto out;
	if (!(m = img_parse_json(buf, len, "the image manifest", err))) {
		berth_wrap(err, "manifest %s", manifest_digest);
		goto out;
	}
	if (check_manifest_kind(m, manifest_digest, err) < 0 ||
	    layout_layers(img, img_json_get(m, "layers", json_type_array),
			  manifest_digest, err) < 0 ||
	    layout_config(img, img_json_get(m, "config", json_type_object), err) < 0)
		goto out;
	rc = 0;
out:
	json_object_put(m);
	if (rc < 0)
		berth_image_close(img);
	return rc;
}

/* ---- OCI image layout folders (a site importer's answer) ----------------- */

/* A small regular file of the folder, never through a symlink or a fifo. */
static int read_layout_file(int dir, const char *dir_path, const char *name, size_t max,
			    char **buf, size_t *len, struct berth_err *err)
{
	_cleanup_close_ int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	_cleanup_free_ char *data = NULL;
	struct stat st;

	if (fd < 0)
		return berth_fail(err, errno == ELOOP || errno == ENOENT ? 0 : errno, "%s/%s %s",
				  dir_path, name,
				  errno == ENOENT  ? "is missing"
				  : errno == ELOOP ? "is a symlink (berth reads plain files only)"
						   : "cannot be opened");
	if (fstat(fd, &st) < 0)
		return berth_fail(err, errno, "%s/%s", dir_path, name);
	if (!S_ISREG(st.st_mode))
		return berth_fail(err, 0, "%s/%s is not a regular file", dir_path, name);
	if ((uint64_t)st.st_size > max)
		return berth_fail(err, 0, "%s/%s is %lld bytes, more than the %zu-byte limit",
				  dir_path, name, (long long)st.st_size, max);
	if (!(data = malloc((size_t)st.st_size + 1)))
		return berth_fail(err, ENOMEM, "%s", name);
	ssize_t n = berth_read_full(fd, data, (size_t)st.st_size);
	if (n < 0)
		return berth_fail(err, errno, "cannot read %s/%s", dir_path, name);
	data[n] = '\0';
	*len = (size_t)n;
	*buf = berth_steal(data);
	return 0;
}

/* index.json's one image manifest: its digest into `digest`. */
static int layout_pick_manifest(struct json_object *index, const char *dir_path,
				char digest[BERTH_DIGEST_LEN + 1], struct berth_err *err)
{
	struct json_object *list = img_json_get(index, "manifests", json_type_array);
	size_t n = list ? json_object_array_length(list) : 0;

	if (n != 1)
		return berth_fail(err, 0, "%s/index.json lists %zu images; a layout given to "
				  "berth must hold exactly one image manifest", dir_path, n);
	struct json_object *desc = json_object_array_get_idx(list, 0);
	const char *mt = bj_member_string(desc, "mediaType");
	const char *d = bj_member_string(desc, "digest");
	if (mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST)))
		return berth_fail(err, 0, "%s/index.json names an image index (one image per "
				  "platform); a layout given to berth must name the "
				  "platform's image manifest itself", dir_path);
	if (check_digest_form(d, "index.json's manifest", err) < 0)
		return berth_wrap(err, "%s", dir_path);
	snprintf(digest, BERTH_DIGEST_LEN + 1, "%s", d);
	return 0;
}

int berth_image_open_oci_dir(struct berth_image *img, const char *dir_path,
			     struct berth_err *err)
{
	_cleanup_close_ int dir = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	char digest[BERTH_DIGEST_LEN + 1] = "";
	size_t len = 0;

	memset(img, 0, sizeof(*img));
	if (dir < 0)
		return berth_fail(err, errno, "cannot open the image folder %s", dir_path);
	if (read_layout_file(dir, dir_path, "oci-layout", 4096, &buf, &len, err) < 0)
		return berth_wrap(err, "not an OCI image layout (oci-layout, index.json, "
				  "blobs/sha256/)");
	if (!buf || !strstr(buf, "\"imageLayoutVersion\""))
		return berth_fail(err, 0, "%s/oci-layout has no imageLayoutVersion: not an OCI "
				  "image layout", dir_path);
	free(buf);
	buf = NULL;
	if (read_layout_file(dir, dir_path, "index.json", BERTH_MANIFEST_MAX, &buf, &len, err) < 0)
		return -1;
	struct json_object *index = img_parse_json(buf, len, "index.json", err);
	if (!index)
		return berth_wrap(err, "%s", dir_path);
	int rc = layout_pick_manifest(index, dir_path, digest, err);
	json_object_put(index);
	if (rc < 0)
		return -1;
	if (berth_image_open_layout(img, dir_path, digest, err) < 0)
		return berth_wrap(err, "OCI image layout %s", dir_path);
	return 0;
}
