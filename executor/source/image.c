#define _GNU_SOURCE
/* berth: docker-save archive reader (legacy and OCI layouts), and what every
 * image has: its config, close.  Layout folders are read by layout.c,
 * docker-save archives written by archive_write.c (see image.h). */
#include "executor/source/image.h"
#include "executor/source/image_int.h"

#include "executor/base/dl/archive_lazy.h"
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include <string.h>
#include <sys/stat.h>

#include "conf/config.h"
#include "executor/base/fs.h"
#include "executor/base/process.h"
#include "executor/source/imageref.h"
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
	char shown[BERTH_IMAGE_MAX];

	*tag = NULL;
	if (hash && hash[1] == '\0') {
		berth_url_masked(ref, shown, sizeof(shown));
		return berth_fail(err, 0, "image '%s' ends with '#' but names no "
				  "tag; write PATH#repo:tag", shown);
	}
	*path = hash ? strndup(ref, (size_t)(hash - ref)) : strdup(ref);
	if (hash)
		*tag = strdup(hash + 1);
	if (!*path || (hash && !*tag))
		return berth_fail(err, ENOMEM, "image reference");
	return 0;
}

/* ---- JSON helpers ------------------------------------------------------ */

struct json_object *img_parse_json(const char *buf, size_t len,
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

struct json_object *img_json_get(struct json_object *obj, const char *key,
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
int berth_archive_compressed(const char *path, bool *compressed, struct berth_err *err)
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

int berth_archive_decompress(const char *path, const char *shown, const char *dest,
			     uint64_t max_bytes, struct berth_err *err)
{
	struct archive_entry *entry;
	_cleanup_archive_ struct archive *a = archive_read_new();
	_cleanup_close_ int fd = -1;
	_cleanup_close_ int in = -1;
	char buf[256 * 1024], self[64];
	la_ssize_t n;

	if (!a) /* berth_tar_open loaded libarchive: the archive was probed first */
		return berth_fail(err, ENOMEM, "libarchive");
	/* Never a FIFO, even one swapped in since the probe; the file is
	 * opened once and libarchive reads that very one. */
	if ((in = berth_open_regular(path, err)) < 0)
		return -1;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", in);
	berth_archive_read_filters(a);
	archive_read_support_format_raw(a);
	if (!shown)
		shown = path;
	if (archive_read_open_filename(a, self, sizeof(buf)) != ARCHIVE_OK ||
	    archive_read_next_header(a, &entry) != ARCHIVE_OK)
		return berth_fail(err, 0, "cannot decompress %s (%s)",
				  shown, archive_error_string(a));
	fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_fail(err, errno, "cannot create %s", dest);
	uint64_t written = 0;
	while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) {
		written += (uint64_t)n;
		if (max_bytes && written > max_bytes) {
			char cap[32];
			berth_format_size(max_bytes, cap, sizeof(cap));
			return berth_fail(err, 0, "%s decompresses to more than CacheMaxSize "
					  "(%s): give a smaller image, or ask the site to raise "
					  "CacheMaxSize", shown, cap);
		}
		if (berth_write_all(fd, buf, (size_t)n) < 0)
			return berth_fail(err, errno, "cannot write %s", dest);
	}
	if (n < 0)
		return berth_fail(err, 0,
				  "%s is truncated or damaged: decompression failed "
				  "(%s); download or save the image again", shown,
				  archive_error_string(a));
	return 0;
}

static int prepare_archive(struct berth_image *img, const char *path,
			   const char *work_dir, struct berth_err *err)
{
	bool compressed = false;

	if (berth_archive_compressed(path, &compressed, err) < 0)
		return -1;
	if (!compressed) {
		img->archive = strdup(path);
		return img->archive ? 0 : berth_fail(err, ENOMEM, "path");
	}
	if (!work_dir)
		return berth_fail(err, 0, "%s is compressed, and this loader (root) reads only "
				  "uncompressed archives: the job user's own fetch decompresses "
				  "them (berth fetch)", path);
	if (asprintf(&img->archive, "%s/archive.tar", work_dir) < 0) {
		img->archive = NULL;
		return berth_fail(err, ENOMEM, "path");
	}
	if (berth_archive_decompress(path, NULL, img->archive, 0, err) < 0) {
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
		struct json_object *tags = img_json_get(item, "RepoTags", json_type_array);
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
	struct json_object *ann = img_json_get(desc, "annotations", json_type_object);
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
	if (!(index = img_parse_json(buf, len, "index.json", err)))
		return -1;
	manifests = img_json_get(index, "manifests", json_type_array);
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
	struct json_object *manifest = img_parse_json(buf, len, member, err);
	if (!manifest)
		goto out;
	struct json_object *layers = img_json_get(manifest, "layers", json_type_array);
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
		rc = blob_member(bj_member_string(img_json_get(manifest, "config", json_type_object),
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
	struct json_object *root = img_parse_json(buf, len, member, err);
	struct json_object *cfg, *labels;
	int rc = -1;

	if (!root)
		return -1;
	if (!json_object_is_type(root, json_type_object)) {
		berth_fail(err, 0, "image config %s is not a JSON object", member);
		goto out;
	}
	cfg = img_json_get(root, "config", json_type_object);
	if (json_strv(img_json_get(cfg, "Env", json_type_array), &img->env, &img->n_env,
		      "config Env", err) < 0 ||
	    json_strv(img_json_get(cfg, "Entrypoint", json_type_array), &img->entrypoint,
		      &img->n_entrypoint, "config Entrypoint", err) < 0 ||
	    json_strv(img_json_get(cfg, "Cmd", json_type_array), &img->cmd, &img->n_cmd,
		      "config Cmd", err) < 0)
		goto out;
	const char *workdir = bj_member_string(cfg, "WorkingDir");
	const char *user = bj_member_string(cfg, "User");
	if ((workdir && *workdir && !(img->workdir = strdup(workdir))) ||
	    (user && *user && !(img->user = strdup(user)))) {
		berth_fail(err, ENOMEM, "config");
		goto out;
	}
	labels = img_json_get(cfg, "Labels", json_type_object);
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
	struct json_object *rootfs = img_json_get(root, "rootfs", json_type_object);
	struct json_object *diff_ids = img_json_get(rootfs, "diff_ids", json_type_array);
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
	struct json_object *manifest = img_parse_json(buf, len, "manifest.json", err);
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
	if (add_tags(img, img_json_get(item, "RepoTags", json_type_array), err) < 0 ||
	    layers_from_names(img, img_json_get(item, "Layers", json_type_array),
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
