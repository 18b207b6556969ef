/* Unit tests for --container-name parsing (conf/names.c), what each
 * runtime can do (executor/caps.c) and the remap-root seccomp filter
 * (executor/fakeroot.c). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "executor/runtime/caps.h"
#include "executor/runtime/fakeroot.h"
#include "conf/names.h"
#include "conf/unshare.h"

static void test_name_forms(void **state)
{
	struct berth_err err = {0};
	char name[BERTH_NAME_MAX];
	enum berth_name_mode mode;
	static const struct {
		const char *text, *name;
		enum berth_name_mode mode;
	} good[] = {
		{"build", "build", BERTH_NAME_AUTO},
		{"my-env_2.x", "my-env_2.x", BERTH_NAME_AUTO},
		{"x:auto", "x", BERTH_NAME_AUTO},
		{"x:create", "x", BERTH_NAME_CREATE},
		{"x:exec", "x", BERTH_NAME_EXEC},
		{"x:no_create", "x", BERTH_NAME_NO_CREATE},
		{"x:no_exec", "x", BERTH_NAME_NO_EXEC},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		assert_int_equal(berth_name_parse(good[i].text, name, &mode, &err), 0);
		assert_string_equal(name, good[i].name);
		assert_int_equal(mode, good[i].mode);
	}
	assert_string_equal(berth_name_mode_str(BERTH_NAME_NO_EXEC), "no_exec");
}

/* pyxis's JOBID.STEPID: digits, a dot, digits; nothing else. */
static void test_name_is_step(void **state)
{
	(void)state;
	assert_true(berth_name_is_step("1234.0"));
	assert_true(berth_name_is_step("7.12"));
	assert_false(berth_name_is_step("1234"));
	assert_false(berth_name_is_step("1234."));
	assert_false(berth_name_is_step(".0"));
	assert_false(berth_name_is_step("12a.0"));
	assert_false(berth_name_is_step("12.0.1"));
	assert_false(berth_name_is_step("12.batch"));
}

static void test_name_refused(void **state)
{
	static const struct {
		const char *text, *phrase;
	} bad[] = {
		{"", "1 to 63"},           {"/tmp/foo", "letters, digits"},
		{"../x", "letters, digits"}, {"-x", "letters, digits"},
		{".x", "letters, digits"}, {"a b", "letters, digits"},
		{"x:", "empty mode"},      {"x:sometimes", "must be auto"},
		{":exec", "1 to 63"},
		{"a123456789012345678901234567890123456789012345678901234567890123", "1 to 63"},
	};
	char name[BERTH_NAME_MAX];
	enum berth_name_mode mode;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct berth_err err = {0};
		assert_int_equal(berth_name_parse(bad[i].text, name, &mode, &err), -1);
		if (!strstr(err.msg, bad[i].phrase))
			fail_msg("'%s': '%s' lacks '%s'", bad[i].text, err.msg, bad[i].phrase);
	}
}

static struct berth_mount bind_with(unsigned flags, enum berth_propagation p)
{
	return (struct berth_mount){.kind = BERTH_MOUNT_BIND, .src = "/a", .dst = "/b",
				    .flags = flags, .propagation = p};
}

/* The table the plugin refuses by at submission and the nodes by at start. */
static void test_caps_table(void **state)
{
	struct berth_err err = {0};
	struct berth_mount tmpfs = {.kind = BERTH_MOUNT_TMPFS, .src = "tmpfs", .dst = "/t",
				    .flags = BERTH_MNT_NOEXEC};

	(void)state;
	for (int rt = 0; rt < BERTH_RT_COUNT; rt++) {
		struct berth_mount plain = bind_with(0, BERTH_PROP_DEFAULT);
		assert_int_equal(berth_runtime_can_mount(rt, &plain, &err), 0);
		assert_int_equal(berth_runtime_can_mount(rt, &tmpfs, &err), 0);
		struct berth_mount unb = bind_with(0, BERTH_PROP_UNBINDABLE);
		assert_int_equal(berth_runtime_can_mount(rt, &unb, &err), -1);
		assert_non_null(strstr(err.msg, "unbindable"));
	}
	struct berth_mount flagged = bind_with(BERTH_MNT_NOEXEC | BERTH_MNT_NOSUID, 0);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_CHARLIECLOUD, &flagged, &err), 0);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_SINGULARITY, &flagged, &err), 0);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_DOCKER, &flagged, &err), -1);
	assert_non_null(strstr(err.msg, "no-new-privileges"));
	struct berth_mount rslave = bind_with(0, BERTH_PROP_RSLAVE);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_DOCKER, &rslave, &err), 0);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_CHARLIECLOUD, &rslave, &err), -1);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_SINGULARITY, &rslave, &err), -1);
	struct berth_mount priv = bind_with(0, BERTH_PROP_RPRIVATE);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_CHARLIECLOUD, &priv, &err), 0);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_SINGULARITY, &priv, &err), -1);
	assert_int_equal(berth_runtime_can_remap_root(BERTH_RT_CHARLIECLOUD, &err), 0);
	assert_int_equal(berth_runtime_can_remap_root(BERTH_RT_SINGULARITY, &err), 0);
	assert_int_equal(berth_runtime_can_remap_root(BERTH_RT_DOCKER, &err), -1);
	assert_int_equal(berth_runtime_can_name(BERTH_RT_CHARLIECLOUD, &err), 0);
	assert_int_equal(berth_runtime_can_name(BERTH_RT_DOCKER, &err), -1);
	/* umount:DST: ch-run's /etc/passwd and /etc/group only */
	struct berth_mount um = {.kind = BERTH_MOUNT_UMOUNT, .src = "umount", .dst = "/etc/passwd"};
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_CHARLIECLOUD, &um, &err), 0);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_SINGULARITY, &um, &err), -1);
	assert_non_null(strstr(err.msg, "singularity cannot leave out"));
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_DOCKER, &um, &err), -1);
	um.dst = "/dev/shm";
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_CHARLIECLOUD, &um, &err), -1);
	assert_non_null(strstr(err.msg, "only its /etc/passwd and /etc/group"));
	/* Docker's tmpfs takes nr_inodes=, not huge= */
	struct berth_mount huge = {.kind = BERTH_MOUNT_TMPFS, .src = "tmpfs", .dst = "/t",
				   .tmpfs_extra = "nr_inodes=8,huge=always"};
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_CHARLIECLOUD, &huge, &err), 0);
	assert_int_equal(berth_runtime_can_mount(BERTH_RT_DOCKER, &huge, &err), -1);
	assert_non_null(strstr(err.msg, "cannot take 'huge=always'"));
}

/* In a child: with the filter, chown to someone else and setuid(0)
 * "succeed" and change nothing; without it they fail. */
static void test_fake_id_syscalls(void **state)
{
	char path[] = "/tmp/berth-fakeroot-XXXXXX";
	int fd = mkstemp(path);
	struct stat st;
	int status;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	if (geteuid() != 0) /* root may chown for real: only the filtered half */
		assert_int_not_equal(chown(path, 4242, 4242), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct berth_err err = {0};
		uid_t before = getuid();
		if (berth_fake_id_syscalls(&err) < 0)
			_exit(errno == ENOSYS ? 77 : 10); /* valgrind 3.19 lacks seccomp() */
		if (geteuid() != 0 && chown(path, 4242, 4242) != 0)
			_exit(11);
		if (setuid(0) != 0 || setgid(0) != 0 || setgroups(0, NULL) != 0)
			_exit(12);
		if (getuid() != before)
			_exit(13); /* faked, not done */
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		unlink(path);
		skip();
	}
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(stat(path, &st), 0);
	if (geteuid() != 0)
		assert_int_equal(st.st_uid, getuid()); /* the owner did not change */
	unlink(path);
}

/* --container-unshare: net, ipc, uts in any order and number; any other
 * word, an empty item or an empty list is refused, naming the word. */
static void test_unshare_list(void **state)
{
	struct berth_err err = {0};
	unsigned mask = 99;
	char text[32];

	(void)state;
	assert_int_equal(berth_unshare_parse("net", "--x", &mask, &err), 0);
	assert_int_equal(mask, BERTH_UNSHARE_NET);
	assert_int_equal(berth_unshare_parse("uts,net,ipc,net", "--x", &mask, &err), 0);
	assert_int_equal(mask, BERTH_UNSHARE_NET | BERTH_UNSHARE_IPC | BERTH_UNSHARE_UTS);
	berth_unshare_format(mask, text, sizeof(text));
	assert_string_equal(text, "net,ipc,uts");
	berth_unshare_format(BERTH_UNSHARE_UTS, text, sizeof(text));
	assert_string_equal(text, "uts");
	berth_unshare_format(0, text, sizeof(text));
	assert_string_equal(text, "");
	static const char *const bad[] = {"pid", "net,pid", "nett", "net,", ",net", "",
					  "net,,ipc", "NET", "net ipc"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(berth_unshare_parse(bad[i], "--container-unshare", &mask, &err), -1);
		assert_non_null(strstr(err.msg, "--container-unshare="));
		assert_non_null(strstr(err.msg, "give a comma-separated list of net, ipc and uts"));
	}
	assert_int_equal(berth_unshare_parse("net,pid", "--x", &mask, &err), -1);
	assert_non_null(strstr(err.msg, "'pid' is not a namespace"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_forms),
		cmocka_unit_test(test_name_refused),
		cmocka_unit_test(test_name_is_step),
		cmocka_unit_test(test_caps_table),
		cmocka_unit_test(test_fake_id_syscalls),
		cmocka_unit_test(test_unshare_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
