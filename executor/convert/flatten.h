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

#endif
