/* Unit tests for the cache's content manifest (executor/cache/manifest.c): the
 * scan of a real tree, the text round trip, and which difference the
 * comparison names first. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/cache/manifest.h"

static int tmp_fd = -1;
static char tmp_path[] = "/tmp/berth-manifest-test.XXXXXX";

static void put(const char *name, const char *text)
{
	int fd = openat(tmp_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int make_tree(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(tmp_path));
	tmp_fd = open(tmp_path, O_RDONLY | O_DIRECTORY);
	assert_true(tmp_fd >= 0);
	assert_int_equal(mkdirat(tmp_fd, "rootfs", 0755), 0);
	assert_int_equal(mkdirat(tmp_fd, "rootfs/etc", 0755), 0);
	put("rootfs/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
	put("rootfs/etc/new\nline", "odd name\n");
	assert_int_equal(symlinkat("etc/passwd", tmp_fd, "rootfs/link"), 0);
	return 0;
}

static int remove_tree(void **state)
{
	(void)state;
	berth_remove_tree(AT_FDCWD, tmp_path);
	close(tmp_fd);
	return 0;
}

static void scan(struct berth_manifest *m)
{
	struct berth_err err = {0};

	memset(m, 0, sizeof(*m));
	assert_int_equal(berth_manifest_scan(tmp_fd, "rootfs", m, &err), 0);
}

static void test_scan_and_round_trip(void **state)
{
	struct berth_manifest m, back = {0};
	struct berth_err err = {0};
	char *text = NULL;
	size_t len = 0;
	const char *how = "unset";

	(void)state;
	scan(&m);
	assert_int_equal(m.n, 5); /* rootfs, etc, passwd, the odd name, link */
	assert_string_equal(m.items[0].path, "rootfs");
	assert_int_equal(berth_manifest_format(&m, &text, &len, &err), 0);
	assert_non_null(strstr(text, "rootfs/etc/new\\nline\n")); /* escaped */
	assert_non_null(strstr(text, "f 0644 26 "));
	assert_int_equal(berth_manifest_parse(text, len, &back, &err), 0);
	assert_null(berth_manifest_diff(&m, &back, &how));
	assert_null(how);
	free(text);
	berth_manifest_free(&m);
	berth_manifest_free(&back);
}

/* Same size, other bytes: only the hash can tell. */
static void test_content_change_named(void **state)
{
	struct berth_manifest before, after;
	const char *how = NULL;

	(void)state;
	scan(&before);
	put("rootfs/etc/passwd", "ROOT:x:0:0::/root:/bin/sh\n");
	scan(&after);
	assert_string_equal(berth_manifest_diff(&before, &after, &how), "rootfs/etc/passwd");
	assert_string_equal(how, "content");
	put("rootfs/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
	berth_manifest_free(&after);
	scan(&after);
	assert_null(berth_manifest_diff(&before, &after, &how));
	berth_manifest_free(&before);
	berth_manifest_free(&after);
}

static void test_mode_missing_unexpected(void **state)
{
	struct berth_manifest before, after;
	const char *how = NULL;

	(void)state;
	scan(&before);
	assert_int_equal(fchmodat(tmp_fd, "rootfs/etc/passwd", 0600, 0), 0);
	scan(&after);
	assert_string_equal(berth_manifest_diff(&before, &after, &how), "rootfs/etc/passwd");
	assert_string_equal(how, "mode");
	berth_manifest_free(&after);

	assert_int_equal(unlinkat(tmp_fd, "rootfs/link", 0), 0);
	put("rootfs/added", "x");
	scan(&after);
	/* path order: rootfs/added comes before rootfs/etc/passwd */
	assert_string_equal(berth_manifest_diff(&before, &after, &how), "rootfs/added");
	assert_string_equal(how, "unexpected");
	berth_manifest_free(&after);
	assert_int_equal(unlinkat(tmp_fd, "rootfs/added", 0), 0);
	assert_int_equal(fchmodat(tmp_fd, "rootfs/etc/passwd", 0644, 0), 0);
	scan(&after);
	assert_string_equal(berth_manifest_diff(&before, &after, &how), "rootfs/link");
	assert_string_equal(how, "missing");
	assert_int_equal(symlinkat("etc/passwd", tmp_fd, "rootfs/link"), 0);
	berth_manifest_free(&before);
	berth_manifest_free(&after);
}

static void test_parse_refuses(void **state)
{
	static const char *const bad[] = {
		"not a manifest\n",
		BERTH_MANIFEST_HEADER "f 0644 1 - rootfs/a", /* no newline */
		BERTH_MANIFEST_HEADER "x 0644 1 - rootfs/a\n",  /* type */
		BERTH_MANIFEST_HEADER "f 0644 1 abc rootfs/a\n", /* hash */
		BERTH_MANIFEST_HEADER "f 0644 1 -\n",            /* no path */
		BERTH_MANIFEST_HEADER "f 0644 1 - rootfs/a\\q\n", /* escape */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct berth_manifest m = {0};
		struct berth_err err = {0};
		assert_int_equal(berth_manifest_parse(bad[i], strlen(bad[i]), &m, &err), -1);
		assert_true(strstr(err.msg, "manifest") != NULL);
		berth_manifest_free(&m);
	}
	/* another version's manifest: 1, nothing read, for the caller to
	 * treat as none */
	static const char v1[] = "berth-manifest 1\nf 0644 1 - rootfs/a\n";
	struct berth_manifest m = {0};
	struct berth_err err = {0};
	assert_int_equal(berth_manifest_parse(v1, strlen(v1), &m, &err), 1);
	assert_int_equal(m.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_and_round_trip),
		cmocka_unit_test(test_content_change_named),
		cmocka_unit_test(test_mode_missing_unexpected),
		cmocka_unit_test(test_parse_refuses),
	};
	return cmocka_run_group_tests(tests, make_tree, remove_tree);
}
