/* Unit tests for executor/base/dl/: berth_lazy_fill says why a library or
 * a symbol is missing and fills the table only from what it found, and
 * the loaders of libarchive, libsquashfs, libcrypto and libcurl load the
 * libraries this machine has (a missing one is an error, never an exit). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "executor/base/dl/archive_lazy.h"
#include "executor/base/dl/crypto_lazy.h"
#include "executor/base/dl/curl_lazy.h"
#include "executor/base/dl/lazy.h"
#include "executor/base/dl/squashfs_lazy.h"
#include "executor/base/dl/yaml_lazy.h"

struct one_fn {
	size_t (*len)(const char *);
};

static void test_missing_library(void **state)
{
	static const struct berth_lazy_sym syms[] = {{"strlen", offsetof(struct one_fn, len)}};
	struct one_fn table = {0};
	char why[256] = "";

	(void)state;
	assert_int_equal(berth_lazy_fill("libberth-no-such-library.so.0", syms, 1, &table, why,
					 sizeof(why)),
			 -1);
	assert_non_null(strstr(why, "libberth-no-such-library.so.0"));
	assert_null(table.len);
}

static void test_missing_symbol(void **state)
{
	static const struct berth_lazy_sym syms[] = {
		{"berth_no_such_symbol", offsetof(struct one_fn, len)}};
	struct one_fn table = {0};
	char why[256] = "";

	(void)state;
	assert_int_equal(berth_lazy_fill("libc.so.6", syms, 1, &table, why, sizeof(why)), -1);
	assert_string_equal(why, "libc.so.6 has no berth_no_such_symbol");
	assert_null(table.len);
}

static void test_found(void **state)
{
	static const struct berth_lazy_sym syms[] = {{"strlen", offsetof(struct one_fn, len)}};
	struct one_fn table = {0};
	char why[256] = "";

	(void)state;
	assert_int_equal(berth_lazy_fill("libc.so.6", syms, 1, &table, why, sizeof(why)), 0);
	assert_non_null(table.len);
	assert_int_equal(table.len("berth"), 5);
}

static void test_loaders(void **state)
{
	struct berth_err err = {0};

	(void)state;
	assert_int_equal(berth_archive_load(&err), 0);
	assert_int_equal(berth_sqfs_load(&err), 0);
	assert_int_equal(berth_crypto_load(&err), 0);
	assert_int_equal(berth_curl_load(&err), 0);
	assert_int_equal(berth_yaml_load(&err), 0);
	assert_string_equal(err.msg, "");
	/* loaded once: a second call finds the same table */
	assert_int_equal(berth_archive_load(&err), 0);
	assert_non_null(berth_archive()->f_archive_read_new);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_library),
		cmocka_unit_test(test_missing_symbol),
		cmocka_unit_test(test_found),
		cmocka_unit_test(test_loaders),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
