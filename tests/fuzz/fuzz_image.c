/* libFuzzer target over the image reader and the flattener: the input is
 * written out as a docker-save archive, opened, and every layer applied
 * into a scratch folder, which must stay the only place written to.
 *   make fuzz FUZZ_SECONDS=60 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../executor/fs.h"
#include "../../executor/image.h"

static char scratch[] = "/tmp/berth-fuzz.XXXXXX";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(scratch))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char archive[64], root[64], work[64];
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
