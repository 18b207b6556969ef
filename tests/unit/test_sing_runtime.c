/* Unit tests: the Singularity flavour and release behind SingularityPath
 * (executor/runtime/sing_runtime.c): --version parsing and what each
 * release can do, the installation (setuid starter), the compression a
 * SIF gets, /etc/subuid entries, what a step may ask of each (the check
 * the plugin runs at submission and the launcher at the step's start),
 * and the memo of the probe. */
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

/* What each release can do, from its number. */
static void test_parse_abilities(void **state)
{
	struct berth_sing_runtime rt;

	(void)state;
	berth_sing_runtime_parse("apptainer version 1.4.5", &rt);
	assert_int_equal(rt.major, 1);
	assert_int_equal(rt.minor, 4);
	assert_true(rt.fakeroot && rt.writable_tmpfs && rt.overlay_in_userns && rt.no_pid);
	assert_false(rt.no_pid_with_containall);
	assert_false(rt.setuid || rt.squashfuse); /* the installation is not parsed */
	/* Apptainer 1.0: --fakeroot without --ignore-subuid */
	berth_sing_runtime_parse("apptainer version 1.0.3", &rt);
	assert_true(rt.fakeroot);
	assert_false(rt.fakeroot_ignore_subuid);
	berth_sing_runtime_parse("singularity version 3.4.2", &rt);
	assert_int_equal(rt.major, 3);
	assert_int_equal(rt.minor, 4);
	assert_true(rt.fakeroot && rt.writable_tmpfs);
	assert_false(rt.overlay_in_userns || rt.no_pid || rt.fakeroot_ignore_subuid);
	/* --fakeroot came with 3.3, --writable-tmpfs with 3.0 */
	berth_sing_runtime_parse("singularity version 3.2.1-1", &rt);
	assert_false(rt.fakeroot);
	assert_true(rt.writable_tmpfs);
	berth_sing_runtime_parse("2.6.1-dist", &rt);
	assert_int_equal(rt.major, 2);
	assert_false(rt.fakeroot || rt.writable_tmpfs);
	berth_sing_runtime_parse("singularity-ce version 4.1.0-jammy", &rt);
	assert_int_equal(rt.major, 4);
	assert_true(rt.fakeroot && rt.writable_tmpfs);
	assert_false(rt.overlay_in_userns);
	/* no number: taken for a current release, nothing refused on a guess */
	berth_sing_runtime_parse("singularity version unknown", &rt);
	assert_int_equal(rt.major, 0);
	assert_true(rt.fakeroot && rt.writable_tmpfs);
}

/* A setuid starter counts only when it is root's and u+s. */
static void test_install(void **state)
{
	struct fixture *fx = *state;
	struct berth_sing_runtime rt;
	char path[256], bin[256];

	snprintf(path, sizeof(path), "%s/bin", fx->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(bin, sizeof(bin), "%s/bin/singularity", fx->dir);
	write_text(bin, "#!/bin/sh\n");
	snprintf(path, sizeof(path), "%s/libexec", fx->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/libexec/singularity", fx->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/libexec/singularity/bin", fx->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	berth_sing_runtime_parse("singularity version 3.4.2", &rt);
	berth_sing_runtime_install(bin, &rt);
	assert_false(rt.setuid);
	snprintf(path, sizeof(path), "%s/libexec/singularity/bin/starter-suid", fx->dir);
	write_text(path, "");
	assert_int_equal(chmod(path, 0755), 0);
	berth_sing_runtime_install(bin, &rt);
	assert_false(rt.setuid); /* not u+s */
	if (geteuid() == 0) {
		assert_int_equal(chmod(path, 04755), 0);
		berth_sing_runtime_install(bin, &rt);
		assert_true(rt.setuid);
		assert_string_equal(strrchr(rt.starter, '/'), "/starter-suid");
		struct berth_config cfg = {.sing_format = BERTH_SING_AUTO};
		struct berth_sing_choice c;
		struct berth_err err = {0};
		assert_int_equal(berth_sing_choose_format(&cfg, &rt, NULL, &c, &err), 0);
		assert_int_equal(c.format, BERTH_SING_SIF);
		assert_non_null(strstr(c.why, "setuid"));
	}
}

/* SingularityImageFormat=auto x ImageStorage x setuid x FUSE: what is
 * staged, whether berth mounts it, what the runtime is given. */
static void test_choose_format(void **state)
{
	(void)state;
	enum { REFUSED = -1 };
	static const struct {
		enum berth_image_storage storage;
		bool setuid, fuse;
		int format; /* or REFUSED */
		bool mount;
		const char *why;
	} rows[] = {
		{BERTH_STORE_TREE, false, true, BERTH_SING_SANDBOX, false, "ImageStorage=tree"},
		{BERTH_STORE_TREE, false, false, BERTH_SING_SANDBOX, false, "ImageStorage=tree"},
		{BERTH_STORE_SQUASHFS, false, true, BERTH_SING_SIF, true, "mounted by berth"},
		{BERTH_STORE_SQUASHFS, false, false, REFUSED, false, "install squashfuse"},
		{BERTH_STORE_AUTO, false, true, BERTH_SING_SIF, true, "mounted by berth"},
		{BERTH_STORE_AUTO, false, false, BERTH_SING_SANDBOX, false, "cannot open /dev/fuse"},
		/* a setuid starter mounts the SIF itself, whatever ImageStorage says */
		{BERTH_STORE_TREE, true, true, BERTH_SING_SIF, false, "setuid"},
		{BERTH_STORE_TREE, true, false, BERTH_SING_SIF, false, "setuid"},
		{BERTH_STORE_SQUASHFS, true, true, BERTH_SING_SIF, false, "setuid"},
		{BERTH_STORE_SQUASHFS, true, false, BERTH_SING_SIF, false, "setuid"},
		{BERTH_STORE_AUTO, true, true, BERTH_SING_SIF, false, "setuid"},
		{BERTH_STORE_AUTO, true, false, BERTH_SING_SIF, false, "setuid"},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		struct berth_config cfg = {.sing_format = BERTH_SING_AUTO,
					   .image_storage = rows[i].storage};
		struct berth_sing_runtime rt;
		struct berth_sing_choice c;
		struct berth_err err = {0};
		const char *fuse_why = rows[i].fuse ? NULL : "cannot open /dev/fuse: Permission denied";

		snprintf(cfg.squashfuse_path, sizeof(cfg.squashfuse_path), "/usr/bin/squashfuse_ll");
		berth_sing_runtime_parse("apptainer version 1.4.5", &rt);
		rt.setuid = rows[i].setuid;
		rt.squashfuse = rows[i].fuse;
		int rc = berth_sing_choose_format(&cfg, &rt, fuse_why, &c, &err);
		if (rows[i].format == REFUSED) {
			assert_int_equal(rc, -1);
			assert_non_null(strstr(err.msg, "ImageStorage=squashfs"));
			assert_non_null(strstr(err.msg, rows[i].why));
			assert_non_null(strstr(err.msg, fuse_why));
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(c.format, rows[i].format);
		assert_int_equal(c.mount, rows[i].mount);
		/* a SIF berth mounts reaches the runtime as a folder */
		assert_int_equal(c.runs, rows[i].mount ? BERTH_SING_SANDBOX : c.format);
		assert_non_null(strstr(c.why, rows[i].why));
		/* an explicit SingularityImageFormat wins, and the runtime mounts */
		cfg.sing_format = rows[i].format == BERTH_SING_SIF ? BERTH_SING_SANDBOX : BERTH_SING_SIF;
		assert_int_equal(berth_sing_choose_format(&cfg, &rt, fuse_why, &c, &err), 0);
		assert_int_equal(c.format, cfg.sing_format);
		assert_false(c.mount);
		assert_int_equal(c.runs, cfg.sing_format);
		assert_non_null(strstr(c.why, "SingularityImageFormat"));
	}
}

/* check() on a setuid SingularityCE 3.4.2 keeping SIFs, then on Apptainer
 * 1.4.5 (user namespaces) and a setuid one keeping sandboxes. */
static void test_check(void **state)
{
	struct fixture *fx = *state;
	struct berth_sing_runtime sce, app;
	struct berth_mount noexec = {.kind = BERTH_MOUNT_BIND, .src = "/data", .dst = "/d",
				     .flags = BERTH_MNT_NOEXEC};
	char uidf[160], gidf[160], line[64];
	bool userns = true;

	snprintf(uidf, sizeof(uidf), "%s/subuid", fx->dir);
	snprintf(gidf, sizeof(gidf), "%s/subgid", fx->dir);
	write_text(uidf, "");
	write_text(gidf, "");
	berth_sing_runtime_parse("singularity version 3.4.2", &sce);
	sce.setuid = true;
	snprintf(sce.starter, sizeof(sce.starter), "/opt/s/libexec/singularity/bin/starter-suid");
	berth_sing_runtime_parse("apptainer version 1.4.5", &app);
	struct berth_sing_ask base = {.uid = getuid(), .format = BERTH_SING_SIF,
				      .subuid = uidf, .subgid = gidf};
	struct berth_sing_ask a = base;
	struct berth_err *err = &fx->err;

	/* nothing special: fine everywhere, no --userns */
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), 0);
	assert_false(userns);
	a.writable = true; /* --writable-tmpfs under the setuid starter */
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), 0);
	/* tmpfs: berth's namespace, where the starter mounts no SIF */
	a = base, a.tmpfs = true;
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "tmpfs mounts with SingularityCE 3.4.2: this setuid "
				"installation needs the sandbox image format"));
	assert_non_null(strstr(err->msg, "SingularityImageFormat=sandbox"));
	a.missing_workdir = true, a.tmpfs = false;
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "a working folder the image lacks with SingularityCE"));
	/* with sandboxes: --userns */
	a.format = BERTH_SING_SANDBOX;
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), 0);
	assert_true(userns);
	/* ... but then no overlay for --container-writable */
	a.writable = true;
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "--container-writable with tmpfs mounts on "
				"SingularityCE 3.4.2: it makes no overlay"));
	assert_int_equal(berth_sing_check(&app, &a, &userns, err), 0);
	assert_false(userns); /* Apptainer without setuid: nothing to switch */
	/* a noexec bind under a setuid starter: refused in any format */
	a = base, a.noexec = &noexec;
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "bind '/data:/d': noexec binds are not supported with "
				"SingularityCE 3.4.2 installed setuid (/opt/s/"));
	assert_int_equal(berth_sing_check(&app, &a, &userns, err), 0);
	/* a named container: a sandbox only */
	a = base, a.named = true;
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "--container-name with singularity needs the sandbox "
				"image format (SingularityCE 3.4.2"));
	assert_int_equal(berth_sing_check(&app, &a, &userns, err), -1);
	a.format = BERTH_SING_SANDBOX;
	assert_int_equal(berth_sing_check(&app, &a, &userns, err), 0);
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), 0);
	assert_true(userns);
	a.raw_image = true; /* a .sif the user gave */
	assert_int_equal(berth_sing_check(&app, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "the image is a SIF file"));
	/* --container-remap-root: subuid ranges on SingularityCE */
	a = base, a.remap_root = true;
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "--container-remap-root with SingularityCE 3.4.2 needs"));
	assert_int_equal(berth_sing_check(&app, &a, &userns, err), 0);
	snprintf(line, sizeof(line), "%lu:100000:65536\n", (unsigned long)getuid());
	write_text(uidf, line);
	write_text(gidf, line);
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), 0);
	/* ... never with --writable (no overlay under --fakeroot) */
	a.writable = true;
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "--container-writable with --container-remap-root on "
				"SingularityCE 3.4.2"));
	assert_int_equal(berth_sing_check(&app, &a, &userns, err), 0);
	/* ... nor inside berth's namespace */
	a.writable = false, a.tmpfs = true, a.format = BERTH_SING_SANDBOX;
	assert_int_equal(berth_sing_check(&sce, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "--container-remap-root with tmpfs mounts on "
				"SingularityCE 3.4.2 installed setuid"));
	/* a release without --fakeroot / --writable-tmpfs: said, not passed */
	struct berth_sing_runtime old;
	berth_sing_runtime_parse("singularity version 2.6.1", &old);
	a = base, a.remap_root = true;
	assert_int_equal(berth_sing_check(&old, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "it has no --fakeroot"));
	a = base, a.writable = true;
	assert_int_equal(berth_sing_check(&old, &a, &userns, err), -1);
	assert_non_null(strstr(err->msg, "it has no --writable-tmpfs"));
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
		cmocka_unit_test(test_parse_abilities),
		cmocka_unit_test(test_compression),
		cmocka_unit_test(test_can_unshare),
		cmocka_unit_test(test_choose_format),
		cmocka_unit_test_setup_teardown(test_install, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_check, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_subid, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_can_fakeroot, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_probe_memo, setup, fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
