/* Unit tests for executor/xxh64.c: the values of the reference tool
 * (xxhsum -H1, Debian's xxhash package) for the empty string and "abc", and
 * agreement with it at every length around the 32-byte stripe and the 8-
 * and 4-byte tails, fed whole and in uneven pieces. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/base/xxh64.h"

#define MAX_LEN 300

static void test_reference_values(void **state)
{
	(void)state;
	assert_true(berth_xxh64("", 0) == 0xef46db3751d8e999ULL);
	assert_true(berth_xxh64("abc", 3) == 0x44bc2cf5ad770999ULL);
}

/* data[0..len) for every len, through xxhsum in one run: its lines, in
 * order, into want[]. */
static void reference_hashes(const unsigned char *data, uint64_t want[MAX_LEN + 1])
{
	char dir[] = "/tmp/berth-xxh64.XXXXXX", path[64], cmd[128], line[256];

	assert_non_null(mkdtemp(dir));
	for (size_t len = 0; len <= MAX_LEN; len++) {
		snprintf(path, sizeof(path), "%s/%03zu", dir, len);
		FILE *f = fopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(data, 1, len, f), len);
		assert_int_equal(fclose(f), 0);
	}
	snprintf(cmd, sizeof(cmd), "cd %s && xxhsum -H1 [0-9]*", dir);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = 0;
	while (n <= MAX_LEN && fgets(line, sizeof(line), p))
		if (sscanf(line, "%" SCNx64, &want[n]) == 1)
			n++;
	int status = pclose(p);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	if (status != 0 || n != MAX_LEN + 1)
		fail_msg("xxhsum -H1 gave %zu of %d hashes (status %d): install Debian's xxhash",
			 n, MAX_LEN + 1, status);
}

static void test_agrees_with_xxhsum(void **state)
{
	(void)state;
	unsigned char data[MAX_LEN];
	uint64_t want[MAX_LEN + 1];

	srand(11);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)rand();
	reference_hashes(data, want);
	for (size_t len = 0; len <= MAX_LEN; len++) {
		if (berth_xxh64(data, len) != want[len])
			fail_msg("XXH64 of %zu bytes differs from xxhsum's", len);
		/* streamed in pieces of 1, 3, 7, 13, ... bytes */
		struct berth_xxh64 s;
		berth_xxh64_init(&s);
		for (size_t at = 0, piece = 1; at < len; at += piece, piece = piece * 2 + 1)
			berth_xxh64_update(&s, data + at, piece < len - at ? piece : len - at);
		if (berth_xxh64_digest(&s) != want[len])
			fail_msg("XXH64 of %zu bytes streamed in pieces differs from xxhsum's", len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_values),
		cmocka_unit_test(test_agrees_with_xxhsum),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
