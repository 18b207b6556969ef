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
		{"archive_read_support_filter_bzip2", offsetof(struct berth_archive_fns, f_archive_read_support_filter_bzip2)},
		{"archive_read_support_filter_gzip", offsetof(struct berth_archive_fns, f_archive_read_support_filter_gzip)},
		{"archive_read_support_filter_xz", offsetof(struct berth_archive_fns, f_archive_read_support_filter_xz)},
		{"archive_read_support_filter_zstd", offsetof(struct berth_archive_fns, f_archive_read_support_filter_zstd)},
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

/* The decompressors berth reads, by number. */
#define N_FILTERS 4

static int enable_filter(struct archive *a, unsigned i)
{
	switch (i) {
	case 0: return table.f_archive_read_support_filter_gzip(a);
	case 1: return table.f_archive_read_support_filter_zstd(a);
	case 2: return table.f_archive_read_support_filter_xz(a);
	case 3: return table.f_archive_read_support_filter_bzip2(a);
	default: return ARCHIVE_FATAL;
	}
}

/* Which filters are built in, asked once on a scratch reader: a filter
 * cannot be taken back from a reader once enabled. */
static unsigned builtin_filters;

static void probe_filters(void)
{
	for (unsigned i = 0; i < N_FILTERS; i++) {
		struct archive *probe = table.f_archive_read_new();
		if (!probe)
			continue;
		if (enable_filter(probe, i) == ARCHIVE_OK)
			builtin_filters |= 1u << i;
		table.f_archive_read_free(probe);
	}
}

void berth_archive_read_filters(struct archive *a)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, probe_filters);
	for (unsigned i = 0; i < N_FILTERS; i++)
		if (builtin_filters & (1u << i))
			enable_filter(a, i);
}

const char *berth_archive_unsupported_compression(const unsigned char *head, size_t n)
{
	static const struct {
		const char *name;
		const char *magic;
		size_t len;
	} known[] = {
		{"lzop", "\x89LZO\0\r\n\x1a\n", 9}, {"lz4", "\x04\x22\x4d\x18", 4},
		{"lzip", "LZIP", 4},                   {"lrzip", "LRZI", 4},
		{"grzip", "GRZipII", 7},               {"compress (.Z)", "\x1f\x9d", 2},
		{"lzma", "\x5d\0\0", 3},
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
		if (n >= known[i].len && !memcmp(head, known[i].magic, known[i].len))
			return known[i].name;
	return NULL;
}
