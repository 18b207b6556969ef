/* Shared by the unit tests: a temporary folder per test, holding the tree
 * to convert and the output file, removed again after the test. */
#ifndef BERTH_TEST_HELPERS_H
#define BERTH_TEST_HELPERS_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "conf/error.h"
#include "executor/base/fs.h"

struct fixture {
	char dir[64];  /* holds the tree and the output */
	char tree[96];
	char out[96];
	struct berth_err err;
};

/* cmocka setup: a new folder from `tmpl` (a mkdtemp template), the empty
 * folder `tree` in it, and the path `out` next to it. */
static inline int fixture_setup(void **state, const char *tmpl, const char *tree,
				const char *out)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "%s", tmpl);
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->tree, sizeof(fx->tree), "%s/%s", fx->dir, tree);
	snprintf(fx->out, sizeof(fx->out), "%s/%s", fx->dir, out);
	if (mkdir(fx->tree, 0755) < 0)
		return -1;
	*state = fx;
	return 0;
}

static inline int fixture_teardown(void **state)
{
	struct fixture *fx = *state;

	berth_remove_tree(AT_FDCWD, fx->dir);
	free(fx);
	return 0;
}

#endif
