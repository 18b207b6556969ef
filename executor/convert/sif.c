/* berth: the SIF container around a squashfs partition (see sif.h). */
#define _GNU_SOURCE
#include "executor/convert/sif.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/dl/squashfs_lazy.h"
#include "executor/base/fs.h"

/* ---- little-endian fields ------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Header field offsets (Go's binary.Write of the header struct). */
enum {
	H_LAUNCH = 0,
	H_MAGIC = 32,
	H_VERSION = 42,
	H_ARCH = 45,
	H_UUID = 48,
	H_CTIME = 64,
	H_MTIME = 72,
	H_DFREE = 80,
	H_DTOTAL = 88,
	H_DOFF = 96,
	H_DSIZE = 104,
	H_DATAOFF = 112,
	H_DATASIZE = 120,
};

/* Descriptor field offsets. */
enum {
	D_TYPE = 0,
	D_USED = 4,
	D_ID = 5,
	D_GROUP = 9,
	D_LINK = 13,
	D_OFFSET = 17,
	D_SIZE = 25,
	D_PADDED = 33,
	D_CTIME = 41,
	D_MTIME = 49,
	D_UID = 57,
	D_GID = 65,
	D_NAME = 73,
	D_EXTRA = 201,
};

_Static_assert(H_DATASIZE + 8 == BERTH_SIF_HEADER_SIZE, "SIF header layout");
_Static_assert(D_EXTRA + BERTH_SIF_DESCR_EXTRA_LEN == BERTH_SIF_DESCR_SIZE,
	       "SIF descriptor layout");
_Static_assert(BERTH_SIF_DATA_OFFSET == 32176, "SIF data offset");

void berth_sif_header_encode(const struct berth_sif_header *h,
			     uint8_t out[BERTH_SIF_HEADER_SIZE])
{
	memset(out, 0, BERTH_SIF_HEADER_SIZE);
	memcpy(out + H_LAUNCH, h->launch, BERTH_SIF_LAUNCH_LEN);
	memcpy(out + H_MAGIC, h->magic, BERTH_SIF_MAGIC_LEN);
	memcpy(out + H_VERSION, h->version, BERTH_SIF_VERSION_LEN);
	memcpy(out + H_ARCH, h->arch, BERTH_SIF_ARCH_LEN);
	memcpy(out + H_UUID, h->uuid, sizeof(h->uuid));
	put64(out + H_CTIME, (uint64_t)h->ctime);
	put64(out + H_MTIME, (uint64_t)h->mtime);
	put64(out + H_DFREE, (uint64_t)h->descr_free);
	put64(out + H_DTOTAL, (uint64_t)h->descr_total);
	put64(out + H_DOFF, (uint64_t)h->descr_offset);
	put64(out + H_DSIZE, (uint64_t)h->descr_size);
	put64(out + H_DATAOFF, (uint64_t)h->data_offset);
	put64(out + H_DATASIZE, (uint64_t)h->data_size);
}

void berth_sif_header_decode(const uint8_t in[BERTH_SIF_HEADER_SIZE],
			     struct berth_sif_header *h)
{
	memcpy(h->launch, in + H_LAUNCH, BERTH_SIF_LAUNCH_LEN);
	memcpy(h->magic, in + H_MAGIC, BERTH_SIF_MAGIC_LEN);
	memcpy(h->version, in + H_VERSION, BERTH_SIF_VERSION_LEN);
	memcpy(h->arch, in + H_ARCH, BERTH_SIF_ARCH_LEN);
	memcpy(h->uuid, in + H_UUID, sizeof(h->uuid));
	h->ctime = (int64_t)get64(in + H_CTIME);
	h->mtime = (int64_t)get64(in + H_MTIME);
	h->descr_free = (int64_t)get64(in + H_DFREE);
	h->descr_total = (int64_t)get64(in + H_DTOTAL);
	h->descr_offset = (int64_t)get64(in + H_DOFF);
	h->descr_size = (int64_t)get64(in + H_DSIZE);
	h->data_offset = (int64_t)get64(in + H_DATAOFF);
	h->data_size = (int64_t)get64(in + H_DATASIZE);
}

void berth_sif_descr_encode(const struct berth_sif_descr *d,
			    uint8_t out[BERTH_SIF_DESCR_SIZE])
{
	memset(out, 0, BERTH_SIF_DESCR_SIZE);
	put32(out + D_TYPE, (uint32_t)d->datatype);
	out[D_USED] = d->used ? 1 : 0;
	put32(out + D_ID, d->id);
	put32(out + D_GROUP, d->group_id);
	put32(out + D_LINK, d->linked_id);
	put64(out + D_OFFSET, (uint64_t)d->offset);
	put64(out + D_SIZE, (uint64_t)d->size);
	put64(out + D_PADDED, (uint64_t)d->size_padded);
	put64(out + D_CTIME, (uint64_t)d->ctime);
	put64(out + D_MTIME, (uint64_t)d->mtime);
	put64(out + D_UID, (uint64_t)d->uid);
	put64(out + D_GID, (uint64_t)d->gid);
	memcpy(out + D_NAME, d->name, BERTH_SIF_DESCR_NAME_LEN);
	memcpy(out + D_EXTRA, d->extra, BERTH_SIF_DESCR_EXTRA_LEN);
}

void berth_sif_descr_decode(const uint8_t in[BERTH_SIF_DESCR_SIZE],
			    struct berth_sif_descr *d)
{
	d->datatype = (int32_t)get32(in + D_TYPE);
	d->used = in[D_USED] != 0;
	d->id = get32(in + D_ID);
	d->group_id = get32(in + D_GROUP);
	d->linked_id = get32(in + D_LINK);
	d->offset = (int64_t)get64(in + D_OFFSET);
	d->size = (int64_t)get64(in + D_SIZE);
	d->size_padded = (int64_t)get64(in + D_PADDED);
	d->ctime = (int64_t)get64(in + D_CTIME);
	d->mtime = (int64_t)get64(in + D_MTIME);
	d->uid = (int64_t)get64(in + D_UID);
	d->gid = (int64_t)get64(in + D_GID);
	memcpy(d->name, in + D_NAME, BERTH_SIF_DESCR_NAME_LEN);
	memcpy(d->extra, in + D_EXTRA, BERTH_SIF_DESCR_EXTRA_LEN);
}

void berth_sif_partition_meta(const struct berth_sif_descr *d, int32_t *fstype,
			      int32_t *parttype, char arch[BERTH_SIF_ARCH_LEN])
{
	*fstype = (int32_t)get32(d->extra);
	*parttype = (int32_t)get32(d->extra + 4);
	memcpy(arch, d->extra + 8, BERTH_SIF_ARCH_LEN);
}

/* ---- architectures (arch.go) ------------------------------------------------ */

static const struct {
	const char *goarch, *code;
} arches[] = {
	{"386", "01"},     {"amd64", "02"},    {"arm", "03"},    {"arm64", "04"},
	{"ppc64", "05"},   {"ppc64le", "06"},  {"mips", "07"},   {"mipsle", "08"},
	{"mips64", "09"},  {"mips64le", "10"}, {"s390x", "11"},
};

const char *berth_sif_arch_code(const char *goarch)
{
	for (size_t i = 0; goarch && i < sizeof(arches) / sizeof(*arches); i++)
		if (!strcmp(arches[i].goarch, goarch))
			return arches[i].code;
	return NULL;
}

const char *berth_sif_host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__i386__)
	return "386";
#elif defined(__arm__)
	return "arm";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64le";
#elif defined(__powerpc64__)
	return "ppc64";
#elif defined(__s390x__)
	return "s390x";
#elif defined(__mips64) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "mips64le";
#elif defined(__mips64)
	return "mips64";
#elif defined(__mips__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "mipsle";
#elif defined(__mips__)
	return "mips";
#else
	return "unknown";
#endif
}

/* ---- writing ----------------------------------------------------------------- */

static int write_zeros(int fd, uint64_t off, uint64_t len)
{
	static const uint8_t zero[4096];

	while (len) {
		size_t n = len < sizeof(zero) ? (size_t)len : sizeof(zero);
		if (berth_pwrite_all(fd, zero, n, (off_t)off) < 0)
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

static int random_uuid(uint8_t uuid[16])
{
	for (size_t got = 0; got < 16;) {
		ssize_t n = getrandom(uuid + got, 16 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		got += (size_t)n;
	}
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	return 0;
}

static void descr_common(struct berth_sif_descr *d, int32_t type, uint32_t id,
			 int64_t t)
{
	memset(d, 0, sizeof(*d));
	d->datatype = type;
	d->used = true;
	d->id = id;
	d->group_id = BERTH_SIF_GROUP_MASK | BERTH_SIF_DEFAULT_GROUP;
	d->ctime = t;
	d->mtime = t;
}

/* The tree below a folder as the partition. */
static int tree_part(void *arg, int out_fd, off_t offset, const struct berth_sqfs_opts *o,
		     struct berth_sqfs_stats *st, struct berth_err *err)
{
	return berth_squashfs_write_tree(*(const int *)arg, out_fd, offset, o, st, err);
}

int berth_sif_write_fd(int root_dir_fd, int out_fd, const struct berth_sif_opts *o,
		       struct berth_sif_info *info, struct berth_err *err)
{
	return berth_sif_write_part_fd(tree_part, &root_dir_fd, out_fd, o, info, err);
}

int berth_sif_write_part_fd(berth_sif_part_fn *part, void *arg, int out_fd,
			    const struct berth_sif_opts *o, struct berth_sif_info *info,
			    struct berth_err *err)
{
	static const struct berth_sif_opts defaults;
	const struct berth_sif_opts *opts = o ? o : &defaults;
	const char *goarch = opts->arch ? opts->arch : berth_sif_host_arch();
	const char *arch = berth_sif_arch_code(goarch);
	size_t n = opts->n_objects;
	uint8_t uuid[16];

	if (!arch)
		return berth_fail(err, 0, "SIF: architecture '%s' has no SIF code", goarch);
	if (n + 1 > BERTH_SIF_DESCR_TOTAL)
		return berth_fail(err, 0, "SIF: %zu data objects do not fit in %d "
				  "descriptors", n + 1, BERTH_SIF_DESCR_TOTAL);
	for (size_t i = 0; i < n; i++)
		if (opts->objects[i].name &&
		    strlen(opts->objects[i].name) > BERTH_SIF_DESCR_NAME_LEN)
			return berth_fail(err, 0, "SIF: object name '%s' is longer than "
					  "%d bytes", opts->objects[i].name,
					  BERTH_SIF_DESCR_NAME_LEN);
	if (berth_sqfs_opts_check(&opts->sqfs, err) < 0)
		return -1;
	if (opts->uuid)
		memcpy(uuid, opts->uuid, sizeof(uuid));
	else if (random_uuid(uuid) < 0)
		return berth_fail(err, errno, "SIF: cannot make an image UUID");
	int64_t t = opts->time ? (int64_t)opts->time : (int64_t)time(NULL);

	/* An old header there would make a half-written file look whole. */
	if (write_zeros(out_fd, 0, BERTH_SIF_HEADER_SIZE) < 0)
		return berth_fail(err, errno, "SIF: cannot write the header");

	/* The small objects, back to back after the descriptor table. */
	_cleanup_free_ struct berth_sif_descr *d = calloc(n + 1, sizeof(*d));
	if (!d)
		return berth_fail(err, ENOMEM, "SIF descriptors");
	uint64_t off = BERTH_SIF_DATA_OFFSET, data_size = 0;
	for (size_t i = 0; i < n; i++) {
		const struct berth_sif_object *obj = &opts->objects[i];
		descr_common(&d[i], obj->datatype, (uint32_t)i + 1, t);
		if (obj->name)
			memcpy(d[i].name, obj->name, strlen(obj->name));
		d[i].offset = (int64_t)off;
		d[i].size = (int64_t)obj->len;
		d[i].size_padded = (int64_t)obj->len;
		if (obj->len && berth_pwrite_all(out_fd, obj->data, obj->len, (off_t)off) < 0)
			return berth_fail(err, errno, "SIF: cannot write data object %zu",
					  i + 1);
		off += obj->len;
		data_size += obj->len;
	}

	/* The partition, page aligned, streamed by libsquashfs. */
	uint64_t part_off = (off + BERTH_SIF_PART_ALIGN - 1) &
			    ~(uint64_t)(BERTH_SIF_PART_ALIGN - 1);
	if (write_zeros(out_fd, off, part_off - off) < 0)
		return berth_fail(err, errno, "SIF: cannot write");
	struct berth_sqfs_stats st;
	if (part(arg, out_fd, (off_t)part_off, &opts->sqfs, &st, err) < 0)
		return -1;
	uint64_t file_size = part_off + st.image_size;
	if (ftruncate(out_fd, (off_t)file_size) < 0)
		return berth_fail(err, errno, "SIF: cannot size the file");
	struct berth_sif_descr *p = &d[n];
	descr_common(p, BERTH_SIF_DATA_PARTITION, (uint32_t)n + 1, t);
	p->offset = (int64_t)part_off;
	p->size = (int64_t)st.image_size;
	p->size_padded = (int64_t)(part_off - off + st.image_size);
	put32(p->extra, BERTH_SIF_FS_SQUASH);
	put32(p->extra + 4, BERTH_SIF_PART_PRIMSYS);
	memcpy(p->extra + 8, arch, 2);
	data_size += (uint64_t)p->size_padded;

	/* Everything else is on disk before the descriptors and the header. */
	if (!opts->no_sync && fdatasync(out_fd) < 0)
		return berth_fail(err, errno, "SIF: cannot flush the image");
	_cleanup_free_ uint8_t *table = calloc(1, BERTH_SIF_DATA_OFFSET);
	if (!table)
		return berth_fail(err, ENOMEM, "SIF descriptors");
	for (size_t i = 0; i <= n; i++)
		berth_sif_descr_encode(&d[i], table + BERTH_SIF_DESCR_OFFSET +
				       i * BERTH_SIF_DESCR_SIZE);
	if (berth_pwrite_all(out_fd, table + BERTH_SIF_HEADER_SIZE,
			     BERTH_SIF_DATA_OFFSET - BERTH_SIF_HEADER_SIZE,
			     BERTH_SIF_HEADER_SIZE) < 0)
		return berth_fail(err, errno, "SIF: cannot write the descriptors");

	struct berth_sif_header h = {
		.ctime = t,
		.mtime = t,
		.descr_free = BERTH_SIF_DESCR_TOTAL - (int64_t)(n + 1),
		.descr_total = BERTH_SIF_DESCR_TOTAL,
		.descr_offset = BERTH_SIF_DESCR_OFFSET,
		.descr_size = BERTH_SIF_DESCR_TOTAL * BERTH_SIF_DESCR_SIZE,
		.data_offset = BERTH_SIF_DATA_OFFSET,
		.data_size = (int64_t)data_size,
	};
	memcpy(h.launch, BERTH_SIF_LAUNCH, strlen(BERTH_SIF_LAUNCH));
	memcpy(h.magic, BERTH_SIF_MAGIC, strlen(BERTH_SIF_MAGIC));
	memcpy(h.version, BERTH_SIF_VERSION, strlen(BERTH_SIF_VERSION));
	memcpy(h.arch, arch, 2);
	memcpy(h.uuid, uuid, sizeof(uuid));
	berth_sif_header_encode(&h, table);
	if (berth_pwrite_all(out_fd, table, BERTH_SIF_HEADER_SIZE, 0) < 0)
		return berth_fail(err, errno, "SIF: cannot write the header");
	if (!opts->no_sync && fdatasync(out_fd) < 0)
		return berth_fail(err, errno, "SIF: cannot flush the image");
	if (info) {
		info->part_offset = part_off;
		info->part_size = st.image_size;
		info->file_size = file_size;
		info->sqfs = st;
	}
	return 0;
}

/* berth_sif_write's arguments, for berth_create_file. */
struct sif_job {
	berth_sif_part_fn *part;
	void *arg;
	const struct berth_sif_opts *o;
	struct berth_sif_info *info;
};

static int sif_fill(int fd, void *arg, struct berth_err *err)
{
	const struct sif_job *j = arg;

	return berth_sif_write_part_fd(j->part, j->arg, fd, j->o, j->info, err);
}

int berth_sif_write(const char *rootfs_dir, const char *out_path,
		    const struct berth_sif_opts *o, struct berth_sif_info *info,
		    struct berth_err *err)
{
	_cleanup_close_ int dir = open(rootfs_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return berth_fail(err, errno, "cannot open rootfs folder %s", rootfs_dir);
	return berth_sif_write_part(tree_part, &dir, out_path, o, info, err);
}

int berth_sif_write_part(berth_sif_part_fn *part, void *arg, const char *out_path,
			 const struct berth_sif_opts *o, struct berth_sif_info *info,
			 struct berth_err *err)
{
	if (berth_sqfs_load(err) < 0) /* said as it is, not as the output file's error */
		return -1;
	struct sif_job job = {.part = part, .arg = arg, .o = o, .info = info};
	return berth_create_file(out_path, 0755, sif_fill, &job, err);
}

/* ---- reading ----------------------------------------------------------------- */

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = berth_pread_full(fd, buf, len, (off_t)off);

	if (n >= 0 && (size_t)n < len)
		errno = 0; /* end of file: the caller says "truncated" */
	return n >= 0 && (size_t)n == len ? 0 : -1;
}

int berth_sif_read(int fd, struct berth_sif_header *h, struct berth_sif_descr *part,
		   struct berth_err *err)
{
	uint8_t raw[BERTH_SIF_HEADER_SIZE];
	struct stat st;

	if (fstat(fd, &st) < 0)
		return berth_fail(err, errno, "SIF: stat");
	if (pread_all(fd, raw, sizeof(raw), 0) < 0)
		return berth_fail(err, errno, "not a SIF image (%s)",
				  errno ? "cannot read its header" : "too short");
	berth_sif_header_decode(raw, h);
	if (memcmp(h->magic, BERTH_SIF_MAGIC, sizeof(BERTH_SIF_MAGIC)) != 0)
		return berth_fail(err, 0, "not a SIF image (no SIF_MAGIC)");
	if (h->version[2] || strcmp(h->version, BERTH_SIF_VERSION) > 0)
		return berth_fail(err, 0, "SIF version %.3s is newer than %s, which "
				  "berth reads", h->version, BERTH_SIF_VERSION);
	/* Compared by subtraction: offsets come from the file and may be
	 * near INT64_MAX, where a sum would overflow. */
	if (h->descr_total < 1 || h->descr_total > 4096 || h->descr_offset < 0 ||
	    h->descr_offset > st.st_size - h->descr_total * BERTH_SIF_DESCR_SIZE)
		return berth_fail(err, 0, "SIF image is damaged (descriptor table "
				  "outside the file)");
	size_t len = (size_t)h->descr_total * BERTH_SIF_DESCR_SIZE;
	_cleanup_free_ uint8_t *table = malloc(len);
	if (!table)
		return berth_fail(err, ENOMEM, "SIF descriptors");
	if (pread_all(fd, table, len, (uint64_t)h->descr_offset) < 0)
		return berth_fail(err, errno, "SIF: cannot read the descriptors");
	for (int64_t i = 0; i < h->descr_total; i++) {
		struct berth_sif_descr d;
		int32_t fstype, parttype;
		char arch[BERTH_SIF_ARCH_LEN];
		berth_sif_descr_decode(table + i * BERTH_SIF_DESCR_SIZE, &d);
		if (!d.used || d.datatype != BERTH_SIF_DATA_PARTITION)
			continue;
		berth_sif_partition_meta(&d, &fstype, &parttype, arch);
		if (parttype != BERTH_SIF_PART_PRIMSYS)
			continue;
		if (d.offset < 0 || d.size < 0 || d.offset > st.st_size ||
		    d.size > st.st_size - d.offset)
			return berth_fail(err, 0, "SIF image is damaged or truncated "
					  "(partition %u ends past the file)", d.id);
		*part = d;
		return 0;
	}
	return berth_fail(err, 0, "SIF image has no primary system partition");
}

int berth_sif_squashfs_offset(const char *sif, uint64_t *offset, struct berth_err *err)
{
	struct berth_sif_header h = {0};
	struct berth_sif_descr part = {0};
	int32_t fstype, parttype;
	char arch[BERTH_SIF_ARCH_LEN];
	_cleanup_close_ int fd = open(sif, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return berth_fail(err, errno, "cannot open the image %s", sif);
	if (berth_sif_read(fd, &h, &part, err) < 0)
		return berth_wrap(err, "image %s (a damaged cache entry? `berth cache rm` it)", sif);
	berth_sif_partition_meta(&part, &fstype, &parttype, arch);
	if (fstype != BERTH_SIF_FS_SQUASH || part.offset <= 0)
		return berth_fail(err, 0, "image %s holds no SquashFS partition (a damaged "
				  "cache entry? `berth cache rm` it)", sif);
	*offset = (uint64_t)part.offset;
	return 0;
}
