#define _GNU_SOURCE
#include "executor/base/dl/squashfs_lazy.h"
#include "executor/base/dl/lazy.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define LIBSQUASHFS "libsquashfs.so.1"

static struct berth_sqfs_fns table;

static void load_once(void)
{
#define BERTH_SQFS_SYMBOL(fn) {#fn, offsetof(struct berth_sqfs_fns, f_##fn)},
	static const struct berth_lazy_sym symbols[] = {
		BERTH_SQFS_FUNCTIONS(BERTH_SQFS_SYMBOL)
	};
#undef BERTH_SQFS_SYMBOL
	char why[512];

	if (berth_lazy_fill(LIBSQUASHFS, symbols, sizeof(symbols) / sizeof(*symbols), &table,
			    why, sizeof(why)) < 0) {
		fprintf(stderr, "berth: cannot load %s (%s); install libsquashfs1\n",
			LIBSQUASHFS, why);
		exit(1);
	}
}

const struct berth_sqfs_fns *berth_sqfs(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, load_once);
	return &table;
}
