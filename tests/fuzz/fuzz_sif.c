/* libFuzzer target: a SIF file a user hands in, read by berth_sif_read()
 * (header, descriptor table, primary system partition).  The input is the
 * whole file, held in a memfd.  Property checked: what is accepted lies
 * inside the file, and a refusal says why. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/convert/sif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct berth_sif_header h;
	struct berth_sif_descr part;
	struct berth_err err = { 0 };
	int32_t fstype, parttype;
	char arch[BERTH_SIF_ARCH_LEN];
	int fd = memfd_create("fuzz.sif", MFD_CLOEXEC);

	if (fd < 0 || berth_write_all(fd, data, size) < 0)
		abort();
	if (berth_sif_read(fd, &h, &part, &err) == 0) {
		berth_sif_partition_meta(&part, &fstype, &parttype, arch);
		if (part.offset < 0 || part.size < 0 || (uint64_t)part.offset > size ||
		    (uint64_t)part.size > size - (uint64_t)part.offset ||
		    parttype != BERTH_SIF_PART_PRIMSYS)
			abort();
	} else if (!err.msg[0]) {
		abort();
	}
	close(fd);
	return 0;
}
