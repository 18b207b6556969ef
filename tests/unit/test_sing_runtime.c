/* Unit tests: the Singularity flavour and release behind SingularityPath
 * (executor/runtime/sing_runtime.c): --version parsing, the compression a
 * SIF gets, /etc/subuid entries, and the memo of the probe. */
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

#include "executor/runtime/sing_runtime.h"
#include "conf/unshare.h"
#include "tests/unit/helpers.h"

static void test_parse_flavours(void **state)
{
	struct berth_sing_runtime rt;

	(void)state;
	berth_sing_runtime_parse("apptainer version 1.4.5\n", &rt);
	assert_true(rt.apptainer && rt.reads_zstd && rt.fakeroot_ignore_subuid);
	assert_string_equal(rt.number, "1.4.5");
	assert_string_equal(berth_sing_flavour(&rt), "Apptainer");
	berth_sing_runtime_parse("singularity version 3.4.2", &rt);
	assert_false(rt.apptainer || rt.reads_zstd || rt.fakeroot_ignore_subuid);
	assert_string_equal(rt.number, "3.4.2");
	assert_string_equal(berth_sing_flavour(&rt), "SingularityCE");
	berth_sing_runtime_parse("singularity-ce version 4.1.0-jammy", &rt);
	assert_false(rt.apptainer);
	assert_string_equal(rt.number, "4.1.0-jammy");
	/* nothing recognisable: what every release reads */
	berth_sing_runtime_parse("", &rt);
	assert_false(rt.reads_zstd);
}

/* --container-unshare: the runtime's own flags from Singularity 3.0 and on
 * every Apptainer; 2.x (a bare version number) is refused, naming it. */
static void test_can_unshare(void **state)
{
	struct berth_sing_runtime rt;
	struct berth_err err = {0};

	(void)state;
	berth_sing_runtime_parse("apptainer version 1.4.5", &rt);
	assert_int_equal(berth_sing_can_unshare(&rt, BERTH_UNSHARE_NET, &err), 0);
	berth_sing_runtime_parse("singularity version 3.4.2", &rt);
	assert_int_equal(berth_sing_can_unshare(&rt, BERTH_UNSHARE_NET | BERTH_UNSHARE_UTS, &err), 0);
	berth_sing_runtime_parse("singularity-ce version 4.1.0-jammy", &rt);
	assert_int_equal(berth_sing_can_unshare(&rt, BERTH_UNSHARE_IPC, &err), 0);
	berth_sing_runtime_parse("2.6.1-dist", &rt);
	assert_int_equal(berth_sing_can_unshare(&rt, 0, &err), 0);
	assert_int_equal(berth_sing_can_unshare(&rt, BERTH_UNSHARE_NET | BERTH_UNSHARE_UTS, &err), -1);
	assert_non_null(strstr(err.msg, "--container-unshare=net,uts on Singularity 2.6.1-dist"));
	assert_non_null(strstr(err.msg, "--container-runtime=charliecloud"));
}

static void test_compression(void **state)
{
	struct berth_sing_runtime app, sce;
	struct berth_err err = {0};
	enum berth_sqfs_comp c;
	char why[128];

	(void)state;
	berth_sing_runtime_parse("apptainer version 1.4.5", &app);
	berth_sing_runtime_parse("singularity version 3.4.2", &sce);
	assert_int_equal(berth_sing_compression(BERTH_SQFS_AUTO, &app, &c, why, sizeof(why), &err), 0);
	assert_int_equal(c, BERTH_SQFS_ZSTD);
	assert_int_equal(berth_sing_compression(BERTH_SQFS_AUTO, &sce, &c, why, sizeof(why), &err), 0);
	assert_int_equal(c, BERTH_SQFS_LZ4);
	assert_non_null(strstr(why, "SingularityCE 3.4.2"));
	assert_int_equal(berth_sing_compression(BERTH_SQFS_GZIP, &sce, &c, NULL, 0, &err), 0);
	assert_int_equal(c, BERTH_SQFS_GZIP);
	assert_int_equal(berth_sing_compression(BERTH_SQFS_XZ, &app, &c, NULL, 0, &err), 0);
	assert_int_equal(c, BERTH_SQFS_XZ);
	/* zstd forced on a runtime that cannot read it: refused, with the fix */
	assert_int_equal(berth_sing_compression(BERTH_SQFS_ZSTD, &sce, &c, NULL, 0, &err), -1);
	assert_non_null(strstr(err.msg, "SingularityCE 3.4.2 cannot read zstd"));
	assert_non_null(strstr(err.msg, "SquashfsCompression=auto"));
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_subid(void **state)
{
	struct fixture *fx = *state;
	char path[160];

	snprintf(path, sizeof(path), "%s/subuid", fx->dir);
	write_text(path, "alice:100000:65536\n!bob:165536:65536\ncarol:231072:1000\n"
		   "1234:300000:131072\nbad line\ndave:x:65536\n");
	assert_true(berth_subid_has_range(path, "alice", 1));
	assert_false(berth_subid_has_range(path, "bob", 2));   /* disabled */
	assert_false(berth_subid_has_range(path, "carol", 3)); /* too few ids */
	assert_true(berth_subid_has_range(path, "erin", 1234)); /* by uid */
	assert_false(berth_subid_has_range(path, "dave", 4));
	assert_false(berth_subid_has_range(path, "alic", 5));
	assert_false(berth_subid_has_range("/nonexistent/subuid", "alice", 1));
}

static void test_can_fakeroot(void **state)
{
	struct fixture *fx = *state;
	struct berth_sing_runtime app, sce;
	char uidf[160], gidf[160], line[64];

	berth_sing_runtime_parse("apptainer version 1.4.5", &app);
	berth_sing_runtime_parse("singularity version 3.4.2", &sce);
	snprintf(uidf, sizeof(uidf), "%s/subuid", fx->dir);
	snprintf(gidf, sizeof(gidf), "%s/subgid", fx->dir);
	snprintf(line, sizeof(line), "%lu:100000:65536\n", (unsigned long)getuid());
	write_text(uidf, line);
	write_text(gidf, "");
	assert_int_equal(berth_sing_can_fakeroot(&app, getuid(), uidf, gidf, &fx->err), 0);
	assert_int_equal(berth_sing_can_fakeroot(&sce, getuid(), uidf, gidf, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "SingularityCE 3.4.2"));
	assert_non_null(strstr(fx->err.msg, "missing in "));
	assert_non_null(strstr(fx->err.msg, gidf));
	write_text(gidf, line);
	assert_int_equal(berth_sing_can_fakeroot(&sce, getuid(), uidf, gidf, &fx->err), 0);
}

/* The memo: a second probe spawns nothing; a changed binary is asked again. */
static void test_probe_memo(void **state)
{
	struct fixture *fx = *state;
	struct berth_sing_runtime rt;
	char bin[160], count[160], script[512];

	snprintf(bin, sizeof(bin), "%s/singularity", fx->dir);
	snprintf(count, sizeof(count), "%s/count", fx->dir);
	snprintf(script, sizeof(script), "#!/bin/sh\necho x >>%s\necho 'singularity version 3.4.2'\n",
		 count);
	write_text(bin, script);
	assert_int_equal(chmod(bin, 0755), 0);
	int dfd = open(fx->tree, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(berth_sing_runtime_probe(bin, dfd, &rt, &fx->err), 0);
	assert_string_equal(rt.number, "3.4.2");
	assert_int_equal(berth_sing_runtime_probe(bin, dfd, &rt, &fx->err), 0);
	struct stat st;
	assert_int_equal(stat(count, &st), 0);
	assert_int_equal(st.st_size, 2); /* one run */
	/* the binary replaced (another size): asked again */
	snprintf(script, sizeof(script), "#!/bin/sh\necho x >>%s\necho 'apptainer version 1.4.5'\n",
		 count);
	write_text(bin, script);
	assert_int_equal(berth_sing_runtime_probe(bin, dfd, &rt, &fx->err), 0);
	assert_true(rt.apptainer);
	assert_int_equal(stat(count, &st), 0);
	assert_int_equal(st.st_size, 4);
	/* no memo folder: always asked */
	assert_int_equal(berth_sing_runtime_probe(bin, -1, &rt, &fx->err), 0);
	assert_int_equal(stat(count, &st), 0);
	assert_int_equal(st.st_size, 6);
	close(dfd);
	assert_int_equal(berth_sing_runtime_probe("/nonexistent/singularity", -1, &rt, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "SingularityPath"));
}

static int setup(void **state)
{
	return fixture_setup(state, "/tmp/berth-singrt-XXXXXX", "memo", "out");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_flavours),
		cmocka_unit_test(test_compression),
		cmocka_unit_test(test_can_unshare),
		cmocka_unit_test_setup_teardown(test_subid, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_can_fakeroot, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_probe_memo, setup, fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
