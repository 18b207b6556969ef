/* berth: docker-save archives.
 *
 * Reads both layouts `docker save` writes: the legacy one (manifest.json,
 * <id>.json, <dir>/layer.tar) and the OCI image layout of Docker 25+
 * (oci-layout, index.json, blobs/sha256/..., manifest.json optional), the
 * archive plain or gzip-compressed, layers plain or gzip.
 *
 * Identity is the sha256 of the config bytes, computed here, never taken
 * from a file name.  Every blob named by digest is verified while it is read.
 * A compressed archive is first decompressed into `work_dir` so that layers
 * can be visited in manifest order with seeks instead of re-decompressing.
 *
 * Pulled images live in a layout folder instead: LAYOUT/blobs/sha256/<hex>,
 * every manifest, config and layer a plain file named by its sha256
 * (berth_image_open_layout); such an image can be written back as a
 * docker-save archive for `docker load` (berth_image_write_docker_archive).
 *
 * The pieces: image.c (archives, configs), layout.c (layout folders),
 * archive_write.c (the archive writer). */
#ifndef BERTH_IMAGE_H
#define BERTH_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/error.h"

#define BERTH_DIGEST_LEN 71 /* "sha256:" + 64 hex */
#define BERTH_MANIFEST_MAX (16u << 20)
#define BERTH_CONFIG_MAX (16u << 20)

struct berth_layer {
	char *entry;           /* archive member (or layout file) holding the layer */
	char digest[BERTH_DIGEST_LEN + 1]; /* expected sha256 of the member bytes, "" = unknown */
};

struct berth_image {
	char digest[BERTH_DIGEST_LEN + 1]; /* sha256 of the config bytes */
	char *archive;         /* path actually read (a decompressed copy, maybe) */
	bool archive_is_copy;  /* `archive` is ours to delete */
	char *layout_dir;      /* or: the layout folder holding the blobs */
	struct berth_layer *layers;
	size_t n_layers;
	char **tags;           /* repo:tag names of the chosen image */
	size_t n_tags;
	/* From the config: */
	char **env;            /* "NAME=value" */
	size_t n_env;
	char *workdir;
	char **entrypoint;
	size_t n_entrypoint;
	char **cmd;
	size_t n_cmd;
	char *user;
	char **labels;         /* "key=value" */
	size_t n_labels;
	char *config_json;     /* the config bytes, verbatim (digest input) */
	size_t config_len;
};

/* Parse `path` (an archive file).  `tag` picks one image of several
 * ("repo:tag"); NULL is fine when the archive holds exactly one.
 * `work_dir` receives the decompressed copy of a compressed archive; NULL
 * refuses a compressed one (root loading a user's archive never
 * decompresses it: berth_archive_decompress ran as the user before). */
int berth_image_open(struct berth_image *img, const char *path,
		     const char *tag, const char *work_dir,
		     struct berth_err *err);

/* Is `path` compressed (gzip, zstd, xz, bzip2: libarchive's built-in
 * filters; any other compression is refused by name)? */
int berth_archive_compressed(const char *path, bool *compressed, struct berth_err *err);

/* Write the decompressed stream of `path` to `dest` (created 0600, must
 * not exist), failing once it passes `max_bytes` (0: no limit).  Messages
 * call the archive `shown` (the user's name for it; NULL: path). */
int berth_archive_decompress(const char *path, const char *shown, const char *dest,
			     uint64_t max_bytes, struct berth_err *err);

/* Parse the image whose manifest is the blob `manifest_digest` of the
 * layout folder `layout_dir` (a Docker schema 2 or OCI image manifest; an
 * index must be resolved to one platform's manifest first).  Manifest and
 * config are verified against their digests here, the layers while they
 * are flattened; every layer blob must be present.  img->archive stays
 * NULL, img->layout_dir is set. */
int berth_image_open_layout(struct berth_image *img, const char *layout_dir,
			    const char *manifest_digest, struct berth_err *err);

/* An OCI image layout folder (oci-layout, index.json naming exactly one
 * image manifest, blobs/sha256/...), as a site's importer may hand back:
 * index.json and oci-layout are read as plain files (no symlink, no fifo),
 * then berth_image_open_layout verifies the manifest and config. */
int berth_image_open_oci_dir(struct berth_image *img, const char *dir_path,
			     struct berth_err *err);

/* Open the blob `digest` ("sha256:<64 hex>") of a layout folder for
 * reading: a regular file, not a symlink (O_NOFOLLOW).  Returns
 * the fd; a missing blob is an error that says to pull the image again. */
int berth_layout_blob_open(const char *layout_dir, const char *digest,
			   struct berth_err *err);

/* Write `img` (opened with berth_image_open_layout) to `out_fd` as a
 * docker-save archive in the legacy layout, which `docker load` and
 * berth_image_open read: manifest.json, <config hex>.json and one
 * <blob hex>/layer.tar per layer (the stored blob, compressed or not).
 * `repo_tag` ("repo:tag") names it; NULL loads it untagged.  Blobs are
 * streamed and verified against their digests on the way.  On failure
 * out_fd holds a partial archive (without manifest.json): discard it. */
int berth_image_write_docker_archive(const struct berth_image *img, int out_fd,
				     const char *repo_tag, struct berth_err *err);

/* Write the one image `img` (opened with berth_image_open) to `out_fd` as
 * a docker-save archive for `docker load` that can change nothing but
 * that image: its config (the verified bytes berth holds), the layers its
 * config's rootfs.diff_ids name, each read from the archive and verified
 * while it is sent (an uncompressed layer must hash to its diff_id, a
 * gzip one must decompress to it; a missing or other layer is an error),
 * and manifest.json last with no RepoTags: Docker applies no name.  On
 * failure out_fd holds a partial archive without manifest.json. */
int berth_image_write_verified_archive(const struct berth_image *img, int out_fd,
				       struct berth_err *err);

void berth_image_close(struct berth_image *img);

/* Delete the decompressed copy (if any) but keep the parsed config. */
void berth_image_close_archive(struct berth_image *img);

/* Fill the config fields of img (env, workdir, ...) from config JSON bytes
 * kept elsewhere (the cache keeps each image's config verbatim). */
int berth_image_parse_config(struct berth_image *img, const char *buf,
			     size_t len, const char *name,
			     struct berth_err *err);

/* Create the mount points every runtime binds over (/dev, /proc, /sys, /tmp,
 * /home, /etc/hosts, /etc/resolv.conf, /etc/passwd, /etc/group, /.berth)
 * where the image lacks them; ch-run cannot bind onto a missing target. */
int berth_rootfs_add_mountpoints(const char *root_dir, struct berth_err *err);

/* The verbatim config bytes (a copy, caller frees). */
int berth_image_config_bytes(const struct berth_image *img, char **buf,
			     size_t *len, struct berth_err *err);

/* Split "/x/y.tar#repo:tag" into path and tag (tag NULL when absent). */
int berth_image_ref_split(const char *ref, char **path, char **tag,
			  struct berth_err *err);

#endif
