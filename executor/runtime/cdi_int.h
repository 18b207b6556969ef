/* berth: what cdi_parse.c and cdi.c share, nothing else. */
#ifndef BERTH_CDI_INT_H
#define BERTH_CDI_INT_H

#include <stddef.h>

#include "conf/error.h"
#include "executor/runtime/cdi.h"

/* Room for element n (zeroed) of *arr, elements of `size` bytes. */
int berth_cdi_grow(void **arr, size_t n, size_t size, struct berth_err *err);
/* "K=V" appended to e->env (NULL-terminated). */
int berth_cdi_add_env(struct berth_cdi_edits *e, const char *kv, struct berth_err *err);

#endif
