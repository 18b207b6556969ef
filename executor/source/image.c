#define _GNU_SOURCE
/* berth: docker-save archive reader (legacy and OCI layouts). */
#include "executor/source/image.h"
#include "executor/source/imageref.h"

#include "executor/base/dl/archive_lazy.h"
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include <string.h>
#include <sys/stat.h>

#include "executor/base/fs.h" /* berth_write_all */
#include "executor/source/tarmember.h"

#define JSON_DEPTH 64

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void berth_image_close_archive(struct berth_image *img)
{
	if (img->archive_is_copy && img->archive)
		unlink(img->archive);
	img->archive_is_copy = false;
}

void berth_image_close(struct berth_image *img)
{
	if (img->archive_is_copy && img->archive)
		unlink(img->archive);
	free(img->archive);
	free(img->layout_dir);
	for (size_t i = 0; i < img->n_layers; i++)
		free(img->layers[i].entry);
	free(img->layers);
	free_strv(img->tags, img->n_tags);
	free_strv(img->env, img->n_env);
	free(img->workdir);
	free_strv(img->entrypoint, img->n_entrypoint);
	free_strv(img->cmd, img->n_cmd);
	free(img->user);
	free(img->config_json);
	free_strv(img->labels, img->n_labels);
	memset(img, 0, sizeof(*img));
}

int berth_image_ref_split(const char *ref, char **path, char **tag,
			  struct berth_err *err)
{
	const char *hash = strrchr(ref, '#');

	*tag = NULL;
	if (hash && hash[1] == '\0')
		return berth_fail(err, 0, "image '%s' ends with '#' but names no "
				  "tag; write PATH#repo:tag", ref);
	*path = hash ? strndup(ref, (size_t)(hash - ref)) : strdup(ref);
	if (hash)
		*tag = strdup(hash + 1);
	if (!*path || (hash && !*tag))
		return berth_fail(err, ENOMEM, "image reference");
	return 0;
}

/* ---- JSON helpers ------------------------------------------------------ */

static struct json_object *parse_json(const char *buf, size_t len,
				      const char *what, struct berth_err *err)
{
	struct json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
	struct json_object *obj;

	if (!tok) {
		berth_fail(err, ENOMEM, "json");
		return NULL;
	}
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success) {
		enum json_tokener_error jerr = json_tokener_get_error(tok);
		berth_fail(err, 0, "%s is not valid JSON (%s); the image is "
			   "damaged or is not a container image", what,
			   jerr == json_tokener_continue ? "it ends too early"
							 : json_tokener_error_desc(jerr));
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

static struct json_object *json_get(struct json_object *obj, const char *key,
				    enum json_type type)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, type))
		return NULL;
	return v;
}

/* Copy an array of strings; NULL array gives an empty vector. */
static int json_strv(struct json_object *arr, char ***out, size_t *n,
		     const char *what, struct berth_err *err)
{
	size_t len = arr ? json_object_array_length(arr) : 0;

	*out = calloc(len + 1, sizeof(char *));
	*n = 0;
	if (!*out)
		return berth_fail(err, ENOMEM, "%s", what);
	for (size_t i = 0; i < len; i++) {
		struct json_object *item = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(item, json_type_string))
			return berth_fail(err, 0, "%s[%zu] is not a string", what, i);
		if (!((*out)[i] = strdup(json_object_get_string(item))))
			return berth_fail(err, ENOMEM, "%s", what);
		*n = i + 1;
	}
	return 0;
}

/* ---- compressed archives ---------------------------------------------- */

/* Is the archive compressed?  (Decided by libarchive's filter detection.) */
static int archive_compressed(const char *path, bool *compressed,
			      struct berth_err *err)
{
	struct archive_entry *entry;
	_cleanup_archive_ struct archive *a = berth_tar_open(path, err);
	int rc;

	if (!a)
		return -1;
	rc = archive_read_next_header(a, &entry);
	if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
		return berth_fail(err, 0,
				  "%s is not a docker-save archive (%s); create "
				  "one with 'docker save IMAGE -o FILE.tar'",
				  path, archive_error_string(a));
	*compressed = archive_filter_count(a) > 1;
	return 0;
}

/* Write the decompressed stream of `path` to `dest` (created 0600). */
static int decompress_to(const char *path, const char *dest,
			 struct berth_err *err)
{
	struct archive_entry *entry;
	_cleanup_archive_ struct archive *a = archive_read_new();
	_cleanup_close_ int fd = -1;
	char buf[256 * 1024];
	la_ssize_t n;

	if (!a)
		return berth_fail(err, ENOMEM, "libarchive");
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_filename(a, path, sizeof(buf)) != ARCHIVE_OK ||
	    archive_read_next_header(a, &entry) != ARCHIVE_OK)
		return berth_fail(err, 0, "cannot decompress %s (%s)",
				  path, archive_error_string(a));
	fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_fail(err, errno, "cannot create %s", dest);
	while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) {
		for (la_ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return berth_fail(err, errno, "cannot write %s", dest);
			off += w;
		}
	}
	if (n < 0)
		return berth_fail(err, 0,
				  "%s is truncated or damaged: decompression failed "
				  "(%s); download or save the image again", path,
				  archive_error_string(a));
	return 0;
}

static int prepare_archive(struct berth_image *img, const char *path,
			   const char *work_dir, struct berth_err *err)
{
	bool compressed = false;

	if (archive_compressed(path, &compressed, err) < 0)
		return -1;
	if (!compressed) {
		img->archive = strdup(path);
		return img->archive ? 0 : berth_fail(err, ENOMEM, "path");
	}
	if (asprintf(&img->archive, "%s/archive.tar", work_dir ? work_dir : "/tmp") < 0) {
		img->archive = NULL;
		return berth_fail(err, ENOMEM, "path");
	}
	if (decompress_to(path, img->archive, err) < 0) {
		unlink(img->archive);
		return -1;
	}
	img->archive_is_copy = true;
	return 0;
}

/* ---- manifest selection ----------------------------------------------- */

/* Docker 25 names images "docker.io/library/busybox:latest"; users write
 * "busybox:latest".  Compare without the implied registry prefixes. */
static bool tag_matches(const char *have, const char *want)
{
	static const char *const prefixes[] = {"docker.io/library/",
					       "docker.io/", ""};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(*prefixes); i++) {
		size_t n = strlen(prefixes[i]);
		if (strncmp(have, prefixes[i], n) == 0 && strcmp(have + n, want) == 0)
			return true;
	}
	return false;
}

/* Append every tag of `tags` (array) to a "a, b, c" listing. */
static void list_tags(struct json_object *tags, char *out, size_t cap)
{
	size_t n = tags ? json_object_array_length(tags) : 0;

	for (size_t i = 0; i < n; i++) {
		const char *t = bj_string(json_object_array_get_idx(tags, i));
		size_t used = strlen(out);
		snprintf(out + used, cap - used, "%s%s", used ? ", " : "", t ? t : "?");
	}
}

/* Pick the manifest.json entry for `tag`. */
static struct json_object *pick_legacy(struct json_object *manifest,
				       const char *tag, const char *path,
				       struct berth_err *err)
{
	size_t n = json_object_array_length(manifest);
	char names[1024] = "";

	if (n == 0) {
		berth_fail(err, 0, "image archive %s: manifest.json lists no image", path);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(manifest, i);
		struct json_object *tags = json_get(item, "RepoTags", json_type_array);
		if (!json_object_is_type(item, json_type_object)) {
			berth_fail(err, 0, "image archive %s: manifest.json entry %zu "
				   "is not an object", path, i);
			return NULL;
		}
		if (!tag && n == 1)
			return item;
		for (size_t t = 0; tag && tags && t < json_object_array_length(tags); t++) {
			const char *have = bj_string(json_object_array_get_idx(tags, t));
			if (have && tag_matches(have, tag))
				return item;
		}
		list_tags(tags, names, sizeof(names));
	}
	if (tag)
		berth_fail(err, 0, "image archive %s has no image tagged '%s' "
			   "(it has: %s)", path, tag, names);
	else
		berth_fail(err, 0, "image archive %s holds %zu images; pick one "
			   "with %s#REPO:TAG (tags: %s)", path, n, path, names);
	return NULL;
}

static int add_tags(struct berth_image *img, struct json_object *tags,
		    struct berth_err *err)
{
	return json_strv(tags, &img->tags, &img->n_tags, "RepoTags", err);
}

static int layers_from_names(struct berth_image *img, struct json_object *names,
			     const char *path, struct berth_err *err)
{
	size_t n = names ? json_object_array_length(names) : 0;

	if (n == 0)
		return berth_fail(err, 0, "image archive %s: the image has no "
				  "layers", path);
	img->layers = calloc(n, sizeof(*img->layers));
	if (!img->layers)
		return berth_fail(err, ENOMEM, "layers");
	for (size_t i = 0; i < n; i++) {
		const char *name = bj_string(json_object_array_get_idx(names, i));
		if (!name || !*name)
			return berth_fail(err, 0, "image archive %s: layer %zu has "
					  "no name", path, i);
		if (!(img->layers[i].entry = strdup(name)))
			return berth_fail(err, ENOMEM, "layers");
		berth_blob_name_digest(name, img->layers[i].digest);
		img->n_layers = i + 1;
	}
	return 0;
}

/* ---- OCI layout without manifest.json ---------------------------------- */

static const char *oci_ref_name(struct json_object *desc)
{
	struct json_object *ann = json_get(desc, "annotations", json_type_object);
	const char *name = bj_member_string(ann, "io.containerd.image.name");

	return name ? name : bj_member_string(ann, "org.opencontainers.image.ref.name");
}

static int blob_member(const char *digest, char *member, size_t cap,
		       const char *path, struct berth_err *err)
{
	char check[72];

	if (!digest || strncmp(digest, "sha256:", 7) != 0)
		return berth_fail(err, 0, "image archive %s: descriptor without "
				  "a sha256 digest", path);
	snprintf(member, cap, "blobs/sha256/%s", digest + 7);
	if (!berth_blob_name_digest(member, check))
		return berth_fail(err, 0, "image archive %s: malformed digest '%s'",
				  path, digest);
	return 0;
}

static int oci_read_manifest(struct berth_image *img, const char *tag,
			     char *config_member, size_t cap,
			     struct berth_err *err)
{
	const char *path = img->archive;
	_cleanup_free_ char *buf = NULL;
	size_t len;
	struct json_object *index, *chosen = NULL, *manifests;
	char member[128], names[1024] = "";
	int rc = -1;

	if (berth_tar_read_member(path, "index.json", BERTH_MANIFEST_MAX, &buf,
				  &len, err) < 0)
		return berth_wrap(err, "image archive %s has neither manifest.json "
				  "nor a readable index.json", path);
	if (!(index = parse_json(buf, len, "index.json", err)))
		return -1;
	manifests = json_get(index, "manifests", json_type_array);
	for (size_t i = 0; manifests && i < json_object_array_length(manifests); i++) {
		struct json_object *desc = json_object_array_get_idx(manifests, i);
		const char *name = oci_ref_name(desc);
		if ((!tag && json_object_array_length(manifests) == 1) ||
		    (tag && name && tag_matches(name, tag)))
			chosen = desc;
		size_t used = strlen(names);
		snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "",
			 name ? name : "(untagged)");
	}
	if (!chosen) {
		berth_fail(err, 0, "image archive %s: no image %s%s in index.json "
			   "(it has: %s)", path, tag ? "tagged " : "",
			   tag ? tag : "chosen; pick one with #REPO:TAG", names);
		goto out;
	}
	const char *ref = oci_ref_name(chosen);
	img->tags = calloc(2, sizeof(char *));
	if (!img->tags || (ref && !(img->tags[0] = strdup(ref)))) {
		berth_fail(err, ENOMEM, "tags");
		goto out;
	}
	img->n_tags = ref ? 1 : 0;
	if (blob_member(bj_member_string(chosen, "digest"), member, sizeof(member), path, err) < 0)
		goto out;
	free(buf);
	buf = NULL;
	if (berth_tar_read_member(path, member, BERTH_MANIFEST_MAX, &buf, &len, err) < 0)
		goto out;
	char seen[72];
	berth_sha256_hex(buf, len, seen);
	if (strcmp(seen + 7, member + strlen("blobs/sha256/")) != 0) {
		berth_fail(err, 0, "image archive %s: manifest blob %s does not "
			   "match its digest (content is %s); the archive is "
			   "corrupt", path, member, seen);
		goto out;
	}
	struct json_object *manifest = parse_json(buf, len, member, err);
	if (!manifest)
		goto out;
	struct json_object *layers = json_get(manifest, "layers", json_type_array);
	struct json_object *names_arr = json_object_new_array();
	for (size_t i = 0; layers && i < json_object_array_length(layers); i++) {
		char lm[128];
		if (blob_member(bj_member_string(json_object_array_get_idx(layers, i), "digest"),
				lm, sizeof(lm), path, err) < 0) {
			json_object_put(names_arr);
			json_object_put(manifest);
			goto out;
		}
		json_object_array_add(names_arr, json_object_new_string(lm));
	}
	rc = layers_from_names(img, names_arr, path, err);
	json_object_put(names_arr);
	if (rc == 0)
		rc = blob_member(bj_member_string(json_get(manifest, "config", json_type_object),
					  "digest"), config_member, cap, path, err);
	json_object_put(manifest);
out:
	json_object_put(index);
	return rc;
}

/* ---- config ------------------------------------------------------------ */

static int parse_config(struct berth_image *img, const char *buf, size_t len,
			const char *member, struct berth_err *err)
{
	struct json_object *root = parse_json(buf, len, member, err);
	struct json_object *cfg, *labels;
	int rc = -1;

	if (!root)
		return -1;
	if (!json_object_is_type(root, json_type_object)) {
		berth_fail(err, 0, "image config %s is not a JSON object", member);
		goto out;
	}
	cfg = json_get(root, "config", json_type_object);
	if (json_strv(json_get(cfg, "Env", json_type_array), &img->env, &img->n_env,
		      "config Env", err) < 0 ||
	    json_strv(json_get(cfg, "Entrypoint", json_type_array), &img->entrypoint,
		      &img->n_entrypoint, "config Entrypoint", err) < 0 ||
	    json_strv(json_get(cfg, "Cmd", json_type_array), &img->cmd, &img->n_cmd,
		      "config Cmd", err) < 0)
		goto out;
	const char *workdir = bj_member_string(cfg, "WorkingDir");
	const char *user = bj_member_string(cfg, "User");
	if ((workdir && *workdir && !(img->workdir = strdup(workdir))) ||
	    (user && *user && !(img->user = strdup(user)))) {
		berth_fail(err, ENOMEM, "config");
		goto out;
	}
	labels = json_get(cfg, "Labels", json_type_object);
	img->labels = calloc((labels ? (size_t)json_object_object_length(labels) : 0) + 1,
			     sizeof(char *));
	if (!img->labels) {
		berth_fail(err, ENOMEM, "labels");
		goto out;
	}
	if (labels) {
		json_object_object_foreach(labels, key, val)
		{
			if (asprintf(&img->labels[img->n_labels], "%s=%s", key,
				     bj_text(val)) < 0) {
				berth_fail(err, ENOMEM, "labels");
				goto out;
			}
			img->n_labels++;
		}
	}
	/* Legacy layers are named by directory; their uncompressed digest is
	 * the diff_id, which flatten verifies when the layer is not gzipped. */
	struct json_object *rootfs = json_get(root, "rootfs", json_type_object);
	struct json_object *diff_ids = json_get(rootfs, "diff_ids", json_type_array);
	if (diff_ids && img->n_layers &&
	    json_object_array_length(diff_ids) != img->n_layers) {
		berth_fail(err, 0, "image config %s lists %zu layers but the "
			   "manifest %zu; the archive is inconsistent", member,
			   json_object_array_length(diff_ids), img->n_layers);
		goto out;
	}
	for (size_t i = 0; diff_ids && i < img->n_layers; i++) {
		const char *id = bj_string(json_object_array_get_idx(diff_ids, i));
		if (!img->layers[i].digest[0] && id && strlen(id) == BERTH_DIGEST_LEN &&
		    strncmp(id, "sha256:", 7) == 0)
			snprintf(img->layers[i].digest, sizeof(img->layers[i].digest),
				 "%s", id);
	}
	rc = 0;
out:
	json_object_put(root);
	return rc;
}

int berth_image_parse_config(struct berth_image *img, const char *buf,
			     size_t len, const char *name, struct berth_err *err)
{
	return parse_config(img, buf, len, name, err);
}

static int read_config(struct berth_image *img, const char *member,
		       struct berth_err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	char claimed[72];

	if (berth_tar_read_member(img->archive, member, BERTH_CONFIG_MAX, &buf,
				  &len, err) < 0)
		return -1;
	berth_sha256_hex(buf, len, img->digest);
	/* A config stored as blobs/sha256/X or X.json names its digest: check. */
	const char *base = strrchr(member, '/') ? strrchr(member, '/') + 1 : member;
	if (berth_blob_name_digest(member, claimed) ||
	    (strlen(base) == 69 && strcmp(base + 64, ".json") == 0 &&
	     snprintf(claimed, sizeof(claimed), "sha256:%.64s", base) > 0)) {
		if (strcmp(claimed, img->digest) != 0)
			return berth_fail(err, 0, "image archive %s: config %s does "
					  "not match its digest (content is %s); "
					  "the archive is corrupt or was edited",
					  img->archive, member, img->digest);
	}
	if (parse_config(img, buf, len, member, err) < 0)
		return -1;
	img->config_json = berth_steal(buf);
	img->config_len = len;
	return 0;
}

int berth_image_config_bytes(const struct berth_image *img, char **buf,
			     size_t *len, struct berth_err *err)
{
	if (!img->config_json)
		return berth_fail(err, 0, "image %s: no config loaded", img->digest);
	if (!(*buf = malloc(img->config_len + 1)))
		return berth_fail(err, ENOMEM, "config");
	memcpy(*buf, img->config_json, img->config_len + 1);
	*len = img->config_len;
	return 0;
}

/* ---- entry point --------------------------------------------------------- */

static int open_legacy(struct berth_image *img, const char *buf, size_t len,
		       const char *tag, char *config_member, size_t cap,
		       struct berth_err *err)
{
	struct json_object *manifest = parse_json(buf, len, "manifest.json", err);
	struct json_object *item;
	int rc = -1;

	if (!manifest)
		return berth_wrap(err, "image archive %s", img->archive);
	if (!json_object_is_type(manifest, json_type_array)) {
		berth_fail(err, 0, "image archive %s: manifest.json is not a list "
			   "of images; is this a docker-save archive?", img->archive);
		goto out;
	}
	if (!(item = pick_legacy(manifest, tag, img->archive, err)))
		goto out;
	const char *config = bj_member_string(item, "Config");
	if (!config || !*config) {
		berth_fail(err, 0, "image archive %s: manifest.json names no Config",
			   img->archive);
		goto out;
	}
	snprintf(config_member, cap, "%s", config);
	if (add_tags(img, json_get(item, "RepoTags", json_type_array), err) < 0 ||
	    layers_from_names(img, json_get(item, "Layers", json_type_array),
			      img->archive, err) < 0)
		goto out;
	rc = 0;
out:
	json_object_put(manifest);
	return rc;
}

int berth_image_open(struct berth_image *img, const char *path,
		     const char *tag, const char *work_dir,
		     struct berth_err *err)
{
	_cleanup_free_ char *buf = NULL;
	char config_member[4096];
	size_t len;
	struct berth_err probe = {0};
	int rc;

	memset(img, 0, sizeof(*img));
	if (prepare_archive(img, path, work_dir, err) < 0)
		goto fail;
	if (berth_tar_read_member(img->archive, "manifest.json", BERTH_MANIFEST_MAX,
				  &buf, &len, &probe) == 0)
		rc = open_legacy(img, buf, len, tag, config_member,
				 sizeof(config_member), err);
	else if (strstr(probe.msg, "has no member"))
		rc = oci_read_manifest(img, tag, config_member,
				       sizeof(config_member), err);
	else {
		*err = probe;
		rc = -1;
	}
	if (rc < 0 || read_config(img, config_member, err) < 0)
		goto fail;
	return 0;
fail:
	berth_image_close(img);
	return -1;
}

/* ---- layout folders (pulled images) -------------------------------------- */

#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define BLOB_BLOCK (256 * 1024)

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
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, data + have, (size_t)st.st_size - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return berth_fail(err, n < 0 ? errno : 0, "cannot read blob "
					  "%s in %s%s", digest, layout_dir,
					  n == 0 ? " (it shrank while read)" : "");
		have += (size_t)n;
	}
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
	struct json_object *ver = json_get(m, "schemaVersion", json_type_int);
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
	    json_get(m, "manifests", json_type_array))
		return berth_fail(err, 0, "manifest %s is an image index (a list of "
				  "manifests, one per platform); a platform manifest "
				  "must be chosen first and its digest given", digest);
	if (mt && strcmp(mt, MT_DOCKER_MANIFEST) != 0 && strcmp(mt, MT_OCI_MANIFEST) != 0)
		return berth_fail(err, 0, "manifest %s has media type '%.100s', not "
				  "a Docker schema 2 or OCI image manifest; it is not "
				  "a container image", digest, mt);
	/* OCI lets mediaType out: then the content decides. */
	if (!json_get(m, "config", json_type_object) ||
	    !json_get(m, "layers", json_type_array))
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
	struct json_object *root = parse_json(buf, len, "image config", err);
	struct json_object *rootfs = json_get(root, "rootfs", json_type_object);
	struct json_object *ids = json_get(rootfs, "diff_ids", json_type_array);
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
	    parse_config(img, buf, len, digest, err) < 0)
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
	if (!(m = parse_json(buf, len, "the image manifest", err))) {
		berth_wrap(err, "manifest %s", manifest_digest);
		goto out;
	}
	if (check_manifest_kind(m, manifest_digest, err) < 0 ||
	    layout_layers(img, json_get(m, "layers", json_type_array),
			  manifest_digest, err) < 0 ||
	    layout_config(img, json_get(m, "config", json_type_object), err) < 0)
		goto out;
	rc = 0;
out:
	json_object_put(m);
	if (rc < 0)
		berth_image_close(img);
	return rc;
}

/* ---- docker-save archives from a layout ------------------------------------ */

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
	while ((n = read(fd, buf, BLOB_BLOCK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
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
