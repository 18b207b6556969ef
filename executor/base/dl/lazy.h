/* berth: a library loaded on first use (curl_lazy.h, crypto_lazy.h,
 * archive_lazy.h, squashfs_lazy.h): one dlopen() and a table of function
 * pointers. */
#ifndef BERTH_LAZY_H
#define BERTH_LAZY_H

#include <stddef.h>

struct berth_lazy_sym {
	const char *name; /* the symbol */
	size_t offset;    /* where its pointer goes in the table */
};

/* dlopen(lib) and store each symbol's address at its offset in `table`.
 * 0, or -1 with the reason in why[] (the table is then partly filled:
 * fill a copy and keep it only on success). */
int berth_lazy_fill(const char *lib, const struct berth_lazy_sym *syms, size_t n,
		    void *table, char *why, size_t why_len);

#endif
