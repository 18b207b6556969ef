/* Unit tests for the user-path guards of issue 23: berth_open_regular
 * (executor/base/process.c) refuses a FIFO at once instead of blocking, and
 * berth_tar_open (executor/source/tarmember.c) refuses an lzop archive by
 * name (libarchive runs no external decompressor). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/process.h"
#include "executor/source/tarmember.h"

static char dir[] = "/tmp/berth-test-paths.XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void fifo_is_refused_without_blocking(void **state)
{
	char path[256];
	struct berth_err err = {0};

	(void)state;
	snprintf(path, sizeof(path), "%s/img.tar", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10); /* a blocking open would hang here: fail instead */
	assert_int_equal(berth_open_regular(path, &err), -1);
	assert_non_null(strstr(err.msg, "is not a regular file (a FIFO): give a docker-save archive"));
	assert_null(berth_tar_open(path, &err));
	assert_non_null(strstr(err.msg, "(a FIFO)"));
	alarm(0);
}

static void missing_file_says_so(void **state)
{
	struct berth_err err = {0};

	(void)state;
	assert_null(berth_tar_open("/nonexistent/x.tar", &err));
	assert_non_null(strstr(err.msg, "cannot open image archive /nonexistent/x.tar"));
}

static void lzop_archive_is_refused_by_name(void **state)
{
	static const unsigned char lzo[] = {0x89, 'L', 'Z', 'O', 0, '\r', '\n', 0x1a, '\n',
					    0x10, 0x30, 0x20, 0xa0, 0x09, 0x40, 0x01, 0x05};
	char path[256];
	struct berth_err err = {0};

	(void)state;
	snprintf(path, sizeof(path), "%s/img.tar.lzo", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(lzo, 1, sizeof(lzo), f), sizeof(lzo));
	fclose(f);
	assert_null(berth_tar_open(path, &err));
	assert_non_null(strstr(err.msg, "is compressed with lzop, which berth does not read"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fifo_is_refused_without_blocking),
		cmocka_unit_test(missing_file_says_so),
		cmocka_unit_test(lzop_archive_is_refused_by_name),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
