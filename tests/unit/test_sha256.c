/* Unit tests for executor/sha256.c: the published FIPS 180-4 vectors, and
 * agreement with libcrypto at every length around the padding's edges. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "executor/base/sha256.h"
#include "executor/source/tarmember.h"

static void hex_of(const char *text, size_t len, char out[72])
{
	berth_sha256_hex(text, len, out);
}

static void test_published_vectors(void **state)
{
	(void)state;
	char out[72];

	hex_of("", 0, out);
	assert_string_equal(out, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hex_of("abc", 3, out);
	assert_string_equal(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	hex_of(two_blocks, strlen(two_blocks), out);
	assert_string_equal(out, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_million_a(void **state)
{
	(void)state;
	char out[72];
	char *many = malloc(1000000);

	assert_non_null(many);
	memset(many, 'a', 1000000);
	hex_of(many, 1000000, out);
	free(many);
	assert_string_equal(out, "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths 0..300 cover one and two padding blocks and every remainder. */
static void test_agrees_with_libcrypto(void **state)
{
	(void)state;
	unsigned char data[300], ours[BERTH_SHA256_LEN], theirs[EVP_MAX_MD_SIZE];
	unsigned theirs_len = 0;

	srand(7);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)rand();
	for (size_t len = 0; len <= sizeof(data); len++) {
		berth_sha256(data, len, ours);
		assert_int_equal(EVP_Digest(data, len, theirs, &theirs_len, EVP_sha256(), NULL), 1);
		assert_int_equal(theirs_len, BERTH_SHA256_LEN);
		if (memcmp(ours, theirs, BERTH_SHA256_LEN) != 0)
			fail_msg("SHA-256 of %zu bytes differs from libcrypto's", len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_published_vectors),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_agrees_with_libcrypto),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
