/* berth: libcrypto, loaded when first needed (as libcurl is: curl_lazy.h).
 *
 * A warm start (the per-task launcher, a warm `berth run`) hashes nothing,
 * yet linking libcrypto costs every start its mapping and some 1600
 * relocations (about 3 ms measured here, a tenth of berth's share of a
 * step).  The few EVP calls berth makes go through this table, filled by
 * dlopen() on the first call.  Include this header instead of
 * <openssl/evp.h>. */
#ifndef BERTH_CRYPTO_LAZY_H
#define BERTH_CRYPTO_LAZY_H

#include <openssl/evp.h>

#include "conf/error.h"

struct berth_crypto_fns {
	EVP_MD_CTX *(*md_ctx_new)(void);
	void (*md_ctx_free)(EVP_MD_CTX *);
	int (*digest_init_ex)(EVP_MD_CTX *, const EVP_MD *, ENGINE *);
	int (*digest_update)(EVP_MD_CTX *, const void *, size_t);
	int (*digest_final_ex)(EVP_MD_CTX *, unsigned char *, unsigned int *);
	int (*digest)(const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *,
		      ENGINE *);
	const EVP_MD *(*sha256)(void);
	int (*encode_block)(unsigned char *, const unsigned char *, int);
	int (*decode_block)(unsigned char *, const unsigned char *, int);
};

/* Load libcrypto (once): 0, or -1 with the reason and what to install.
 * Every entry point that hashes or encodes with it calls this first, so a
 * missing library reaches the user as that error. */
int berth_crypto_load(struct berth_err *err);

/* The table, loaded on first use.  If libcrypto cannot be loaded, every
 * entry fails (NULL or 0, as the real ones do on error). */
const struct berth_crypto_fns *berth_crypto(void);

#define EVP_MD_CTX_new() (berth_crypto()->md_ctx_new())
#define EVP_MD_CTX_free(c) (berth_crypto()->md_ctx_free(c))
#define EVP_DigestInit_ex(c, t, e) (berth_crypto()->digest_init_ex((c), (t), (e)))
#define EVP_DigestUpdate(c, d, n) (berth_crypto()->digest_update((c), (d), (n)))
#define EVP_DigestFinal_ex(c, md, n) (berth_crypto()->digest_final_ex((c), (md), (n)))
#define EVP_Digest(d, n, md, s, t, e) (berth_crypto()->digest((d), (n), (md), (s), (t), (e)))
#define EVP_sha256() (berth_crypto()->sha256())
#define EVP_EncodeBlock(t, f, n) (berth_crypto()->encode_block((t), (f), (n)))
#define EVP_DecodeBlock(t, f, n) (berth_crypto()->decode_block((t), (f), (n)))

#endif
