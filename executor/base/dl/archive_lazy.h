/* berth: libarchive, loaded when first needed (as libcurl and libcrypto
 * are: curl_lazy.h, crypto_lazy.h).
 *
 * Only a cold start reads an archive, yet linking libarchive makes every
 * start map it with libxml2, ICU and libstdc++ (about 6 ms of a warm start
 * measured here).  Every libarchive call berth makes goes through this
 * table, filled by dlopen() on the first call.  Include this header instead
 * of <archive.h> and <archive_entry.h>.  (Generated from those headers'
 * prototypes for the functions berth uses; add a row to use another.) */
#ifndef BERTH_ARCHIVE_LAZY_H
#define BERTH_ARCHIVE_LAZY_H

#include <archive.h>
#include <archive_entry.h>

#include "conf/error.h"

struct berth_archive_fns {
	__LA_MODE_T (*f_archive_entry_filetype)(struct archive_entry *);
	void (*f_archive_entry_free)(struct archive_entry *);
	const char * (*f_archive_entry_hardlink)(struct archive_entry *);
	time_t (*f_archive_entry_mtime)(struct archive_entry *);
	long (*f_archive_entry_mtime_nsec)(struct archive_entry *);
	struct archive_entry * (*f_archive_entry_new)(void);
	const char * (*f_archive_entry_pathname)(struct archive_entry *);
	__LA_MODE_T (*f_archive_entry_perm)(struct archive_entry *);
	void (*f_archive_entry_set_filetype)(struct archive_entry *, unsigned int);
	void (*f_archive_entry_set_gid)(struct archive_entry *, la_int64_t);
	void (*f_archive_entry_set_mtime)(struct archive_entry *, time_t, long);
	void (*f_archive_entry_set_pathname)(struct archive_entry *, const char *);
	void (*f_archive_entry_set_perm)(struct archive_entry *, __LA_MODE_T);
	void (*f_archive_entry_set_size)(struct archive_entry *, la_int64_t);
	void (*f_archive_entry_set_symlink)(struct archive_entry *, const char *);
	void (*f_archive_entry_set_uid)(struct archive_entry *, la_int64_t);
	la_int64_t (*f_archive_entry_size)(struct archive_entry *);
	const char * (*f_archive_entry_symlink)(struct archive_entry *);
	int (*f_archive_errno)(struct archive *);
	const char * (*f_archive_error_string)(struct archive *);
	int (*f_archive_filter_count)(struct archive *);
	la_ssize_t (*f_archive_read_data)(struct archive *, void *, size_t);
	int (*f_archive_read_data_block)(struct archive *a, const void **buff, size_t *size, la_int64_t *offset);
	int (*f_archive_read_free)(struct archive *);
	struct archive * (*f_archive_read_new)(void);
	int (*f_archive_read_next_header)(struct archive *, struct archive_entry **);
	int (*f_archive_read_open)(struct archive *, void *_client_data, archive_open_callback *, archive_read_callback *, archive_close_callback *);
	int (*f_archive_read_open_filename)(struct archive *, const char *_filename, size_t _block_size);
	int (*f_archive_read_support_filter_bzip2)(struct archive *);
	int (*f_archive_read_support_filter_gzip)(struct archive *);
	int (*f_archive_read_support_filter_xz)(struct archive *);
	int (*f_archive_read_support_filter_zstd)(struct archive *);
	int (*f_archive_read_support_format_gnutar)(struct archive *);
	int (*f_archive_read_support_format_raw)(struct archive *);
	int (*f_archive_read_support_format_tar)(struct archive *);
	void (*f_archive_set_error)(struct archive *, int _err, const char *fmt, ...);
	int (*f_archive_write_close)(struct archive *);
	la_ssize_t (*f_archive_write_data)(struct archive *, const void *, size_t);
	int (*f_archive_write_free)(struct archive *);
	int (*f_archive_write_header)(struct archive *, struct archive_entry *);
	struct archive * (*f_archive_write_new)(void);
	int (*f_archive_write_open2)(struct archive *, void *, archive_open_callback *, archive_write_callback *, archive_close_callback *, archive_free_callback *);
	int (*f_archive_write_set_bytes_in_last_block)(struct archive *, int bytes_in_last_block);
	int (*f_archive_write_set_format_pax_restricted)(struct archive *);
};

/* Load libarchive (once): 0, or -1 with the reason and what to install.
 * Every entry point that reads or writes an archive (berth_tar_open, image
 * decompression, the flattener, the archive writer, save) calls this before
 * any archive_* call: the table stays empty when the library is missing. */
int berth_archive_load(struct berth_err *err);

/* The table, loaded on first use; its members are set only once
 * berth_archive_load() has succeeded. */
const struct berth_archive_fns *berth_archive(void);

/* Enable on a reader the decompressors berth reads (gzip, zstd, xz,
 * bzip2), each only where libarchive has it built in.  Never
 * archive_read_support_filter_all: for a format it lacks (lzop, lrzip,
 * grzip, or one of these when built without its library) libarchive would
 * run an external program, as root in `berth docker load`.  A filter whose
 * setup answers ARCHIVE_WARN is such a fallback and stays off. */
void berth_archive_read_filters(struct archive *a);

/* The name of a compression berth does not read when `head` (the first
 * bytes of a file, n of them) starts with its magic, else NULL. */
const char *berth_archive_unsupported_compression(const unsigned char *head, size_t n);

#define archive_entry_filetype(...) (berth_archive()->f_archive_entry_filetype(__VA_ARGS__))
#define archive_entry_free(...) (berth_archive()->f_archive_entry_free(__VA_ARGS__))
#define archive_entry_hardlink(...) (berth_archive()->f_archive_entry_hardlink(__VA_ARGS__))
#define archive_entry_mtime(...) (berth_archive()->f_archive_entry_mtime(__VA_ARGS__))
#define archive_entry_mtime_nsec(...) (berth_archive()->f_archive_entry_mtime_nsec(__VA_ARGS__))
#define archive_entry_new(...) (berth_archive()->f_archive_entry_new(__VA_ARGS__))
#define archive_entry_pathname(...) (berth_archive()->f_archive_entry_pathname(__VA_ARGS__))
#define archive_entry_perm(...) (berth_archive()->f_archive_entry_perm(__VA_ARGS__))
#define archive_entry_set_filetype(...) (berth_archive()->f_archive_entry_set_filetype(__VA_ARGS__))
#define archive_entry_set_gid(...) (berth_archive()->f_archive_entry_set_gid(__VA_ARGS__))
#define archive_entry_set_mtime(...) (berth_archive()->f_archive_entry_set_mtime(__VA_ARGS__))
#define archive_entry_set_pathname(...) (berth_archive()->f_archive_entry_set_pathname(__VA_ARGS__))
#define archive_entry_set_perm(...) (berth_archive()->f_archive_entry_set_perm(__VA_ARGS__))
#define archive_entry_set_size(...) (berth_archive()->f_archive_entry_set_size(__VA_ARGS__))
#define archive_entry_set_symlink(...) (berth_archive()->f_archive_entry_set_symlink(__VA_ARGS__))
#define archive_entry_set_uid(...) (berth_archive()->f_archive_entry_set_uid(__VA_ARGS__))
#define archive_entry_size(...) (berth_archive()->f_archive_entry_size(__VA_ARGS__))
#define archive_entry_symlink(...) (berth_archive()->f_archive_entry_symlink(__VA_ARGS__))
#define archive_errno(...) (berth_archive()->f_archive_errno(__VA_ARGS__))
#define archive_error_string(...) (berth_archive()->f_archive_error_string(__VA_ARGS__))
#define archive_filter_count(...) (berth_archive()->f_archive_filter_count(__VA_ARGS__))
#define archive_read_data(...) (berth_archive()->f_archive_read_data(__VA_ARGS__))
#define archive_read_data_block(...) (berth_archive()->f_archive_read_data_block(__VA_ARGS__))
#define archive_read_free(...) (berth_archive()->f_archive_read_free(__VA_ARGS__))
#define archive_read_new(...) (berth_archive()->f_archive_read_new(__VA_ARGS__))
#define archive_read_next_header(...) (berth_archive()->f_archive_read_next_header(__VA_ARGS__))
#define archive_read_open(...) (berth_archive()->f_archive_read_open(__VA_ARGS__))
#define archive_read_open_filename(...) (berth_archive()->f_archive_read_open_filename(__VA_ARGS__))
#define archive_read_support_filter_bzip2(...) (berth_archive()->f_archive_read_support_filter_bzip2(__VA_ARGS__))
#define archive_read_support_filter_gzip(...) (berth_archive()->f_archive_read_support_filter_gzip(__VA_ARGS__))
#define archive_read_support_filter_xz(...) (berth_archive()->f_archive_read_support_filter_xz(__VA_ARGS__))
#define archive_read_support_filter_zstd(...) (berth_archive()->f_archive_read_support_filter_zstd(__VA_ARGS__))
#define archive_read_support_format_gnutar(...) (berth_archive()->f_archive_read_support_format_gnutar(__VA_ARGS__))
#define archive_read_support_format_raw(...) (berth_archive()->f_archive_read_support_format_raw(__VA_ARGS__))
#define archive_read_support_format_tar(...) (berth_archive()->f_archive_read_support_format_tar(__VA_ARGS__))
#define archive_set_error(...) (berth_archive()->f_archive_set_error(__VA_ARGS__))
#define archive_write_close(...) (berth_archive()->f_archive_write_close(__VA_ARGS__))
#define archive_write_data(...) (berth_archive()->f_archive_write_data(__VA_ARGS__))
#define archive_write_free(...) (berth_archive()->f_archive_write_free(__VA_ARGS__))
#define archive_write_header(...) (berth_archive()->f_archive_write_header(__VA_ARGS__))
#define archive_write_new(...) (berth_archive()->f_archive_write_new(__VA_ARGS__))
#define archive_write_open2(...) (berth_archive()->f_archive_write_open2(__VA_ARGS__))
#define archive_write_set_bytes_in_last_block(...) (berth_archive()->f_archive_write_set_bytes_in_last_block(__VA_ARGS__))
#define archive_write_set_format_pax_restricted(...) (berth_archive()->f_archive_write_set_format_pax_restricted(__VA_ARGS__))

#endif
