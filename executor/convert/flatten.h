/* berth: an image's layers merged into one folder, top-down with OCI
 * whiteout rules, never writing outside it (flatten.c). */
#ifndef BERTH_FLATTEN_H
#define BERTH_FLATTEN_H

#include <stdint.h>

#include "conf/error.h"
#include "executor/source/image.h"

/* Counters reported after flattening. */
struct berth_flatten_stats {
	uint64_t entries;
	uint64_t bytes;
	uint64_t skipped_devices; /* device nodes, fifos, sockets */
	uint64_t dropped_setid;   /* setuid/setgid bits removed */
	uint64_t whiteouts;
};

/* Apply every layer of `img`, in order, into the empty folder `root_dir`
 * (created by the caller).  Never writes outside root_dir. */
int berth_image_flatten(const struct berth_image *img, const char *root_dir,
			struct berth_flatten_stats *stats,
			struct berth_err *err);

/* The same merge into the index of a SquashFS image (squashfs.h), with
 * no file created: what berth_image_flatten would put in the folder,
 * entry for entry (modes, symlinks, hard links as one inode, whiteouts),
 * and refused where it refuses.  A folder keeps the mtime its entry gives
 * (on disk the kernel moves it as children arrive); a folder made for a
 * missing parent, as on disk, gets the time of the conversion. */
struct berth_sqfs_merge;
int berth_image_flatten_squashfs(const struct berth_image *img, struct berth_sqfs_merge *m,
				 struct berth_flatten_stats *stats, struct berth_err *err);

/* The merge written as one SquashFS file `out_path` (new; removed again on
 * failure), with the mount points ch-run needs: the charliecloud runtime's
 * image under ImageStorage=squashfs.  Its superblock is written last, so a
 * file cut short is no image. */
int berth_image_squashfs_file(const struct berth_image *img, const char *out_path,
			      struct berth_flatten_stats *stats, struct berth_err *err);

#endif
