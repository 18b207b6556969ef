/* berth: looking a path up in a SquashFS image (squashfs.h), for a
 * runtime that must know whether the image has a folder before it runs. */
#define _GNU_SOURCE
#include "executor/convert/squashfs_int.h"

#include <errno.h>

struct reader {
	struct out_file file;
	sqfs_compressor_t *cmp;
	sqfs_dir_reader_t *dr;
	sqfs_inode_generic_t *root, *found;
};

static void reader_close(struct reader *r)
{
	if (r->found)
		sqfs_free(r->found);
	if (r->root)
		sqfs_free(r->root);
	sqfs_destroy(r->dr);
	sqfs_destroy(r->cmp);
}

static int lookup(struct reader *r, const char *path, struct berth_err *err)
{
	sqfs_super_t super;
	sqfs_compressor_config_t cfg;
	int rc;

	if ((rc = sqfs_super_read(&super, &r->file.base)) ||
	    (rc = sqfs_compressor_config_init(&cfg, (SQFS_COMPRESSOR)super.compression_id,
					      super.block_size, SQFS_COMP_FLAG_UNCOMPRESS)) ||
	    (rc = sqfs_compressor_create(&cfg, &r->cmp)))
		return berth_fail(err, r->file.io_errno, "cannot read the image's SquashFS: %s",
				  berth_sqfs_errstr(rc));
	if (!(r->dr = sqfs_dir_reader_create(&super, r->cmp, &r->file.base, 0)))
		return berth_fail(err, ENOMEM, "SquashFS directory reader");
	if ((rc = sqfs_dir_reader_get_root_inode(r->dr, &r->root)))
		return berth_fail(err, r->file.io_errno, "cannot read the image's root folder: %s",
				  berth_sqfs_errstr(rc));
	while (*path == '/')
		path++;
	if (!*path)
		return 1;
	rc = sqfs_dir_reader_find_by_path(r->dr, r->root, path, &r->found);
	if (rc == SQFS_ERROR_NO_ENTRY)
		return 0;
	if (rc == 0 || rc == SQFS_ERROR_NOT_DIR)
		return 1;
	return berth_fail(err, r->file.io_errno, "cannot look up %s in the image: %s", path,
			  berth_sqfs_errstr(rc));
}

int berth_squashfs_has(int fd, uint64_t start, uint64_t size, const char *path,
		       struct berth_err *err)
{
	struct reader r = {0};

	if (berth_sqfs_load(err) < 0)
		return -1;
	berth_sqfs_out_init(&r.file, fd, start);
	r.file.size = size;
	int rc = lookup(&r, path, err);
	reader_close(&r);
	return rc;
}
