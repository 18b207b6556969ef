/* Unit tests for executor/convert/sif.c (every SIF field written, checked
 * at its byte offset) and executor/convert/sing_meta.c (the /.singularity.d
 * files and SIF objects, checked against what Apptainer 1.4.5's `apptainer
 * build` made from the same image configs; the expected SHA-256 sums were
 * taken from real builds, see the report of the change that added this
 * file). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqfs/compressor.h>
#include <sqfs/data_reader.h>
#include <sqfs/dir_reader.h>
#include <sqfs/error.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/super.h>

#include "executor/base/fs.h"
#include "executor/source/image.h"
#include "executor/convert/sif.h"
#include "executor/convert/sing_meta.h"
#include "helpers.h"

#define T0 1795985414 /* Sunday 29 November 2026, 20:50:14 UTC */

static int setup(void **state)
{
	return fixture_setup(state, "/tmp/berth-test-sif-XXXXXX", "rootfs", "out.sif");
}

static int group_setup(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1); /* the build-date label is local time */
	tzset();
	return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put(const char *dir, const char *rel, const char *text, mode_t mode)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void small_tree(const char *t)
{
	char path[PATH_MAX];

	put(t, "hello", "hello, world\n", 0644);
	snprintf(path, sizeof(path), "%s/bin", t);
	assert_int_equal(mkdir(path, 0755), 0);
	put(t, "bin/tool", "#!/bin/sh\necho tool\n", 0755);
	snprintf(path, sizeof(path), "%s/sh", t);
	assert_int_equal(symlink("bin/tool", path), 0);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

#define assert_sha256(str, hex)                                   \
	do {                                                      \
		char h_[65];                                      \
		sha256_hex((str), strlen(str), h_);               \
		assert_string_equal(h_, (hex));                   \
	} while (0)

/* ---- the on-disk structures ------------------------------------------------------ */

static void test_header_encoding(void **state)
{
	struct berth_sif_header h = {
		.ctime = 0x0102030405060708, .mtime = 0x1112131415161718,
		.descr_free = 44, .descr_total = 48, .descr_offset = 4096,
		.descr_size = 28080, .data_offset = 32176, .data_size = 0x7766554433,
	}, back;
	uint8_t raw[BERTH_SIF_HEADER_SIZE];

	(void)state;
	memcpy(h.launch, BERTH_SIF_LAUNCH, strlen(BERTH_SIF_LAUNCH));
	memcpy(h.magic, "SIF_MAGIC", 9);
	memcpy(h.version, "01", 2);
	memcpy(h.arch, "02", 2);
	for (int i = 0; i < 16; i++)
		h.uuid[i] = (uint8_t)(0xA0 + i);
	berth_sif_header_encode(&h, raw);
	assert_int_equal(BERTH_SIF_HEADER_SIZE, 128);
	assert_memory_equal(raw, "#!/usr/bin/env run-singularity\n\0", 32);
	assert_memory_equal(raw + 32, "SIF_MAGIC\0", 10);
	assert_memory_equal(raw + 42, "01\0", 3);
	assert_memory_equal(raw + 45, "02\0", 3);
	assert_int_equal(raw[48], 0xA0);
	assert_int_equal(raw[63], 0xAF);
	assert_true(le64(raw + 64) == 0x0102030405060708ull);
	assert_int_equal(raw[64], 0x08); /* little-endian */
	assert_true(le64(raw + 72) == 0x1112131415161718ull);
	assert_true(le64(raw + 80) == 44);
	assert_true(le64(raw + 88) == 48);
	assert_true(le64(raw + 96) == 4096);
	assert_true(le64(raw + 104) == 28080);
	assert_true(le64(raw + 112) == 32176);
	assert_true(le64(raw + 120) == 0x7766554433ull);
	berth_sif_header_decode(raw, &back);
	assert_memory_equal(&h.launch, &back.launch, sizeof(h.launch));
	assert_memory_equal(h.uuid, back.uuid, 16);
	assert_true(back.ctime == h.ctime && back.data_size == h.data_size &&
		    back.descr_free == 44 && back.data_offset == 32176);
}

static void test_descriptor_encoding(void **state)
{
	struct berth_sif_descr d = {
		.datatype = BERTH_SIF_DATA_PARTITION, .used = true, .id = 4,
		.group_id = 0xf0000001u, .linked_id = 7, .offset = 40960,
		.size = 1044480, .size_padded = 1048454, .ctime = T0, .mtime = T0 + 1,
		.uid = 0, .gid = 0,
	}, back;
	uint8_t raw[BERTH_SIF_DESCR_SIZE];
	int32_t fstype, parttype;
	char arch[3];

	(void)state;
	memcpy(d.name, "inspect-metadata.json", 21);
	d.extra[0] = 1;
	d.extra[4] = 2;
	memcpy(d.extra + 8, "02", 2);
	berth_sif_descr_encode(&d, raw);
	assert_int_equal(BERTH_SIF_DESCR_SIZE, 585);
	assert_int_equal(le32(raw + 0), 0x4004);
	assert_int_equal(raw[4], 1);                  /* used: one byte */
	assert_int_equal(le32(raw + 5), 4);           /* id */
	assert_int_equal(le32(raw + 9), 0xf0000001u); /* group id */
	assert_int_equal(le32(raw + 13), 7);          /* linked id */
	assert_true(le64(raw + 17) == 40960);
	assert_true(le64(raw + 25) == 1044480);
	assert_true(le64(raw + 33) == 1048454);
	assert_true(le64(raw + 41) == T0);
	assert_true(le64(raw + 49) == T0 + 1);
	assert_true(le64(raw + 57) == 0 && le64(raw + 65) == 0);
	assert_memory_equal(raw + 73, "inspect-metadata.json", 22);
	assert_true(all_zero(raw + 73 + 22, 128 - 22));
	assert_int_equal(le32(raw + 201), 1);
	assert_int_equal(le32(raw + 205), 2);
	assert_memory_equal(raw + 209, "02\0", 3);
	assert_true(all_zero(raw + 212, 585 - 212));
	berth_sif_descr_decode(raw, &back);
	assert_int_equal(back.datatype, BERTH_SIF_DATA_PARTITION);
	assert_true(back.used);
	assert_true(back.offset == 40960 && back.size_padded == 1048454);
	berth_sif_partition_meta(&back, &fstype, &parttype, arch);
	assert_int_equal(fstype, BERTH_SIF_FS_SQUASH);
	assert_int_equal(parttype, BERTH_SIF_PART_PRIMSYS);
	assert_memory_equal(arch, "02\0", 3);
}

static void test_arch_codes(void **state)
{
	(void)state;
	assert_string_equal(berth_sif_arch_code("386"), "01");
	assert_string_equal(berth_sif_arch_code("amd64"), "02");
	assert_string_equal(berth_sif_arch_code("arm"), "03");
	assert_string_equal(berth_sif_arch_code("arm64"), "04");
	assert_string_equal(berth_sif_arch_code("ppc64le"), "06");
	assert_string_equal(berth_sif_arch_code("mips64le"), "10");
	assert_string_equal(berth_sif_arch_code("s390x"), "11");
	assert_null(berth_sif_arch_code("riscv64"));
	assert_null(berth_sif_arch_code(NULL));
#if defined(__x86_64__)
	assert_string_equal(berth_sif_host_arch(), "amd64");
#endif
	assert_non_null(berth_sif_arch_code(berth_sif_host_arch()));
}

/* ---- a whole file --------------------------------------------------------------- */

static const char deffile[] = "bootstrap: docker-archive\nfrom: /x.tar\n\n";
static const char inspect[] = "{\"data\":{}}";
static const char ocicfg[] = "{\"Cmd\":[\"/bin/sh\"]}";

static const struct berth_sif_object objects[] = {
	{BERTH_SIF_DATA_DEFFILE, NULL, deffile, sizeof(deffile) - 1},
	{BERTH_SIF_DATA_GENERIC_JSON, "inspect-metadata.json", inspect, sizeof(inspect) - 1},
	{BERTH_SIF_DATA_GENERIC_JSON, "oci-config.json", ocicfg, sizeof(ocicfg) - 1},
};

static const uint8_t fixed_uuid[16] = {0xdf, 0xe4, 0x6c, 0x00, 0xfa, 0x2a, 0x45, 0xc8,
				       0x97, 0xb6, 0x7b, 0x96, 0x82, 0x23, 0x2e, 0xcf};

static void test_layout(void **state)
{
	struct fixture *fx = *state;
	struct berth_sif_info info;
	struct berth_sif_opts o = {
		.objects = objects, .n_objects = 3, .time = T0, .uuid = fixed_uuid,
		.arch = "amd64", .sqfs = {.mkfs_time = T0},
	};
	size_t len;

	small_tree(fx->tree);
	if (berth_sif_write(fx->tree, fx->out, &o, &info, &fx->err) < 0)
		fail_msg("%s", fx->err.msg);
	uint8_t *f = read_all(fx->out, &len);
	struct stat st;
	assert_int_equal(stat(fx->out, &st), 0);
	assert_int_equal(st.st_mode & 0111, 0111 & ~umask(umask(0))); /* 0755 less umask */

	/* global header */
	assert_memory_equal(f, "#!/usr/bin/env run-singularity\n", 31);
	assert_int_equal(f[31], 0);
	assert_memory_equal(f + 32, "SIF_MAGIC\0", 10);
	assert_memory_equal(f + 42, "01\0", 3);
	assert_memory_equal(f + 45, "02\0", 3);
	assert_memory_equal(f + 48, fixed_uuid, 16);
	assert_true(le64(f + 64) == T0);                 /* created */
	assert_true(le64(f + 72) == T0);                 /* modified */
	assert_true(le64(f + 80) == 48 - 4);             /* descriptors free */
	assert_true(le64(f + 88) == 48);                 /* descriptors total */
	assert_true(le64(f + 96) == 4096);               /* descriptors offset */
	assert_true(le64(f + 104) == 48 * 585);          /* descriptors size */
	assert_true(le64(f + 112) == 32176);             /* data offset */
	assert_true(all_zero(f + 128, 4096 - 128));

	/* the three objects, back to back from 32176, unaligned */
	uint64_t off = 32176;
	for (int i = 0; i < 3; i++) {
		const uint8_t *d = f + 4096 + (size_t)i * 585;
		assert_int_equal(le32(d), (uint32_t)objects[i].datatype);
		assert_int_equal(d[4], 1);
		assert_int_equal(le32(d + 5), (uint32_t)i + 1);
		assert_int_equal(le32(d + 9), 0xf0000001u);
		assert_int_equal(le32(d + 13), 0);
		assert_true(le64(d + 17) == off);
		assert_true(le64(d + 25) == objects[i].len);
		assert_true(le64(d + 33) == objects[i].len);
		assert_true(le64(d + 41) == T0 && le64(d + 49) == T0);
		assert_true(le64(d + 57) == 0 && le64(d + 65) == 0);
		const char *name = objects[i].name ? objects[i].name : "";
		assert_memory_equal(d + 73, name, strlen(name));
		assert_true(all_zero(d + 73 + strlen(name), 128 - strlen(name)));
		assert_true(all_zero(d + 201, 384));
		assert_memory_equal(f + off, objects[i].data, objects[i].len);
		off += objects[i].len;
	}

	/* the partition: page aligned, padded to 4096, squashfs, primary */
	const uint8_t *p = f + 4096 + 3 * 585;
	uint64_t part = (off + 4095) & ~4095ull;
	assert_int_equal(le32(p), 0x4004);
	assert_int_equal(p[4], 1);
	assert_int_equal(le32(p + 5), 4);
	assert_int_equal(le32(p + 9), 0xf0000001u);
	assert_int_equal(le32(p + 13), 0);
	assert_true(le64(p + 17) == part);
	assert_true(part % 4096 == 0);
	assert_true(le64(p + 25) == info.part_size);
	assert_true(info.part_size % 4096 == 0);
	assert_true(le64(p + 33) == part - off + info.part_size); /* with the gap */
	assert_true(le64(p + 41) == T0 && le64(p + 49) == T0);
	assert_true(all_zero(p + 73, 128));            /* no name */
	assert_int_equal(le32(p + 201), 1);            /* fstype squashfs */
	assert_int_equal(le32(p + 205), 2);            /* parttype primary system */
	assert_memory_equal(p + 209, "02\0", 3);       /* arch amd64 */
	assert_true(all_zero(p + 212, 585 - 212));
	assert_true(info.part_offset == part);
	assert_true(all_zero(f + off, part - off));     /* the gap */

	/* unused descriptors are zero; data size adds up; nothing after it */
	assert_true(all_zero(f + 4096 + 4 * 585, 44 * 585));
	uint64_t data_size = le64(f + 120);
	assert_true(data_size == objects[0].len + objects[1].len + objects[2].len +
				 (part - off) + info.part_size);
	assert_true(32176 + data_size == len);
	assert_true(info.file_size == len);
	assert_true(part + info.part_size == len);

	/* the squashfs superblock is where the descriptor says */
	const uint8_t *sb = f + part;
	assert_memory_equal(sb, "hsqs", 4);
	assert_int_equal(le32(sb + 4), info.sqfs.inodes);       /* inode count */
	assert_int_equal(le32(sb + 8), T0);                     /* mkfs time */
	assert_int_equal(le32(sb + 12), 131072);                /* block size */
	assert_int_equal(sb[20], SQFS_COMP_ZSTD);               /* compression */
	assert_int_equal(sb[28] | sb[29] << 8, 4);              /* major */
	assert_int_equal(sb[30] | sb[31] << 8, 0);              /* minor */
	assert_true(le64(sb + 40) == info.sqfs.bytes_used);
	assert_true(info.sqfs.bytes_used <= info.part_size &&
		    info.sqfs.bytes_used > info.part_size - 4096);
	free(f);

	/* and the reader agrees */
	struct berth_sif_header h;
	struct berth_sif_descr d;
	int fd = open(fx->out, O_RDONLY);
	assert_int_equal(berth_sif_read(fd, &h, &d, &fx->err), 0);
	assert_true(d.offset == (int64_t)part && d.size == (int64_t)info.part_size);
	assert_int_equal(d.id, 4);
	close(fd);
}

/* A squashfs file that starts at an offset of a SIF, for libsquashfs. */
struct part_file {
	sqfs_file_t base;
	int fd;
	uint64_t off, size;
};

static void pf_destroy(sqfs_object_t *o)
{
	(void)o;
}

static int pf_read_at(sqfs_file_t *f, sqfs_u64 off, void *buf, size_t n)
{
	struct part_file *p = (struct part_file *)f;

	if (off + n > p->size)
		return SQFS_ERROR_OUT_OF_BOUNDS;
	return pread(p->fd, buf, n, (off_t)(p->off + off)) == (ssize_t)n ? 0 : SQFS_ERROR_IO;
}

static int pf_write_at(sqfs_file_t *f, sqfs_u64 off, const void *buf, size_t n)
{
	(void)f, (void)off, (void)buf, (void)n;
	return SQFS_ERROR_IO;
}

static sqfs_u64 pf_size(const sqfs_file_t *f)
{
	return ((const struct part_file *)f)->size;
}

static int pf_truncate(sqfs_file_t *f, sqfs_u64 n)
{
	(void)f, (void)n;
	return SQFS_ERROR_IO;
}

static void test_partition_readable(void **state)
{
	struct fixture *fx = *state;
	struct berth_sif_info info;
	struct berth_sif_opts o = {.objects = objects, .n_objects = 3,
				   .sqfs = {.compressor = "gzip"}};

	small_tree(fx->tree);
	assert_int_equal(berth_sif_write(fx->tree, fx->out, &o, &info, &fx->err), 0);
	int fd = open(fx->out, O_RDONLY);
	assert_true(fd >= 0);
	struct part_file pf = {
		.base = {.base = {.destroy = pf_destroy}, .read_at = pf_read_at,
			 .write_at = pf_write_at, .get_size = pf_size, .truncate = pf_truncate},
		.fd = fd, .off = info.part_offset, .size = info.part_size,
	};
	sqfs_super_t super;
	sqfs_compressor_config_t cfg;
	sqfs_compressor_t *cmp = NULL;
	assert_int_equal(sqfs_super_read(&super, &pf.base), 0);
	assert_int_equal(super.compression_id, SQFS_COMP_GZIP);
	assert_int_equal(sqfs_compressor_config_init(&cfg, super.compression_id,
						     super.block_size,
						     SQFS_COMP_FLAG_UNCOMPRESS), 0);
	assert_int_equal(sqfs_compressor_create(&cfg, &cmp), 0);
	sqfs_id_table_t *ids = sqfs_id_table_create(0);
	assert_int_equal(sqfs_id_table_read(ids, &pf.base, &super, cmp), 0);
	sqfs_dir_reader_t *dr = sqfs_dir_reader_create(&super, cmp, &pf.base, 0);
	sqfs_data_reader_t *data = sqfs_data_reader_create(&pf.base, super.block_size, cmp, 0);
	assert_non_null(dr);
	assert_non_null(data);
	assert_int_equal(sqfs_data_reader_load_fragment_table(data, &super), 0);
	sqfs_inode_generic_t *root = NULL, *tool = NULL;
	assert_int_equal(sqfs_dir_reader_get_root_inode(dr, &root), 0);
	assert_int_equal(sqfs_dir_reader_find_by_path(dr, root, "bin/tool", &tool), 0);
	char buf[64] = {0};
	assert_int_equal(sqfs_data_reader_read(data, tool, 0, buf, 20), 20);
	assert_string_equal(buf, "#!/bin/sh\necho tool\n");
	assert_int_equal(tool->base.mode, S_IFREG | 0755);
	free(root);
	free(tool);
	sqfs_destroy(data);
	sqfs_destroy(dr);
	sqfs_destroy(ids);
	sqfs_destroy(cmp);
	close(fd);
}

static void test_no_objects_random_uuid(void **state)
{
	struct fixture *fx = *state;
	struct berth_sif_info info;
	char second[128];
	size_t len, len2;

	small_tree(fx->tree);
	assert_int_equal(berth_sif_write(fx->tree, fx->out, NULL, &info, &fx->err), 0);
	assert_true(info.part_offset == 32768); /* 32176 rounded up */
	snprintf(second, sizeof(second), "%s/second.sif", fx->dir);
	assert_int_equal(berth_sif_write(fx->tree, second, NULL, NULL, &fx->err), 0);
	uint8_t *a = read_all(fx->out, &len), *b = read_all(second, &len2);
	assert_true(le64(a + 80) == 47);
	assert_int_equal(le32(a + 4096), 0x4004);
	assert_int_equal(le32(a + 4096 + 5), 1);
	assert_true(le64(a + 4096 + 33) == 592 + info.part_size); /* gap counted */
	assert_memory_equal(a + 45, berth_sif_arch_code(berth_sif_host_arch()), 2);
	/* random version-4 UUIDs, different each time */
	assert_memory_not_equal(a + 48, b + 48, 16);
	assert_int_equal(a[48 + 6] >> 4, 4);
	assert_int_equal(a[48 + 8] & 0xC0, 0x80);
	/* times are now */
	time_t now = time(NULL);
	assert_true((int64_t)le64(a + 64) <= now && (int64_t)le64(a + 64) > now - 60);
	free(a);
	free(b);
}

static void test_refusals(void **state)
{
	struct fixture *fx = *state;
	char name[200];
	struct berth_sif_object many[48];
	struct stat st;

	small_tree(fx->tree);
	memset(name, 'n', 129);
	name[129] = '\0';
	struct berth_sif_object longname = {BERTH_SIF_DATA_GENERIC, name, "x", 1};
	struct berth_sif_opts o = {.objects = &longname, .n_objects = 1};
	assert_int_equal(berth_sif_write(fx->tree, fx->out, &o, NULL, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "longer than 128"));
	assert_int_equal(access(fx->out, F_OK), -1);
	name[128] = '\0'; /* exactly 128 fits, without a NUL */
	assert_int_equal(berth_sif_write(fx->tree, fx->out, &o, NULL, &fx->err), 0);
	unlink(fx->out);

	for (int i = 0; i < 48; i++)
		many[i] = (struct berth_sif_object){BERTH_SIF_DATA_GENERIC, NULL, "x", 1};
	o = (struct berth_sif_opts){.objects = many, .n_objects = 48};
	assert_int_equal(berth_sif_write(fx->tree, fx->out, &o, NULL, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "descriptors"));
	o.n_objects = 47; /* 47 + the partition = 48 */
	assert_int_equal(berth_sif_write(fx->tree, fx->out, &o, NULL, &fx->err), 0);
	unlink(fx->out);

	o = (struct berth_sif_opts){.arch = "riscv64"};
	assert_int_equal(berth_sif_write(fx->tree, fx->out, &o, NULL, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "riscv64"));
	o = (struct berth_sif_opts){.sqfs = {.compressor = "lzo"}};
	assert_int_equal(berth_sif_write(fx->tree, fx->out, &o, NULL, &fx->err), -1);
	assert_int_equal(access(fx->out, F_OK), -1);

	/* never over an existing name */
	put(fx->dir, "out.sif", "precious", 0644);
	assert_int_equal(berth_sif_write(fx->tree, fx->out, NULL, NULL, &fx->err), -1);
	assert_int_equal(fx->err.errnum, EEXIST);
	assert_int_equal(stat(fx->out, &st), 0);
	assert_int_equal(st.st_size, 8);
}

/* A failed write over an old image leaves no SIF header behind. */
static void test_failure_clears_old_header(void **state)
{
	struct fixture *fx = *state;
	uint8_t head[128];

	small_tree(fx->tree);
	assert_int_equal(berth_sif_write(fx->tree, fx->out, NULL, NULL, &fx->err), 0);
	int fd = open(fx->out, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(berth_sif_write_fd(-1, fd, NULL, NULL, &fx->err), -1);
	assert_int_equal(pread(fd, head, sizeof(head), 0), (ssize_t)sizeof(head));
	assert_true(all_zero(head, sizeof(head)));
	struct berth_sif_header h;
	struct berth_sif_descr d;
	assert_int_equal(berth_sif_read(fd, &h, &d, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "not a SIF"));
	close(fd);
}

/* SIGKILL in the middle: neither a SIF header nor a squashfs superblock. */
static void test_sigkill_mid_write(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX];
	uint64_t x = 0x9E3779B97F4A7C15ull;

	/* 6 MiB that does not compress, and the slowest compressor */
	unsigned char *buf = malloc(1 << 20);
	assert_non_null(buf);
	for (int f = 0; f < 6; f++) {
		for (size_t i = 0; i < 1 << 20; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = (unsigned char)x;
		}
		snprintf(path, sizeof(path), "%s/r%d", fx->tree, f);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, buf, 1 << 20), 1 << 20);
		close(fd);
	}
	free(buf);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct berth_err err;
		struct berth_sif_opts o = {.objects = objects, .n_objects = 3,
					   .sqfs = {.compressor = "xz", .level = 9,
						    .workers = 1}};
		_exit(berth_sif_write(fx->tree, fx->out, &o, NULL, &err) < 0 ? 1 : 0);
	}
	struct stat st;
	int status;
	for (int i = 0; i < 200000; i++) {
		if (stat(fx->out, &st) == 0 && st.st_size > 36864 + 65536)
			break;
		if (waitpid(pid, &status, WNOHANG) == pid)
			skip(); /* finished before it could be killed: nothing to see */
		usleep(50);
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status))
		skip();
	size_t len;
	uint8_t *f = read_all(fx->out, &len);
	assert_true(len > 36864);
	assert_true(all_zero(f, 128));                  /* no header, no magic */
	assert_memory_not_equal(f + 36864, "hsqs", 4);  /* no superblock yet */
	assert_true(all_zero(f + 4096, 585));           /* no descriptors */
	free(f);
	struct berth_sif_header h;
	struct berth_sif_descr d;
	int fd = open(fx->out, O_RDONLY);
	assert_int_equal(berth_sif_read(fd, &h, &d, &fx->err), -1);
	close(fd);
}

static void test_read_rejects(void **state)
{
	struct fixture *fx = *state;
	struct berth_sif_header h;
	struct berth_sif_descr d;
	struct berth_sif_info info;

	put(fx->dir, "short", "SIF", 0644);
	snprintf(fx->out, sizeof(fx->out), "%s/short", fx->dir);
	int fd = open(fx->out, O_RDONLY);
	assert_int_equal(berth_sif_read(fd, &h, &d, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "too short"));
	close(fd);
	/* a truncated image: the partition ends past the file */
	small_tree(fx->tree);
	snprintf(fx->out, sizeof(fx->out), "%s/t.sif", fx->dir);
	assert_int_equal(berth_sif_write(fx->tree, fx->out, NULL, &info, &fx->err), 0);
	assert_int_equal(truncate(fx->out, (off_t)info.file_size - 4096), 0);
	fd = open(fx->out, O_RDONLY);
	assert_int_equal(berth_sif_read(fd, &h, &d, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "truncated"));
	close(fd);
	/* a newer SIF version */
	fd = open(fx->out, O_RDWR);
	assert_int_equal(pwrite(fd, "02", 2, 42), 2);
	assert_int_equal(berth_sif_read(fd, &h, &d, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "version"));
	close(fd);
}

/* ---- sing_meta: byte for byte what Apptainer 1.4.5 made -------------------------- */

/* The config of tests/fixtures/mkimage.py legacy --env A=b
 * --env 'Q=it'"'"'s "q" $HOME `x` \back' --env PATH=/usr/local/bin:/usr/bin:/bin
 * --env EMPTY= --env 'SP=a  b' --entrypoint '["/bin/sh","-c","echo \"hi\" $0"]'
 * --cmd '["arg one","it'"'"'s"]' --label k=v --label 'org.x=a "q"' --workdir /w */
static const char img_config[] =
	"{\"architecture\":\"amd64\",\"config\":{\"Env\":[\"PATH=/usr/local/bin:/usr/bin:/bin\","
	"\"A=b\",\"Q=it's \\\"q\\\" $HOME `x` \\\\back\",\"EMPTY=\",\"SP=a  b\"],\"Cmd\":["
	"\"arg one\",\"it's\"],\"WorkingDir\":\"/w\",\"Entrypoint\":[\"/bin/sh\",\"-c\",\"echo "
	"\\\"hi\\\" $0\"],\"User\":\"\",\"Labels\":{\"k\":\"v\",\"org.x\":\"a \\\"q\\\"\"}},"
	"\"created\":\"2023-11-14T22:13:20Z\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
	"\"diff_ids\":[]}}";

static void parse(struct berth_image *img, const char *json)
{
	struct berth_err err;

	memset(img, 0, sizeof(*img));
	img->config_json = strdup(json);
	img->config_len = strlen(json);
	img->archive = strdup("/var/tmp/sif-work/img.tar");
	assert_int_equal(berth_image_parse_config(img, json, strlen(json), "test", &err), 0);
}

static void test_meta_matches_apptainer(void **state)
{
	struct berth_image img;
	struct berth_sing_meta m;
	struct berth_err err;
	struct berth_sing_build b = {.apptainer_version = "1.4.5", .time = T0,
				     .arch = "amd64"};

	(void)state;
	parse(&img, img_config);
	assert_int_equal(berth_singularity_meta_build(&img, &b, &m, &err), 0);
	/* /.singularity.d files */
	assert_sha256(m.runscript,
		      "41d8d196e3927a4aa02014cc953d6b8e8e9d3b0ecfbc21ebcff16321f3f1902b");
	assert_sha256(m.labels_json,
		      "936811a951929575facfd7c8a6bebcd1de8f45baa00f5294daf56f72631c3b34");
	assert_sha256(m.env_docker,
		      "af47621a5d4b90862d48c190f9f62b9bb231c42a91cb1835f8cd7928a70f685e");
	/* the SIF objects: Def.FILE, inspect-metadata.json, oci-config.json */
	assert_string_equal(m.deffile, "bootstrap: docker-archive\n"
				       "from: /var/tmp/sif-work/img.tar\n\n");
	assert_sha256(m.deffile,
		      "3562db82f7b668895048cc3de067ebf8bb5ec0186da006fcbbe0d9bca0436f11");
	assert_sha256(m.inspect_json,
		      "466da67b429002395e1fcfe619e95daef02f6bfa2c0b294ebc9e4619818f9b23");
	assert_sha256(m.oci_config,
		      "f35b05cfea1b54b02fe360748cf083c8339c32be26fb4dabef7a0cd8799cbc0f");
	assert_int_equal(m.n_objects, 3);
	assert_int_equal(m.objects[0].datatype, BERTH_SIF_DATA_DEFFILE);
	assert_null(m.objects[0].name);
	assert_int_equal(m.objects[1].datatype, BERTH_SIF_DATA_GENERIC_JSON);
	assert_string_equal(m.objects[1].name, "inspect-metadata.json");
	assert_string_equal(m.objects[2].name, "oci-config.json");
	assert_true(m.objects[2].len == strlen(m.oci_config));
	/* without a version, no version label */
	berth_singularity_meta_free(&m);
	b.apptainer_version = NULL;
	assert_int_equal(berth_singularity_meta_build(&img, &b, &m, &err), 0);
	assert_null(strstr(m.labels_json, "apptainer.version"));
	assert_non_null(strstr(m.labels_json, "\"org.label-schema.build-date\": "
				   "\"Sunday_29_November_2026_20:50:14_UTC\""));
	berth_singularity_meta_free(&m);
	berth_image_close(&img);
}

/* ENTRYPOINT only, CMD only, neither, both with quotes: the runscript and
 * the env script of four more real builds. */
static void test_meta_runscript_cases(void **state)
{
	static const struct {
		const char *config, *runscript, *env;
	} cases[] = {
		{"{\"config\": {\"Env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
		 "/sbin:/bin\", \"X=1\"], \"Cmd\": [], \"WorkingDir\": \"\", \"Entrypoint\": "
		 "[\"/bin/echo\", \"ep only\"], \"User\": \"\", \"Labels\": null}}",
		 "a8dbb2ed4b1e3ee55d81dfece833d2d12c57f9794d6baa307a0c830c37872c61",
		 "fe62f9e0f2b8baaa91adf2af1695f083f5d88d5dafb000d92370164da88f13f3"},
		{"{\"config\": {\"Env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
		 "/sbin:/bin\", \"NOEQ\", \"U=\\u00e9 \\u00fc \\u65e5\\u672c <a&b> tab\\there nl\\nx "
		 "bel\\u0007 del\\u007f nbsp \\u00a0 ls \\u2028\"], \"Cmd\": [\"/bin/echo\", \"cmd "
		 "only\", \"$HOME\"], \"WorkingDir\": \"\", \"Entrypoint\": null, \"User\": \"\", "
		 "\"Labels\": {\"h\": \"<b>&amp;\", \"ctl\": \"a\\u0001b\\bc\\fd\", \"u\": "
		 "\"\\u00e9\\u65e5\"}}}",
		 "7f6995e18fc45494b79a4b3ab78196f9d4984e33747bb1946b8cd198d9ea62e1",
		 "36f62c61cbcd16399e8f45015608d4ac10c916dec1d6f7e34ea77195d318a9b5"},
		{"{\"config\": {\"Env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
		 "/sbin:/bin\"], \"Cmd\": [], \"WorkingDir\": \"\", \"Entrypoint\": null, \"User\": "
		 "\"\", \"Labels\": null}}",
		 "a8ef3cd95a5baf8eb1b0cb22dfd073ac828e3afb0ab8a88ee513ee4f7b9fef3c",
		 "cd5835520cbcba3b30e8d6e0600edb6b18ccf1310664644ccc7d0ebb62be4f07"},
		{"{\"config\": {\"Env\": [\"PATH=/x:$PATH\", \"E=$(id) `whoami` \\\\\\\\n "
		 "\\\"q\\\"\"], \"Cmd\": [\"a b\", \"c\\\\d\"], \"WorkingDir\": \"/work\", "
		 "\"Entrypoint\": [\"/bin/sh\", \"-c\", \"echo $0 \\\"$@\\\"\", \"it's\"], \"User\": "
		 "\"1000:1000\", \"Labels\": null}}",
		 "c18090c745566d9e51d96bdb980b92e9dde2eb13aa2c054af03978b68f7313c2",
		 "5c6053470eb35d0203241f1d573f9f8c53ab23e6c6f25e67291a87e57b77c7c6"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct berth_image img;
		struct berth_sing_meta m;
		struct berth_err err;
		parse(&img, cases[i].config);
		assert_int_equal(berth_singularity_meta_build(&img, NULL, &m, &err), 0);
		assert_sha256(m.runscript, cases[i].runscript);
		assert_sha256(m.env_docker, cases[i].env);
		berth_singularity_meta_free(&m);
		berth_image_close(&img);
	}
}

static void test_meta_quoting(void **state)
{
	static const struct {
		const char *entry, *line;
	} env[] = {
		{"A=b", "export A=\"${A:-\"b\"}\"\n"},
		{"EMPTY=", "export EMPTY=\"${EMPTY:-\"\"}\"\n"},
		{"NOEQ", "export NOEQ=\"${NOEQ:-}\"\n"},
		{"PATH=/a:$PATH", "export PATH=\"/a:\\\\$PATH\"\n"},
		{"Q=it's \"q\" $HOME `x` \\back",
		 "export Q=\"${Q:-\"it's \\\\\\\"q\\\\\\\" \\\\$HOME \\\\`x\\\\` \\\\\\\\back\"}\"\n"},
		{"C=\x01\x7f\t\n\a\b\f\v\r", "export C=\"${C:-\"\\x01\\x7f\\t\\n\\a\\b\\f\\v\\r\"}\"\n"},
		{"U=\xc3\xa9\xc2\xa0\xe2\x80\xa8\xf0\x9f\x98\x80\xff",
		 "export U=\"${U:-\"\xc3\xa9\\u00a0\\u2028\xf0\x9f\x98\x80\\xff\"}\"\n"},
		{"X=a=b", "export X=\"${X:-\"a=b\"}\"\n"},
	};
	static const struct {
		const char *in, *out;
	} json[] = {
		{"plain", "\"plain\""},
		{"<a&b>", "\"\\u003ca\\u0026b\\u003e\""},
		{"q\"\\", "\"q\\\"\\\\\""},
		{"\x01\b\f\n\r\t\x1f\x7f", "\"\\u0001\\b\\f\\n\\r\\t\\u001f\x7f\""},
		{"\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9", "\"\\u2028\\u2029\xc3\xa9\""},
		{"bad\xff\xc3", "\"bad\\ufffd\\ufffd\""},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(env) / sizeof(*env); i++) {
		char *line = berth_sing_env_line(env[i].entry);
		assert_non_null(line);
		assert_string_equal(line, env[i].line);
		free(line);
	}
	for (size_t i = 0; i < sizeof(json) / sizeof(*json); i++) {
		char *s = berth_sing_json_string(json[i].in);
		assert_non_null(s);
		assert_string_equal(s, json[i].out);
		free(s);
	}
	char *q = berth_sing_go_quote("\xed\xa0\x80"); /* a surrogate: invalid */
	assert_string_equal(q, "\"\\xed\\xa0\\x80\"");
	free(q);
}

static void test_meta_oci_config(void **state)
{
	struct berth_image img;
	struct berth_sing_meta m;
	struct berth_err err;

	(void)state;
	parse(&img, "{\"config\":{\"Tty\":true,\"Shell\":[\"/bin/bash\",\"-c\"],\"Env\":[],"
		    "\"Volumes\":{\"/z\":{},\"/a\":{}},\"ExposedPorts\":{\"80/tcp\":{}},"
		    "\"Healthcheck\":{\"Test\":[\"CMD\",\"true\"],\"Interval\":30000000000,"
		    "\"Retries\":3},\"StopSignal\":\"SIGTERM\",\"OnBuild\":null,\"user\":\"u\","
		    "\"Labels\":{\"b\":\"2\",\"a\":\"<1>\"}}}");
	assert_int_equal(berth_singularity_meta_build(&img, NULL, &m, &err), 0);
	/* v1.Config's field order, omitempty, maps sorted, keys matched as Go does */
	assert_string_equal(m.oci_config,
			    "{\"Healthcheck\":{\"Test\":[\"CMD\",\"true\"],\"Interval\":30000000000,"
			    "\"Retries\":3},\"Labels\":{\"a\":\"\\u003c1\\u003e\",\"b\":\"2\"},"
			    "\"Tty\":true,\"User\":\"u\",\"Volumes\":{\"/a\":{},\"/z\":{}},"
			    "\"ExposedPorts\":{\"80/tcp\":{}},\"StopSignal\":\"SIGTERM\","
			    "\"Shell\":[\"/bin/bash\",\"-c\"]}");
	berth_singularity_meta_free(&m);
	berth_image_close(&img);
	parse(&img, "{\"os\":\"linux\"}");
	assert_int_equal(berth_singularity_meta_build(&img, NULL, &m, &err), 0);
	assert_string_equal(m.oci_config, "{}");
	assert_string_equal(m.env_docker, "#!/bin/sh\n");
	berth_singularity_meta_free(&m);
	berth_image_close(&img);
}

static void test_meta_write_tree(void **state)
{
	struct fixture *fx = *state;
	struct berth_image img;
	struct berth_sing_meta m;
	char path[PATH_MAX], buf[256];
	struct stat st;

	parse(&img, img_config);
	assert_int_equal(berth_singularity_meta_build(&img, NULL, &m, &fx->err), 0);
	/* an image that brings its own bits */
	snprintf(path, sizeof(path), "%s/etc", fx->tree);
	assert_int_equal(mkdir(path, 0755), 0);
	put(fx->tree, "etc/hosts", "127.0.0.1 image\n", 0600);
	snprintf(path, sizeof(path), "%s/etc/resolv.conf", fx->tree);
	assert_int_equal(symlink("/run/resolv.conf", path), 0);
	snprintf(path, sizeof(path), "%s/var", fx->tree);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/var/tmp", fx->tree);
	assert_int_equal(symlink("/tmp", path), 0);    /* not followed */
	put(fx->tree, "environment", "mine", 0644);      /* kept */
	snprintf(path, sizeof(path), "%s/.singularity.d", fx->tree);
	assert_int_equal(mkdir(path, 0700), 0);
	put(fx->tree, ".singularity.d/Singularity", "old def", 0644);
	mode_t old = umask(077);
	int root = open(fx->tree, O_PATH | O_DIRECTORY);
	assert_int_equal(berth_singularity_meta_write(root, &m, &fx->err), 0);
	umask(old);

	static const struct {
		const char *path;
		mode_t mode;
	} want[] = {
		{".singularity.d/actions/exec", S_IFREG | 0755},
		{".singularity.d/actions/run", S_IFREG | 0755},
		{".singularity.d/actions/shell", S_IFREG | 0755},
		{".singularity.d/actions/start", S_IFREG | 0755},
		{".singularity.d/actions/test", S_IFREG | 0755},
		{".singularity.d/env/01-base.sh", S_IFREG | 0755},
		{".singularity.d/env/10-docker2singularity.sh", S_IFREG | 0755},
		{".singularity.d/env/90-environment.sh", S_IFREG | 0755},
		{".singularity.d/env/94-appsbase.sh", S_IFREG | 0755},
		{".singularity.d/env/95-apps.sh", S_IFREG | 0755},
		{".singularity.d/env/99-base.sh", S_IFREG | 0755},
		{".singularity.d/env/99-runtimevars.sh", S_IFREG | 0755},
		{".singularity.d/runscript", S_IFREG | 0755},
		{".singularity.d/startscript", S_IFREG | 0755},
		{".singularity.d/labels.json", S_IFREG | 0644},
		{".singularity.d/Singularity", S_IFREG | 0644},
		{".singularity.d/bootstrap_history/Apptainer0", S_IFREG | 0644},
		{".singularity.d/libs", S_IFDIR | 0755},
		{".singularity.d/bootstrap_history", S_IFDIR | 0755},
		{"dev", S_IFDIR | 0755}, {"proc", S_IFDIR | 0755}, {"root", S_IFDIR | 0755},
		{"tmp", S_IFDIR | 0755}, {"sys", S_IFDIR | 0755}, {"home", S_IFDIR | 0755},
		{"etc/hosts", S_IFREG | 0644},
		{"etc/resolv.conf", S_IFLNK | 0777},
		{"var/tmp", S_IFLNK | 0777},
		{"environment", S_IFREG | 0644},
		{"singularity", S_IFLNK | 0777}, {".run", S_IFLNK | 0777},
		{".exec", S_IFLNK | 0777}, {".shell", S_IFLNK | 0777}, {".test", S_IFLNK | 0777},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
		if (fstatat(root, want[i].path, &st, AT_SYMLINK_NOFOLLOW) < 0)
			fail_msg("%s is missing", want[i].path);
		if (st.st_mode != want[i].mode)
			fail_msg("%s has mode %o, not %o", want[i].path, st.st_mode, want[i].mode);
	}
	assert_int_equal(fstatat(root, "etc/hosts", &st, 0), 0);
	assert_int_equal(st.st_size, 0);                 /* emptied, as Apptainer does */
	ssize_t n = readlinkat(root, "singularity", buf, sizeof(buf));
	assert_int_equal(n, 24);
	assert_memory_equal(buf, ".singularity.d/runscript", 24);
	n = readlinkat(root, ".exec", buf, sizeof(buf));
	assert_memory_equal(buf, ".singularity.d/actions/exec", (size_t)n);
	int fd = openat(root, ".singularity.d/runscript", O_RDONLY);
	assert_int_equal(read(fd, buf, 16), 16);
	assert_memory_equal(buf, "#!/bin/sh\nOCI_EN", 16);
	close(fd);
	fd = openat(root, ".singularity.d/bootstrap_history/Apptainer0", O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 7);
	close(fd);
	/* a second run moves the first definition to Apptainer1 */
	assert_int_equal(berth_singularity_meta_write(root, &m, &fx->err), 0);
	assert_int_equal(fstatat(root, ".singularity.d/bootstrap_history/Apptainer1", &st, 0), 0);

	/* /.singularity.d itself being a symlink is refused */
	snprintf(path, sizeof(path), "%s/other", fx->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/other/.singularity.d", fx->dir);
	assert_int_equal(symlink("/etc", path), 0);
	snprintf(path, sizeof(path), "%s/other", fx->dir);
	int other = open(path, O_PATH | O_DIRECTORY);
	assert_int_equal(berth_singularity_meta_write(other, &m, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, ".singularity.d"));
	close(other);
	close(root);
	berth_singularity_meta_free(&m);
	berth_image_close(&img);
}

/* The whole chain on a tiny tree: meta into the rootfs, objects into the SIF. */
static void test_meta_into_sif(void **state)
{
	struct fixture *fx = *state;
	struct berth_image img;
	struct berth_sing_meta m;
	struct berth_sif_info info;
	size_t len;

	small_tree(fx->tree);
	parse(&img, img_config);
	assert_int_equal(berth_singularity_meta_build(&img, NULL, &m, &fx->err), 0);
	int root = open(fx->tree, O_PATH | O_DIRECTORY);
	assert_int_equal(berth_singularity_meta_write(root, &m, &fx->err), 0);
	close(root);
	struct berth_sif_opts o = {.objects = m.objects, .n_objects = m.n_objects};
	assert_int_equal(berth_sif_write(fx->tree, fx->out, &o, &info, &fx->err), 0);
	uint8_t *f = read_all(fx->out, &len);
	const uint8_t *d2 = f + 4096 + 585;
	assert_memory_equal(d2 + 73, "inspect-metadata.json", 22);
	assert_memory_equal(f + le64(d2 + 17), m.inspect_json, strlen(m.inspect_json));
	assert_true(info.sqfs.inodes > 30);
	free(f);
	berth_singularity_meta_free(&m);
	berth_image_close(&img);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, fixture_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_encoding),
		cmocka_unit_test(test_descriptor_encoding),
		cmocka_unit_test(test_arch_codes),
		T(test_layout),
		T(test_partition_readable),
		T(test_no_objects_random_uuid),
		T(test_refusals),
		T(test_failure_clears_old_header),
		T(test_sigkill_mid_write),
		T(test_read_rejects),
		cmocka_unit_test(test_meta_matches_apptainer),
		cmocka_unit_test(test_meta_runscript_cases),
		cmocka_unit_test(test_meta_quoting),
		cmocka_unit_test(test_meta_oci_config),
		T(test_meta_write_tree),
		T(test_meta_into_sif),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
