#define _GNU_SOURCE
#include "executor/base/dl/squashfs_lazy.h"
#include "executor/base/dl/lazy.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

#define LIBSQUASHFS "libsquashfs.so.1"

static struct berth_sqfs_fns table;
static char load_error[512];

static void load_once(void)
{
#define BERTH_SQFS_SYMBOL(fn) {#fn, offsetof(struct berth_sqfs_fns, f_##fn)},
	static const struct berth_lazy_sym symbols[] = {
		BERTH_SQFS_FUNCTIONS(BERTH_SQFS_SYMBOL)
	};
#undef BERTH_SQFS_SYMBOL
	struct berth_sqfs_fns fns;

	/* keep the table empty unless every symbol is there: berth_sqfs_load
	 * tells a loaded library by its first member */
	if (berth_lazy_fill(LIBSQUASHFS, symbols, sizeof(symbols) / sizeof(*symbols), &fns,
			    load_error, sizeof(load_error)) < 0)
		return;
	table = fns;
}

int berth_sqfs_load(struct berth_err *err)
{
	(void)berth_sqfs();
	if (!table.f_sqfs_block_processor_append)
		return berth_fail(err, 0, "cannot load %s (%s); install libsquashfs1", LIBSQUASHFS,
				  load_error[0] ? load_error : "unknown error");
	return 0;
}

const struct berth_sqfs_fns *berth_sqfs(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, load_once);
	return &table;
}
