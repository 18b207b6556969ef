#define _GNU_SOURCE
#include "executor/base/dl/archive_lazy.h"
#include "executor/base/dl/lazy.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define LIBARCHIVE "libarchive.so.13"

static struct berth_archive_fns table;
static char load_error[512];

static void load_once(void)
{
	static const struct berth_lazy_sym symbols[] = {
		{"archive_entry_filetype", offsetof(struct berth_archive_fns, f_archive_entry_filetype)},
		{"archive_entry_free", offsetof(struct berth_archive_fns, f_archive_entry_free)},
		{"archive_entry_hardlink", offsetof(struct berth_archive_fns, f_archive_entry_hardlink)},
		{"archive_entry_mtime", offsetof(struct berth_archive_fns, f_archive_entry_mtime)},
		{"archive_entry_mtime_nsec", offsetof(struct berth_archive_fns, f_archive_entry_mtime_nsec)},
		{"archive_entry_new", offsetof(struct berth_archive_fns, f_archive_entry_new)},
		{"archive_entry_pathname", offsetof(struct berth_archive_fns, f_archive_entry_pathname)},
		{"archive_entry_perm", offsetof(struct berth_archive_fns, f_archive_entry_perm)},
		{"archive_entry_set_filetype", offsetof(struct berth_archive_fns, f_archive_entry_set_filetype)},
		{"archive_entry_set_gid", offsetof(struct berth_archive_fns, f_archive_entry_set_gid)},
		{"archive_entry_set_mtime", offsetof(struct berth_archive_fns, f_archive_entry_set_mtime)},
		{"archive_entry_set_pathname", offsetof(struct berth_archive_fns, f_archive_entry_set_pathname)},
		{"archive_entry_set_perm", offsetof(struct berth_archive_fns, f_archive_entry_set_perm)},
		{"archive_entry_set_size", offsetof(struct berth_archive_fns, f_archive_entry_set_size)},
		{"archive_entry_set_symlink", offsetof(struct berth_archive_fns, f_archive_entry_set_symlink)},
		{"archive_entry_set_uid", offsetof(struct berth_archive_fns, f_archive_entry_set_uid)},
		{"archive_entry_size", offsetof(struct berth_archive_fns, f_archive_entry_size)},
		{"archive_entry_symlink", offsetof(struct berth_archive_fns, f_archive_entry_symlink)},
		{"archive_errno", offsetof(struct berth_archive_fns, f_archive_errno)},
		{"archive_error_string", offsetof(struct berth_archive_fns, f_archive_error_string)},
		{"archive_filter_count", offsetof(struct berth_archive_fns, f_archive_filter_count)},
		{"archive_read_data", offsetof(struct berth_archive_fns, f_archive_read_data)},
		{"archive_read_data_block", offsetof(struct berth_archive_fns, f_archive_read_data_block)},
		{"archive_read_free", offsetof(struct berth_archive_fns, f_archive_read_free)},
		{"archive_read_new", offsetof(struct berth_archive_fns, f_archive_read_new)},
		{"archive_read_next_header", offsetof(struct berth_archive_fns, f_archive_read_next_header)},
		{"archive_read_open", offsetof(struct berth_archive_fns, f_archive_read_open)},
		{"archive_read_open_filename", offsetof(struct berth_archive_fns, f_archive_read_open_filename)},
		{"archive_read_support_filter_all", offsetof(struct berth_archive_fns, f_archive_read_support_filter_all)},
		{"archive_read_support_format_gnutar", offsetof(struct berth_archive_fns, f_archive_read_support_format_gnutar)},
		{"archive_read_support_format_raw", offsetof(struct berth_archive_fns, f_archive_read_support_format_raw)},
		{"archive_read_support_format_tar", offsetof(struct berth_archive_fns, f_archive_read_support_format_tar)},
		{"archive_set_error", offsetof(struct berth_archive_fns, f_archive_set_error)},
		{"archive_write_close", offsetof(struct berth_archive_fns, f_archive_write_close)},
		{"archive_write_data", offsetof(struct berth_archive_fns, f_archive_write_data)},
		{"archive_write_free", offsetof(struct berth_archive_fns, f_archive_write_free)},
		{"archive_write_header", offsetof(struct berth_archive_fns, f_archive_write_header)},
		{"archive_write_new", offsetof(struct berth_archive_fns, f_archive_write_new)},
		{"archive_write_open2", offsetof(struct berth_archive_fns, f_archive_write_open2)},
		{"archive_write_set_bytes_in_last_block", offsetof(struct berth_archive_fns, f_archive_write_set_bytes_in_last_block)},
		{"archive_write_set_format_pax_restricted", offsetof(struct berth_archive_fns, f_archive_write_set_format_pax_restricted)},
	};
	struct berth_archive_fns fns;

	/* keep the table empty unless every symbol is there: berth_archive_load
	 * tells a loaded library by its first member */
	if (berth_lazy_fill(LIBARCHIVE, symbols, sizeof(symbols) / sizeof(*symbols), &fns,
			    load_error, sizeof(load_error)) < 0)
		return;
	table = fns;
}

int berth_archive_load(struct berth_err *err)
{
	(void)berth_archive();
	if (!table.f_archive_entry_filetype)
		return berth_fail(err, 0, "cannot load %s (%s); install libarchive13", LIBARCHIVE,
				  load_error[0] ? load_error : "unknown error");
	return 0;
}

const struct berth_archive_fns *berth_archive(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, load_once);
	return &table;
}
