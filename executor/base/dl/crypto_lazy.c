#define _GNU_SOURCE
#include "executor/base/dl/crypto_lazy.h"
#include "executor/base/dl/lazy.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define LIBCRYPTO "libcrypto.so.3"

/* What every entry does when libcrypto is missing: fail, as on error. */
static EVP_MD_CTX *no_ctx_new(void) { return NULL; }
static void no_ctx_free(EVP_MD_CTX *c) { (void)c; }
static int no_init(EVP_MD_CTX *c, const EVP_MD *t, ENGINE *e) { (void)c, (void)t, (void)e; return 0; }
static int no_update(EVP_MD_CTX *c, const void *d, size_t n) { (void)c, (void)d, (void)n; return 0; }
static int no_final(EVP_MD_CTX *c, unsigned char *m, unsigned int *n) { (void)c, (void)m, (void)n; return 0; }
static int no_digest(const void *d, size_t n, unsigned char *m, unsigned int *s, const EVP_MD *t,
		     ENGINE *e)
{
	(void)d, (void)n, (void)m, (void)s, (void)t, (void)e;
	return 0;
}
static const EVP_MD *no_sha256(void) { return NULL; }
static int no_block(unsigned char *t, const unsigned char *f, int n) { (void)t, (void)f, (void)n; return -1; }

static char load_error[512];
static bool loaded;

static struct berth_crypto_fns table = {
	no_ctx_new, no_ctx_free, no_init, no_update, no_final, no_digest, no_sha256,
	no_block, no_block,
};

static void load_once(void)
{
	static const struct berth_lazy_sym symbols[] = {
		{"EVP_MD_CTX_new", offsetof(struct berth_crypto_fns, md_ctx_new)},
		{"EVP_MD_CTX_free", offsetof(struct berth_crypto_fns, md_ctx_free)},
		{"EVP_DigestInit_ex", offsetof(struct berth_crypto_fns, digest_init_ex)},
		{"EVP_DigestUpdate", offsetof(struct berth_crypto_fns, digest_update)},
		{"EVP_DigestFinal_ex", offsetof(struct berth_crypto_fns, digest_final_ex)},
		{"EVP_Digest", offsetof(struct berth_crypto_fns, digest)},
		{"EVP_sha256", offsetof(struct berth_crypto_fns, sha256)},
		{"EVP_EncodeBlock", offsetof(struct berth_crypto_fns, encode_block)},
		{"EVP_DecodeBlock", offsetof(struct berth_crypto_fns, decode_block)},
	};
	struct berth_crypto_fns fns;

	if (berth_lazy_fill(LIBCRYPTO, symbols, sizeof(symbols) / sizeof(*symbols), &fns,
			    load_error, sizeof(load_error)) < 0)
		return;
	table = fns;
	loaded = true;
}

int berth_crypto_load(struct berth_err *err)
{
	(void)berth_crypto();
	if (!loaded)
		return berth_fail(err, 0, "cannot load %s (%s); install libssl3", LIBCRYPTO,
				  load_error[0] ? load_error : "unknown error");
	return 0;
}

const struct berth_crypto_fns *berth_crypto(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, load_once);
	return &table;
}
