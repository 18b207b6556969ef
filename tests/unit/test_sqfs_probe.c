/* Unit tests: can SquashfusePath serve an image here
 * (executor/runtime/sqfs_probe.c)?  A squashfuse that runs but cannot
 * serve is a "no" with what it said; a missing one is said without a
 * try; the verdict is remembered in the memo folder until the program
 * changes (or, for a "no", an hour passes); a working squashfuse is a
 * "yes", asked once. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "executor/base/memo.h"
#include "executor/runtime/sqfs_probe.h"
#include "tests/unit/helpers.h"

struct probe_fx {
	struct fixture f;
	char layer[128], bin[128], calls[128];
	int memo_fd;
};

/* A squashfuse stand-in that counts its calls (one byte each), then runs
 * `body`. */
static void stub(struct probe_fx *p, const char *body)
{
	char script[512];
	FILE *fp = fopen(p->bin, "w");

	assert_non_null(fp);
	snprintf(script, sizeof(script), "#!/bin/sh\nprintf x >>%s\n%s\n", p->calls, body);
	fputs(script, fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(p->bin, 0755), 0);
}

static long calls(const struct probe_fx *p)
{
	struct stat st;

	return stat(p->calls, &st) == 0 ? (long)st.st_size : 0;
}

static bool probe(struct probe_fx *p, int memo_fd, char *why, size_t len)
{
	why[0] = '\0';
	return berth_ns_squashfs_probe(p->bin, p->layer, memo_fd, why, len);
}

static void test_cannot_serve(void **state)
{
	struct probe_fx *p = *state;
	char why[4096];

	stub(p, "echo 'squashfuse: cannot load libfuse3.so.3' >&2; exit 1");
	assert_false(probe(p, p->memo_fd, why, sizeof(why)));
	assert_non_null(strstr(why, "cannot mount a SquashFS image here"));
	assert_non_null(strstr(why, p->bin));
	assert_non_null(strstr(why, "it said: squashfuse: cannot load libfuse3.so.3"));
	assert_int_equal(calls(p), 1);
	/* remembered: the same answer, no second try */
	char again[4096];
	assert_false(probe(p, p->memo_fd, again, sizeof(again)));
	assert_string_equal(again, why);
	assert_int_equal(calls(p), 1);
	/* a "no" older than an hour is tried again */
	struct timespec old[2] = {{.tv_sec = time(NULL) - BERTH_SQFS_PROBE_NO_TTL - 60},
				  {.tv_sec = time(NULL) - BERTH_SQFS_PROBE_NO_TTL - 60}};
	char memo[NAME_MAX + 1];
	berth_sqfs_probe_memo_name(memo, sizeof(memo));
	assert_int_equal(strncmp(memo, BERTH_SQFS_PROBE_MEMO ".", strlen(BERTH_SQFS_PROBE_MEMO) + 1), 0);
	assert_int_equal(utimensat(p->memo_fd, memo, old, 0), 0);
	assert_false(probe(p, p->memo_fd, why, sizeof(why)));
	assert_int_equal(calls(p), 2);
	/* the program replaced: tried again */
	stub(p, "echo 'squashfuse: still broken' >&2; exit 1");
	assert_false(probe(p, p->memo_fd, why, sizeof(why)));
	assert_non_null(strstr(why, "still broken"));
	assert_int_equal(calls(p), 3);
	/* no memo folder: every time */
	assert_false(probe(p, -1, why, sizeof(why)));
	assert_int_equal(calls(p), 4);
}

static void test_missing(void **state)
{
	struct probe_fx *p = *state;
	char why[4096];

	snprintf(p->bin, sizeof(p->bin), "%s/none", p->f.dir);
	assert_false(probe(p, p->memo_fd, why, sizeof(why)));
	assert_non_null(strstr(why, "cannot run"));
	assert_non_null(strstr(why, "(SquashfusePath)"));
	char memo[NAME_MAX + 1];
	berth_sqfs_probe_memo_name(memo, sizeof(memo));
	assert_int_equal(faccessat(p->memo_fd, memo, F_OK, 0), -1);
}

/* Under valgrind the probe's child reports valgrind's complaint about
 * mount(2)'s NULL type as its exit status: that child cannot say yes. */
static bool under_valgrind(void)
{
	char line[512];
	bool found = false;
	FILE *maps = fopen("/proc/self/maps", "r");

	while (maps && !found && fgets(line, sizeof(line), maps))
		found = strstr(line, "vgpreload") != NULL;
	if (maps)
		fclose(maps);
	return found;
}

static void test_works(void **state)
{
	struct probe_fx *p = *state;
	char why[4096], script[256], answer[64];
	const char *real = "/usr/bin/squashfuse_ll";
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (access(real, X_OK) < 0 || fd < 0 || under_valgrind()) {
		if (fd >= 0)
			close(fd);
		skip();
	}
	close(fd);
	snprintf(script, sizeof(script), "exec %s \"$@\"", real);
	stub(p, script);
	assert_true(probe(p, p->memo_fd, why, sizeof(why)));
	assert_true(probe(p, p->memo_fd, why, sizeof(why)));
	assert_int_equal(calls(p), 1);
	/* the memo: the program's identity and the kernel, then the verdict */
	char key[PATH_MAX + 64], memo[NAME_MAX + 1];
	struct utsname u;
	assert_int_equal(berth_memo_file_key(p->bin, key, sizeof(key)), 0);
	assert_int_equal(uname(&u), 0);
	snprintf(key + strlen(key), sizeof(key) - strlen(key), " %s", u.release);
	berth_sqfs_probe_memo_name(memo, sizeof(memo));
	assert_true(berth_memo_get(p->memo_fd, memo, key, answer, sizeof(answer), NULL));
	assert_string_equal(answer, "yes");
}

static void test_memo(void **state)
{
	struct probe_fx *p = *state;
	char answer[64];
	time_t when = 0;

	assert_false(berth_memo_get(p->memo_fd, "m", "k1", answer, sizeof(answer), NULL));
	berth_memo_put(p->memo_fd, "m", "k1", "one");
	assert_true(berth_memo_get(p->memo_fd, "m", "k1", answer, sizeof(answer), &when));
	assert_string_equal(answer, "one");
	assert_true(when > 0);
	/* a key that is a prefix of the stored one is another key */
	assert_false(berth_memo_get(p->memo_fd, "m", "k", answer, sizeof(answer), NULL));
	berth_memo_put(p->memo_fd, "m", "k2", "two");
	assert_false(berth_memo_get(p->memo_fd, "m", "k1", answer, sizeof(answer), NULL));
	assert_true(berth_memo_get(p->memo_fd, "m", "k2", answer, sizeof(answer), NULL));
	assert_string_equal(answer, "two");
	/* not a regular file: nothing remembered */
	assert_int_equal(mkdirat(p->memo_fd, "d", 0700), 0);
	assert_false(berth_memo_get(p->memo_fd, "d", "k", answer, sizeof(answer), NULL));
	assert_false(berth_memo_get(-1, "m", "k2", answer, sizeof(answer), NULL));
}

static int setup(void **state)
{
	struct probe_fx *p = calloc(1, sizeof(*p));
	void *f = NULL;

	if (!p || fixture_setup(&f, "/tmp/berth-sqprobe-XXXXXX", "memo", "out") < 0)
		return -1;
	p->f = *(struct fixture *)f;
	free(f);
	snprintf(p->layer, sizeof(p->layer), "%s/layer", p->f.dir);
	snprintf(p->bin, sizeof(p->bin), "%s/squashfuse", p->f.dir);
	snprintf(p->calls, sizeof(p->calls), "%s/calls", p->f.dir);
	if (mkdir(p->layer, 0700) < 0)
		return -1;
	p->memo_fd = open(p->f.tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = p;
	return p->memo_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct probe_fx *p = *state;

	close(p->memo_fd);
	berth_remove_tree(AT_FDCWD, p->f.dir);
	free(p);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cannot_serve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_works, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memo, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
