/* berth: libsquashfs, loaded when first needed (as libarchive, libcurl and
 * libcrypto are: archive_lazy.h, curl_lazy.h, crypto_lazy.h).
 *
 * Only writing a SIF's squashfs (and looking a path up in one) needs it, yet linking it made every start
 * map it with liblzma, zlib, liblz4 and libzstd.  Every libsquashfs call
 * berth makes goes through this table, filled by dlopen() on the first
 * call; the members take their types from the library's own prototypes
 * (__typeof__), so nothing is copied that could drift.  Include this header
 * instead of the <sqfs/...> headers; add a row to use another function. */
#ifndef BERTH_SQUASHFS_LAZY_H
#define BERTH_SQUASHFS_LAZY_H

#include <sqfs/block.h>
#include <sqfs/block_processor.h>
#include <sqfs/block_writer.h>
#include <sqfs/compressor.h>
#include <sqfs/dir_reader.h>
#include <sqfs/dir_writer.h>
#include <sqfs/error.h>
#include <sqfs/frag_table.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/meta_writer.h>
#include <sqfs/super.h>

#include "conf/error.h"

#define BERTH_SQFS_FUNCTIONS(X) \
	X(sqfs_block_processor_append) \
	X(sqfs_block_processor_begin_file) \
	X(sqfs_block_processor_create_ex) \
	X(sqfs_block_processor_end_file) \
	X(sqfs_block_processor_finish) \
	X(sqfs_block_writer_create) \
	X(sqfs_compressor_config_init) \
	X(sqfs_compressor_create) \
	X(sqfs_compressor_name_from_id) \
	X(sqfs_dir_reader_create) \
	X(sqfs_dir_reader_find_by_path) \
	X(sqfs_dir_reader_get_root_inode) \
	X(sqfs_dir_writer_add_entry) \
	X(sqfs_dir_writer_begin) \
	X(sqfs_dir_writer_create) \
	X(sqfs_dir_writer_create_inode) \
	X(sqfs_dir_writer_end) \
	X(sqfs_dir_writer_get_dir_reference) \
	X(sqfs_dir_writer_get_size) \
	X(sqfs_free) \
	X(sqfs_frag_table_create) \
	X(sqfs_frag_table_write) \
	X(sqfs_id_table_create) \
	X(sqfs_id_table_id_to_index) \
	X(sqfs_id_table_write) \
	X(sqfs_inode_make_extended) \
	X(sqfs_meta_write_write_to_file) \
	X(sqfs_meta_writer_create) \
	X(sqfs_meta_writer_flush) \
	X(sqfs_meta_writer_get_position) \
	X(sqfs_meta_writer_write_inode) \
	X(sqfs_super_init) \
	X(sqfs_super_read) \
	X(sqfs_super_write)

struct berth_sqfs_fns {
#define BERTH_SQFS_MEMBER(fn) __typeof__(fn) *f_##fn;
	BERTH_SQFS_FUNCTIONS(BERTH_SQFS_MEMBER)
#undef BERTH_SQFS_MEMBER
};

/* Load libsquashfs (once): 0, or -1 with the reason and what to install.
 * The SquashFS writer calls this before any sqfs_* call (squashfs.c's
 * make_config, the first step of every image it writes; berth_sif_write
 * and berth_squashfs_write before they create their file, so that the
 * error is not worded as the file's): the table stays empty when the
 * library is missing. */
int berth_sqfs_load(struct berth_err *err);

/* The table, loaded on first use; its members are set only once
 * berth_sqfs_load() has succeeded. */
const struct berth_sqfs_fns *berth_sqfs(void);

#define sqfs_block_processor_append(...) (berth_sqfs()->f_sqfs_block_processor_append(__VA_ARGS__))
#define sqfs_block_processor_begin_file(...) (berth_sqfs()->f_sqfs_block_processor_begin_file(__VA_ARGS__))
#define sqfs_block_processor_create_ex(...) (berth_sqfs()->f_sqfs_block_processor_create_ex(__VA_ARGS__))
#define sqfs_block_processor_end_file(...) (berth_sqfs()->f_sqfs_block_processor_end_file(__VA_ARGS__))
#define sqfs_block_processor_finish(...) (berth_sqfs()->f_sqfs_block_processor_finish(__VA_ARGS__))
#define sqfs_block_writer_create(...) (berth_sqfs()->f_sqfs_block_writer_create(__VA_ARGS__))
#define sqfs_compressor_config_init(...) (berth_sqfs()->f_sqfs_compressor_config_init(__VA_ARGS__))
#define sqfs_compressor_create(...) (berth_sqfs()->f_sqfs_compressor_create(__VA_ARGS__))
#define sqfs_compressor_name_from_id(...) (berth_sqfs()->f_sqfs_compressor_name_from_id(__VA_ARGS__))
#define sqfs_dir_writer_add_entry(...) (berth_sqfs()->f_sqfs_dir_writer_add_entry(__VA_ARGS__))
#define sqfs_dir_writer_begin(...) (berth_sqfs()->f_sqfs_dir_writer_begin(__VA_ARGS__))
#define sqfs_dir_reader_create(...) (berth_sqfs()->f_sqfs_dir_reader_create(__VA_ARGS__))
#define sqfs_dir_reader_find_by_path(...) (berth_sqfs()->f_sqfs_dir_reader_find_by_path(__VA_ARGS__))
#define sqfs_dir_reader_get_root_inode(...) (berth_sqfs()->f_sqfs_dir_reader_get_root_inode(__VA_ARGS__))
#define sqfs_free(...) (berth_sqfs()->f_sqfs_free(__VA_ARGS__))
#define sqfs_dir_writer_create(...) (berth_sqfs()->f_sqfs_dir_writer_create(__VA_ARGS__))
#define sqfs_dir_writer_create_inode(...) (berth_sqfs()->f_sqfs_dir_writer_create_inode(__VA_ARGS__))
#define sqfs_dir_writer_end(...) (berth_sqfs()->f_sqfs_dir_writer_end(__VA_ARGS__))
#define sqfs_dir_writer_get_dir_reference(...) (berth_sqfs()->f_sqfs_dir_writer_get_dir_reference(__VA_ARGS__))
#define sqfs_dir_writer_get_size(...) (berth_sqfs()->f_sqfs_dir_writer_get_size(__VA_ARGS__))
#define sqfs_frag_table_create(...) (berth_sqfs()->f_sqfs_frag_table_create(__VA_ARGS__))
#define sqfs_frag_table_write(...) (berth_sqfs()->f_sqfs_frag_table_write(__VA_ARGS__))
#define sqfs_id_table_create(...) (berth_sqfs()->f_sqfs_id_table_create(__VA_ARGS__))
#define sqfs_id_table_id_to_index(...) (berth_sqfs()->f_sqfs_id_table_id_to_index(__VA_ARGS__))
#define sqfs_id_table_write(...) (berth_sqfs()->f_sqfs_id_table_write(__VA_ARGS__))
#define sqfs_inode_make_extended(...) (berth_sqfs()->f_sqfs_inode_make_extended(__VA_ARGS__))
#define sqfs_meta_write_write_to_file(...) (berth_sqfs()->f_sqfs_meta_write_write_to_file(__VA_ARGS__))
#define sqfs_meta_writer_create(...) (berth_sqfs()->f_sqfs_meta_writer_create(__VA_ARGS__))
#define sqfs_meta_writer_flush(...) (berth_sqfs()->f_sqfs_meta_writer_flush(__VA_ARGS__))
#define sqfs_meta_writer_get_position(...) (berth_sqfs()->f_sqfs_meta_writer_get_position(__VA_ARGS__))
#define sqfs_meta_writer_write_inode(...) (berth_sqfs()->f_sqfs_meta_writer_write_inode(__VA_ARGS__))
#define sqfs_super_init(...) (berth_sqfs()->f_sqfs_super_init(__VA_ARGS__))
#define sqfs_super_read(...) (berth_sqfs()->f_sqfs_super_read(__VA_ARGS__))
#define sqfs_super_write(...) (berth_sqfs()->f_sqfs_super_write(__VA_ARGS__))

#endif
