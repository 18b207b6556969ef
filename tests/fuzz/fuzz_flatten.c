/* libFuzzer target: the flattener alone.  The input is up to 8 layer blobs
 * (tar, or tar compressed in any way libarchive reads), separated by the
 * line "BERTH-LAYER"; they are stored as the blobs of a layout folder on
 * tmpfs, named by their sha256 as a pull stores them, and flattened in order
 * into an empty folder, then given the runtimes' mount points.  Unlike
 * fuzz_image no docker-save wrapping or manifest has to survive a mutation,
 * so every execution reaches the entries.
 *
 * Checked after each run: the scratch folder holds nothing but the layout
 * and the rootfs, and no escape marker appeared next to it; a refusal says
 * why; the same layers merged straight into a SquashFS image (the SIF's
 * path, no tree on disk) are refused exactly when the folder refuses them
 * (a file over the size limit aside).  Everything is removed before the
 * next run.  /dev/shm keeps the file
 * system cost at memory speed (about 1/3 of the time on disk here). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/convert/flatten.h"
#include "executor/convert/squashfs.h"
#include "executor/source/image.h"
#include "scratch.h"

#define MARK "\nBERTH-LAYER\n"
#define MAX_LAYERS 8

static char scratch[2048];
static char escape[2100]; /* where the escape fixtures aim: next to scratch */
static int scratch_fd = -1, blobs_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* A mutated gzip layer inflates to megabytes of one byte: a file over
	 * 256 KiB fails with EFBIG (a clear "cannot write" error) instead of
	 * costing a second of writing.  Inputs are far below it (-max_len). */
	struct rlimit fsize = { .rlim_cur = 256u << 10, .rlim_max = 256u << 10 };

	(void)argc;
	(void)argv;
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		abort();
	fuzz_scratch(scratch, sizeof(scratch), "flatten");
	snprintf(escape, sizeof(escape), "%.*s/berth-escape-marker",
		 (int)(strrchr(scratch, '/') - scratch), scratch);
	if ((scratch_fd = open(scratch, O_RDONLY | O_DIRECTORY)) < 0 ||
	    mkdirat(scratch_fd, "blobs", 0700) < 0 || mkdirat(scratch_fd, "blobs/sha256", 0700) < 0 ||
	    (blobs_fd = openat(scratch_fd, "blobs/sha256", O_RDONLY | O_DIRECTORY)) < 0)
		abort();
	return 0;
}

/* Store one blob under its digest; fills the layer's entry and digest. */
static void store_blob(const uint8_t *p, size_t n, struct berth_layer *layer)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];

	SHA256(p, n, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(layer->digest, sizeof(layer->digest), "sha256:%s", hex);
	if (asprintf(&layer->entry, "blobs/sha256/%s", hex) < 0)
		abort();
	int fd = openat(blobs_fd, hex, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || berth_write_all(fd, p, n) < 0)
		abort();
	close(fd);
}

static size_t split_layers(const uint8_t *data, size_t size, struct berth_layer *layers)
{
	size_t n = 0;
	const uint8_t *p = data, *end = data + size;

	while (n < MAX_LAYERS) {
		const uint8_t *m = n + 1 < MAX_LAYERS
					   ? memmem(p, (size_t)(end - p), MARK, sizeof(MARK) - 1)
					   : NULL;
		store_blob(p, (size_t)((m ? m : end) - p), &layers[n++]);
		if (!m)
			break;
		p = m + sizeof(MARK) - 1;
	}
	return n;
}

/* Only "blobs" and "root" may exist in the scratch folder afterwards. */
static void check_contained(void)
{
	struct stat st;
	int fd = dup(scratch_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d)
		abort();
	rewinddir(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "blobs") && strcmp(de->d_name, "root"))
			abort(); /* written outside the rootfs */
	closedir(d);
	if (fstatat(AT_FDCWD, escape, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    fstatat(AT_FDCWD, "/tmp/berth-escape-marker", &st, AT_SYMLINK_NOFOLLOW) == 0)
		abort();
}

/* The merge into a SquashFS index accepts and refuses what the folder
 * does; only a file over RLIMIT_FSIZE (EFBIG) may fail one and not the
 * other, since the image is one file and the folder many. */
static void merge_agrees(const struct berth_image *img, int tree_rc,
			 const struct berth_err *tree_err)
{
	static const struct berth_sqfs_opts o = {.compressor = "lz4", .workers = 1,
						 .mkfs_time = 1};
	struct berth_flatten_stats stats;
	struct berth_sqfs_merge *m;
	struct berth_err err = { 0 };
	int fd = memfd_create("sqfs", MFD_CLOEXEC);

	if (fd < 0 || berth_sqfs_merge_new(fd, 0, &o, &m, &err) < 0)
		abort();
	int rc = berth_image_flatten_squashfs(img, m, &stats, &err);
	if (rc == 0)
		rc = berth_sqfs_merge_finish(m, NULL, &err);
	berth_sqfs_merge_free(m);
	close(fd);
	if (rc < 0 && !err.msg[0])
		abort();
	if (err.errnum == EFBIG || tree_err->errnum == EFBIG)
		return;
	if ((rc < 0) != (tree_rc < 0)) {
		fprintf(stderr, "folder: %s\nsquashfs: %s\n",
			tree_rc < 0 ? tree_err->msg : "ok", rc < 0 ? err.msg : "ok");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct berth_layer layers[MAX_LAYERS] = { 0 };
	struct berth_image img = { .layout_dir = scratch, .layers = layers };
	struct berth_flatten_stats stats;
	struct berth_err err = { 0 };
	char root[sizeof(scratch) + 8];

	if (size > (4u << 20))
		return 0;
	img.n_layers = split_layers(data, size, layers);
	snprintf(img.digest, sizeof(img.digest), "sha256:%064d", 0);
	snprintf(root, sizeof(root), "%s/root", scratch);
	if (mkdir(root, 0700) < 0)
		abort();
	int rc = berth_image_flatten(&img, root, &stats, &err);
	merge_agrees(&img, rc, &err);
	if (rc == 0)
		rc = berth_rootfs_add_mountpoints(root, &err);
	if (rc < 0 && !err.msg[0])
		abort(); /* a refusal must say why */
	check_contained();
	if (berth_remove_tree(scratch_fd, "root") < 0)
		abort();
	for (size_t i = 0; i < img.n_layers; i++) {
		unlinkat(blobs_fd, layers[i].entry + 13, 0);
		free(layers[i].entry);
	}
	return 0;
}
