/* libFuzzer target over the image reader and the flattener: the input is
 * written out as a docker-save archive, opened, and every layer applied
 * into a scratch folder, which must stay the only place written to.
 * The scratch folder is on tmpfs (/dev/shm): the file system work of an
 * execution costs memory speed.  fuzz_flatten.c feeds the flattener alone.
 *   make fuzz FUZZ_SECONDS=60 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/convert/flatten.h"
#include "executor/source/image.h"
#include "scratch.h"

static char scratch[2048];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* A gzip bomb in a mutated input fails at 4 MiB per file (EFBIG, a
	 * clear error) instead of filling memory; inputs are smaller (-max_len). */
	struct rlimit fsize = { .rlim_cur = 4u << 20, .rlim_max = 4u << 20 };

	(void)argc;
	(void)argv;
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		abort();
	fuzz_scratch(scratch, sizeof(scratch), "image");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char archive[2100], root[2100], work[2100];
	struct berth_image img;
	struct berth_flatten_stats stats;
	struct berth_err err;

	snprintf(archive, sizeof(archive), "%s/in.tar", scratch);
	snprintf(root, sizeof(root), "%s/root", scratch);
	snprintf(work, sizeof(work), "%s/work", scratch);
	int fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	mkdir(root, 0700);
	mkdir(work, 0700);
	if (berth_image_open(&img, archive, NULL, work, &err) == 0) {
		berth_image_flatten(&img, root, &stats, &err);
		berth_image_close(&img);
	}
	int dir = open(scratch, O_RDONLY | O_DIRECTORY);
	berth_remove_tree(dir, "root");
	berth_remove_tree(dir, "work");
	close(dir);
	return 0;
}
