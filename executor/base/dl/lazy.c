#define _GNU_SOURCE
#include "executor/base/dl/lazy.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int berth_lazy_fill(const char *lib, const struct berth_lazy_sym *syms, size_t n,
		    void *table, char *why, size_t why_len)
{
	void *handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);

	if (!handle) {
		snprintf(why, why_len, "%s", dlerror());
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		void *sym = dlsym(handle, syms[i].name);
		if (!sym) {
			snprintf(why, why_len, "%s has no %s", lib, syms[i].name);
			return -1;
		}
		/* POSIX: a function pointer and a void * convert both ways. */
		memcpy((char *)table + syms[i].offset, &sym, sizeof(sym));
	}
	return 0;
}
