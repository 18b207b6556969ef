/* berth: a SIF writer (Singularity Image Format, spec version 01, as
 * Apptainer 1.4 and SingularityCE read it).
 *
 * No C implementation of SIF exists; this one follows the layout of the Go
 * reference (github.com/apptainer/sif, pkg/sif: sif.go, create.go,
 * descriptor.go, arch.go): every integer little-endian, structures packed
 * as Go's encoding/binary writes them (a bool is one byte, no padding).
 *
 *   offset 0      global header, 128 bytes:
 *                   launch[32] "#!/usr/bin/env run-singularity\n", NUL padded
 *                   magic[10] "SIF_MAGIC\0", version[3] "01\0", arch[3] "02\0"
 *                   (amd64; "00" unknown), uuid[16],
 *                   int64 ctime, mtime, descriptors free, descriptors total,
 *                   descriptors offset, descriptors size, data offset,
 *                   data size (the padded sizes of all objects)
 *   offset 4096   48 descriptors of 585 bytes (28080 bytes):
 *                   int32 datatype, bool used, uint32 id, group id
 *                   (0xf0000000 | group), linked id, int64 offset, size,
 *                   size with padding (alignment gap before the object
 *                   included), ctime, mtime, uid, gid (both 0),
 *                   name[128], extra[384]
 *   offset 32176  data objects, in descriptor order
 *
 * A partition's extra field is int32 fstype (1 = squashfs), int32 parttype
 * (2 = primary system) and arch[3]; the header's arch is the primary
 * partition's.  `apptainer build` writes, in group 1: Def.FILE (0x4001),
 * JSON.Generic (0x4006) "inspect-metadata.json" and "oci-config.json", all
 * unaligned, then the squashfs partition (0x4004) aligned to 4096 bytes
 * and sized to a multiple of 4096 (mksquashfs's padding).  berth writes
 * the same shape.
 *
 * The squashfs image is streamed straight to its place in the file: the
 * small objects go first (their sizes are known), then the partition
 * offset follows from them, then libsquashfs writes the image there, and
 * only then are the descriptors and, last of all, the header (with the
 * magic) filled in with pwrite().  A file cut short by a crash or SIGKILL
 * has no SIF magic and no squashfs superblock, so nothing mistakes it for
 * an image; the caller publishes the finished file with rename(). */
#ifndef BERTH_SIF_H
#define BERTH_SIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf/error.h"
#include "executor/convert/squashfs.h"

#define BERTH_SIF_LAUNCH "#!/usr/bin/env run-singularity\n"
#define BERTH_SIF_MAGIC "SIF_MAGIC"
#define BERTH_SIF_VERSION "01"
#define BERTH_SIF_LAUNCH_LEN 32
#define BERTH_SIF_MAGIC_LEN 10
#define BERTH_SIF_VERSION_LEN 3
#define BERTH_SIF_ARCH_LEN 3
#define BERTH_SIF_HEADER_SIZE 128
#define BERTH_SIF_DESCR_SIZE 585
#define BERTH_SIF_DESCR_NAME_LEN 128
#define BERTH_SIF_DESCR_EXTRA_LEN 384
#define BERTH_SIF_DESCR_OFFSET 4096
#define BERTH_SIF_DESCR_TOTAL 48
#define BERTH_SIF_DATA_OFFSET (BERTH_SIF_DESCR_OFFSET + \
			       BERTH_SIF_DESCR_TOTAL * BERTH_SIF_DESCR_SIZE)
#define BERTH_SIF_PART_ALIGN 4096
#define BERTH_SIF_GROUP_MASK 0xf0000000u
#define BERTH_SIF_DEFAULT_GROUP 1u

/* Data object types (DataType). */
#define BERTH_SIF_DATA_DEFFILE 0x4001
#define BERTH_SIF_DATA_ENVVAR 0x4002
#define BERTH_SIF_DATA_LABELS 0x4003
#define BERTH_SIF_DATA_PARTITION 0x4004
#define BERTH_SIF_DATA_SIGNATURE 0x4005
#define BERTH_SIF_DATA_GENERIC_JSON 0x4006
#define BERTH_SIF_DATA_GENERIC 0x4007

/* Partition metadata. */
#define BERTH_SIF_FS_SQUASH 1
#define BERTH_SIF_PART_SYSTEM 1
#define BERTH_SIF_PART_PRIMSYS 2

struct berth_sif_header {
	char launch[BERTH_SIF_LAUNCH_LEN];
	char magic[BERTH_SIF_MAGIC_LEN];
	char version[BERTH_SIF_VERSION_LEN];
	char arch[BERTH_SIF_ARCH_LEN];
	uint8_t uuid[16];
	int64_t ctime, mtime;
	int64_t descr_free, descr_total;
	int64_t descr_offset, descr_size;
	int64_t data_offset, data_size;
};

struct berth_sif_descr {
	int32_t datatype;
	bool used;
	uint32_t id, group_id, linked_id;
	int64_t offset, size, size_padded;
	int64_t ctime, mtime, uid, gid;
	char name[BERTH_SIF_DESCR_NAME_LEN];
	uint8_t extra[BERTH_SIF_DESCR_EXTRA_LEN];
};

/* A small data object stored before the partition. */
struct berth_sif_object {
	int32_t datatype;    /* BERTH_SIF_DATA_* */
	const char *name;    /* descriptor name, at most 128 bytes; NULL = none */
	const void *data;
	size_t len;
};

struct berth_sif_opts {
	struct berth_sqfs_opts sqfs;
	/* Written in this order before the partition, unaligned, in group 1. */
	const struct berth_sif_object *objects;
	size_t n_objects;
	time_t time;           /* creation time of everything; 0 = now */
	const uint8_t *uuid;   /* 16 bytes; NULL = a random (version 4) UUID */
	const char *arch;      /* Go name ("amd64", "arm64", ...); NULL = this
				* machine's, as `apptainer build` records it */
	bool no_sync;          /* skip the fdatasync()s (tests, benchmarks) */
};

struct berth_sif_info {
	uint64_t part_offset;  /* where the squashfs image starts */
	uint64_t part_size;    /* its size, padded to 4096 bytes */
	uint64_t file_size;
	struct berth_sqfs_stats sqfs;
};

/* Write a SIF holding `objects` and the tree below `root_dir_fd` as its
 * primary squashfs partition into `out_fd` (read-write, seekable; any
 * earlier content is overwritten and the file truncated to the SIF's size).
 * `o` may be NULL; `info` may be NULL. */
int berth_sif_write_fd(int root_dir_fd, int out_fd, const struct berth_sif_opts *o,
		       struct berth_sif_info *info, struct berth_err *err);

/* The same into the new file `out_path` (O_EXCL, mode 0755 as `apptainer
 * build` creates it, less the umask), which is removed again on failure.
 * The caller names a temporary path and publishes it with rename(). */
int berth_sif_write(const char *rootfs_dir, const char *out_path,
		    const struct berth_sif_opts *o, struct berth_sif_info *info,
		    struct berth_err *err);

/* The same with the partition written by `part` (for instance a SquashFS
 * merged straight from an image's layers, squashfs.h): it writes one
 * SquashFS image with options o into out_fd at offset and fills *st. */
typedef int berth_sif_part_fn(void *arg, int out_fd, off_t offset,
			      const struct berth_sqfs_opts *o,
			      struct berth_sqfs_stats *st, struct berth_err *err);
int berth_sif_write_part_fd(berth_sif_part_fn *part, void *arg, int out_fd,
			    const struct berth_sif_opts *o, struct berth_sif_info *info,
			    struct berth_err *err);
int berth_sif_write_part(berth_sif_part_fn *part, void *arg, const char *out_path,
			 const struct berth_sif_opts *o, struct berth_sif_info *info,
			 struct berth_err *err);

/* SIF arch code ("02" for "amd64") of a Go architecture name; NULL when
 * SIF has none for it.  berth_sif_host_arch(): this machine's Go name. */
const char *berth_sif_arch_code(const char *goarch);
const char *berth_sif_host_arch(void);

/* Encoding and decoding of the on-disk structures (exposed for the tests
 * and for reading a SIF a user hands in). */
void berth_sif_header_encode(const struct berth_sif_header *h,
			     uint8_t out[BERTH_SIF_HEADER_SIZE]);
void berth_sif_header_decode(const uint8_t in[BERTH_SIF_HEADER_SIZE],
			     struct berth_sif_header *h);
void berth_sif_descr_encode(const struct berth_sif_descr *d,
			    uint8_t out[BERTH_SIF_DESCR_SIZE]);
void berth_sif_descr_decode(const uint8_t in[BERTH_SIF_DESCR_SIZE],
			    struct berth_sif_descr *d);

/* Read and check the header of an open SIF (magic, version, descriptor
 * table inside the file) and find its primary system partition.  On
 * success *part holds its descriptor; fstype etc. via the _partition_ call. */
int berth_sif_read(int fd, struct berth_sif_header *h, struct berth_sif_descr *part,
		   struct berth_err *err);

/* A partition descriptor's metadata. */
void berth_sif_partition_meta(const struct berth_sif_descr *d, int32_t *fstype,
			      int32_t *parttype, char arch[BERTH_SIF_ARCH_LEN]);

/* Where the SquashFS system partition of the SIF at `path` starts (for
 * squashfuse -o offset=N); -1 with err for a file that is none. */
int berth_sif_squashfs_offset(const char *path, uint64_t *offset, struct berth_err *err);

#endif
