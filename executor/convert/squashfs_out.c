/* berth: the SquashFS writer's output, a sqfs_file_t on a file
 * descriptor at an offset (a SIF partition starts further in), and
 * libsquashfs's failures reported, an output I/O error with the errno the
 * output saw (see squashfs_int.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/convert/squashfs_int.h"

static void out_destroy(sqfs_object_t *obj)
{
	(void)obj; /* embedded in the writer, freed with it */
}

static int out_read_at(sqfs_file_t *file, sqfs_u64 off, void *buf, size_t size)
{
	struct out_file *f = (struct out_file *)file;

	if (off + size < off || off + size > f->size)
		return SQFS_ERROR_OUT_OF_BOUNDS;
	ssize_t n = berth_pread_full(f->fd, buf, size, (off_t)(f->start + off));
	if (n < 0 || (size_t)n < size) {
		if (!f->io_errno)
			f->io_errno = n < 0 ? errno : EIO;
		return SQFS_ERROR_IO;
	}
	return 0;
}

int berth_sqfs_out_write_at(sqfs_file_t *file, sqfs_u64 off, const void *buf,
			    size_t size)
{
	struct out_file *f = (struct out_file *)file;

	for (size_t done = 0; done < size;) {
		ssize_t n = pwrite(f->fd, (const char *)buf + done, size - done,
				   (off_t)(f->start + off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!f->io_errno)
				f->io_errno = n < 0 ? errno : EIO;
			return SQFS_ERROR_IO;
		}
		done += (size_t)n;
	}
	if (off + size > f->size)
		f->size = off + size;
	return 0;
}

static sqfs_u64 out_get_size(const sqfs_file_t *file)
{
	return ((const struct out_file *)file)->size;
}

static int out_truncate(sqfs_file_t *file, sqfs_u64 size)
{
	struct out_file *f = (struct out_file *)file;

	if (ftruncate(f->fd, (off_t)(f->start + size)) < 0) {
		if (!f->io_errno)
			f->io_errno = errno;
		return SQFS_ERROR_IO;
	}
	f->size = size;
	return 0;
}

void berth_sqfs_out_init(struct out_file *f, int fd, uint64_t start)
{
	*f = (struct out_file){
		.base = {
			.base = {.destroy = out_destroy, .copy = NULL},
			.read_at = out_read_at,
			.write_at = berth_sqfs_out_write_at,
			.get_size = out_get_size,
			.truncate = out_truncate,
		},
		.fd = fd,
		.start = start,
	};
}

const char *berth_sqfs_errstr(int code)
{
	switch (code) {
	case SQFS_ERROR_ALLOC: return "out of memory";
	case SQFS_ERROR_IO: return "input/output error";
	case SQFS_ERROR_COMPRESSOR: return "compressor failure";
	case SQFS_ERROR_INTERNAL: return "internal libsquashfs error";
	case SQFS_ERROR_CORRUPTED: return "data corrupted";
	case SQFS_ERROR_UNSUPPORTED: return "unsupported by this libsquashfs";
	case SQFS_ERROR_OVERFLOW: return "value too large for SquashFS";
	case SQFS_ERROR_OUT_OF_BOUNDS: return "offset out of bounds";
	case SQFS_ERROR_ARG_INVALID: return "invalid argument";
	case SQFS_ERROR_SEQUENCE: return "calls out of sequence";
	default: return "libsquashfs error";
	}
}

/* Report a libsquashfs failure; an output I/O error carries its errno. */
int berth_sqfs_fail(struct writer *w, struct berth_err *err, int code,
		    const char *what)
{
	if (code == SQFS_ERROR_IO && w->out.io_errno)
		return berth_fail(err, w->out.io_errno,
				  "SquashFS image: %s: cannot write the image", what);
	if (code == SQFS_ERROR_ALLOC)
		return berth_fail(err, ENOMEM, "SquashFS image: %s", what);
	return berth_fail(err, 0, "SquashFS image: %s: %s (libsquashfs error %d)",
			  what, berth_sqfs_errstr(code), code);
}
