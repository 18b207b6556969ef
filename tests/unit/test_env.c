/* Unit tests for pyxis's rules in executor/task.c and executor.c: the task's
 * environment (berth_task_env, berth_env_merge), the working directory
 * (berth_workdir_resolve), the entry point chain (berth_task_argv, run here
 * with the host's /bin/sh) and the /bin/sh probe (berth_executor_has_shell). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/executor.h"

/* The value of NAME in env, NULL when absent; fails on a duplicate. */
static const char *get(char **env, const char *name)
{
	size_t len = strlen(name);
	const char *found = NULL;

	for (size_t i = 0; env[i]; i++) {
		if (strncmp(env[i], name, len) || env[i][len] != '=')
			continue;
		assert_null(found);
		found = env[i] + len + 1;
	}
	return found;
}

/* berth_task_env of a job environment, an image Env and a keep list. */
static char **task_env(char **job, char **image_env, char **keep)
{
	struct berth_image img = {0};
	struct berth_err err = {0};
	size_t n = 0;

	while (image_env && image_env[n])
		n++;
	img.env = image_env;
	img.n_env = n;
	char **env = berth_task_env(job, &img, keep, &err);
	assert_non_null(env);
	return env;
}

static void test_job_locale_stays_out(void **state)
{
	char *job[] = {"LANG=en_US.UTF-8", "LANGUAGE=en_US:en", "LC_ALL=en_US.UTF-8",
		       "LC_CTYPE=de_DE.UTF-8", "LANGX=not-a-locale", "HOME=/home/u", NULL};
	char **env = task_env(job, NULL, NULL);

	(void)state;
	assert_null(get(env, "LANG"));
	assert_null(get(env, "LANGUAGE"));
	assert_null(get(env, "LC_ALL"));
	assert_null(get(env, "LC_CTYPE"));
	assert_string_equal(get(env, "LANGX"), "not-a-locale");
	assert_string_equal(get(env, "HOME"), "/home/u");
	berth_strv_free(env);
}

static void test_image_locale_applies(void **state)
{
	char *job[] = {"LANG=en_US.UTF-8", "LC_ALL=en_US.UTF-8", NULL};
	char *image[] = {"LANG=C.UTF-8", "LC_MESSAGES=POSIX", NULL};
	char **env = task_env(job, image, NULL);

	(void)state;
	assert_string_equal(get(env, "LANG"), "C.UTF-8");
	assert_string_equal(get(env, "LC_MESSAGES"), "POSIX");
	assert_null(get(env, "LC_ALL"));
	berth_strv_free(env);
}

static void test_kept_locale_comes_in(void **state)
{
	char *job[] = {"LANG=en_US.UTF-8", "LC_ALL=en_US.UTF-8", NULL};
	char *image[] = {"LANG=C.UTF-8", NULL};
	char *keep[] = {"LANG", NULL};
	char **env = task_env(job, image, keep);

	(void)state;
	assert_string_equal(get(env, "LANG"), "en_US.UTF-8");
	assert_null(get(env, "LC_ALL"));
	berth_strv_free(env);
}

static void test_kept_name_unset_in_job_keeps_image_value(void **state)
{
	char *job[] = {"HOME=/home/u", NULL};
	char *image[] = {"CUDA_HOME=/usr/local/cuda", "LANG=C.UTF-8", NULL};
	char *keep[] = {"CUDA_HOME", "LANG", NULL};
	char **env = task_env(job, image, keep);

	(void)state;
	assert_string_equal(get(env, "CUDA_HOME"), "/usr/local/cuda");
	assert_string_equal(get(env, "LANG"), "C.UTF-8");
	berth_strv_free(env);
}

static void test_kept_name_set_in_job_wins(void **state)
{
	char *job[] = {"PATH=/job/bin", "CUDA_HOME=/opt/cuda", NULL};
	char *image[] = {"PATH=/image/bin", "CUDA_HOME=/usr/local/cuda", NULL};
	char *keep[] = {"CUDA_HOME", NULL};
	char **env = task_env(job, image, keep);

	(void)state;
	assert_string_equal(get(env, "CUDA_HOME"), "/opt/cuda");
	assert_string_equal(get(env, "PATH"), "/image/bin"); /* not kept: the image's */
	berth_strv_free(env);
}

static void test_term_from_job(void **state)
{
	char *job[] = {"TERM=xterm-256color", "TERMINFO=/job", NULL};
	char *image[] = {"TERM=dumb", "TERMINFO=/image", NULL};
	char *no_term[] = {"HOME=/", NULL};
	char **env = task_env(job, image, NULL);

	(void)state;
	assert_string_equal(get(env, "TERM"), "xterm-256color");
	assert_string_equal(get(env, "TERMINFO"), "/image"); /* only TERM itself */
	berth_strv_free(env);
	env = task_env(no_term, image, NULL);
	assert_string_equal(get(env, "TERM"), "dumb");
	berth_strv_free(env);
}

static void test_slurm_from_job_only(void **state)
{
	char *job[] = {"SLURM_PROCID=3", NULL};
	char *image[] = {"SLURM_PROCID=0", "SLURM_FAKE=1", NULL};
	char **env = task_env(job, image, NULL);

	(void)state;
	assert_string_equal(get(env, "SLURM_PROCID"), "3");
	assert_null(get(env, "SLURM_FAKE"));
	berth_strv_free(env);
}

static void test_malformed_entries_skipped(void **state)
{
	char *job[] = {"NOEQUALS", "=value", "OK=1", NULL};
	char *image[] = {"ALSO_NO_EQUALS", "=x", "EMPTY=", NULL};
	char **env = task_env(job, image, NULL);
	size_t n = 0;

	(void)state;
	while (env[n])
		n++;
	assert_int_equal(n, 2);
	assert_string_equal(get(env, "OK"), "1");
	assert_string_equal(get(env, "EMPTY"), "");
	berth_strv_free(env);
}

/* berth_env_merge itself (berth run's --env layers) keeps locale names. */
static void test_merge_keeps_locale(void **state)
{
	char *base[] = {"LANG=C.UTF-8", "TERM=dumb", NULL};
	char *over[] = {"TERM=xterm", NULL};
	struct berth_image img = {.env = over, .n_env = 1};
	struct berth_err err = {0};
	char **env = berth_env_merge(base, &img, NULL, &err);

	(void)state;
	assert_non_null(env);
	assert_string_equal(get(env, "LANG"), "C.UTF-8");
	assert_string_equal(get(env, "TERM"), "xterm");
	berth_strv_free(env);
}

/* ---- working directory ---- */

static void expect_workdir(const char *in, const char *want)
{
	char out[PATH_MAX];
	struct berth_err err = {0};

	assert_int_equal(berth_workdir_resolve(in, out, sizeof(out), &err), 0);
	assert_string_equal(out, want);
}

static void test_workdir_relative(void **state)
{
	(void)state;
	expect_workdir("data", "/data");
	expect_workdir("./data/", "/data");
	expect_workdir("a/b/../c", "/a/c");
	expect_workdir(".", "/");
	expect_workdir("...", "/...");
	expect_workdir("..x/y", "/..x/y");
}

static void test_workdir_dotdot_clamps_at_root(void **state)
{
	(void)state;
	expect_workdir("../", "/");
	expect_workdir("..", "/");
	expect_workdir("../../etc", "/etc");
	expect_workdir("a/../../b", "/b");
	expect_workdir("/../..", "/");
}

static void test_workdir_absolute_cleaned(void **state)
{
	(void)state;
	expect_workdir("/", "/");
	expect_workdir("/work", "/work");
	expect_workdir("//a///b/./c/", "/a/b/c");
	expect_workdir("/a/b/..", "/a");
}

static void test_workdir_errors(void **state)
{
	char out[8], big[PATH_MAX + 8];
	struct berth_err err = {0};

	(void)state;
	assert_int_equal(berth_workdir_resolve("", out, sizeof(out), &err), -1);
	assert_non_null(strstr(err.msg, "empty"));
	assert_int_equal(berth_workdir_resolve("abcdefgh", out, sizeof(out), &err), -1);
	assert_int_equal(berth_workdir_resolve("abcdef", out, sizeof(out), &err), 0);
	assert_string_equal(out, "/abcdef");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char path[PATH_MAX];
	assert_int_equal(berth_workdir_resolve(big, path, sizeof(path), &err), -1);
}

/* ---- entry point ---- */

static char *ep_argv[] = {"/bin/sh", "-c",
			  "echo ep-out; echo ep-err >&2; echo \"ep-env:$BERTH_T\"; "
			  "export FROM_EP=yes; exec \"$@\"", "ep"};
static char *cmd_argv[] = {"/bin/sh", "-c",
			   "echo cmd-out; echo cmd-err >&2; echo \"cmd-env:$BERTH_T:$FROM_EP\"",
			   NULL};

static struct berth_image ep_image(void)
{
	return (struct berth_image){.entrypoint = ep_argv, .n_entrypoint = 4};
}

static size_t count(char **v)
{
	size_t n = 0;

	while (v[n])
		n++;
	return n;
}

static void test_argv_without_entrypoint(void **state)
{
	struct berth_image img = ep_image(), none = {0};
	struct berth_err err = {0};
	char **argv = berth_task_argv(&img, cmd_argv, BERTH_EP_NONE, &err);

	(void)state;
	assert_int_equal(count(argv), 3);
	assert_string_equal(argv[2], cmd_argv[2]);
	berth_strv_free(argv);
	/* an image without ENTRYPOINT has nothing to hide: no wrapper */
	argv = berth_task_argv(&none, cmd_argv, BERTH_EP_QUIET, &err);
	assert_int_equal(count(argv), 3);
	berth_strv_free(argv);
	assert_null(berth_task_argv(&img, (char *[]){NULL}, BERTH_EP_LOG, &err));
}

static void test_argv_shapes(void **state)
{
	struct berth_image img = ep_image();
	struct berth_err err = {0};
	char **log = berth_task_argv(&img, cmd_argv, BERTH_EP_LOG, &err);
	char **quiet = berth_task_argv(&img, cmd_argv, BERTH_EP_QUIET, &err);

	(void)state;
	assert_int_equal(count(log), 4 + 3);
	assert_string_equal(log[3], "ep");
	assert_string_equal(log[4], "/bin/sh");
	/* sh -c HIDE sh, the entry point, sh -c SHOW sh, the command */
	assert_int_equal(count(quiet), 4 + 4 + 4 + 3);
	assert_string_equal(quiet[0], "/bin/sh");
	assert_string_equal(quiet[3], "sh");
	assert_string_equal(quiet[4], "/bin/sh");
	assert_string_equal(quiet[7], "ep");
	assert_string_equal(quiet[8], "/bin/sh");
	assert_string_equal(quiet[11], "sh");
	assert_string_equal(quiet[14], cmd_argv[2]);
	berth_strv_free(log);
	berth_strv_free(quiet);
}

/* All of fd into buf (NUL-terminated). */
static void read_all(int fd, char *buf, size_t len)
{
	size_t have = 0;
	ssize_t n;

	while (have + 1 < len && (n = read(fd, buf + have, len - 1 - have)) > 0)
		have += (size_t)n;
	buf[have] = '\0';
	close(fd);
}

static char *default_envp[] = {"BERTH_T=t", "PATH=/usr/bin:/bin", NULL};

/* Run argv on the host with envp; its stdout and stderr into out/errb. */
static void run_argv_in(char **argv, char **envp, char *out, size_t out_len, char *errb,
			size_t err_len)
{
	int o[2], e[2], status;
	posix_spawn_file_actions_t fa;
	pid_t pid;

	assert_int_equal(pipe(o), 0);
	assert_int_equal(pipe(e), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, o[1], 1);
	posix_spawn_file_actions_adddup2(&fa, e[1], 2);
	assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, argv, envp), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(o[1]);
	close(e[1]);
	read_all(o[0], out, out_len);
	read_all(e[0], errb, err_len);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Run argv on the host with BERTH_T=t. */
static void run_argv(char **argv, char *out, size_t out_len, char *errb, size_t err_len)
{
	run_argv_in(argv, default_envp, out, out_len, errb, err_len);
}

/* issue 26: the entry point sees neither the job's variables (BERTH_T,
 * JOB_X) nor their carrier; the command gets them back, values
 * unchanged; a kept name stays in the entry point's view. */
static void test_entrypoint_sees_image_env_only(void **state)
{
	static char *ep_env[] = {"/bin/sh", "-c",
				 "echo \"ep:$BERTH_T:$JOB_X:$KEEP_ME:${BERTH_TASK_ENV:-none}\"; "
				 "export FROM_EP=yes; exec \"$@\"", "ep", NULL};
	static char *cmd[] = {"/bin/sh", "-c",
			      "printf 'cmd:%s:%s:%s:%s\\n' \"$BERTH_T\" \"$JOB_X\" \"$FROM_EP\" "
			      "\"${BERTH_TASK_ENV:-none}\"", NULL};
	struct berth_image img = {.entrypoint = ep_env, .n_entrypoint = 4};
	char *keep[] = {"KEEP_ME", NULL};
	const char *tricky = "it's $HOME \"b\" \\n 100% `x` \\047";
	struct berth_err err = {0};
	char out[1024], errb[256], want[512];

	(void)state;
	for (int quiet = 0; quiet < 2; quiet++) {
		struct berth_strv env = {0};
		assert_int_equal(berth_strv_add(&env, "BERTH_T=t", &err), 0);
		assert_int_equal(berth_strv_add(&env, "PATH=/usr/bin:/bin", &err), 0);
		assert_int_equal(berth_strv_add(&env, "KEEP_ME=k", &err), 0);
		char job_x[256];
		snprintf(job_x, sizeof(job_x), "JOB_X=%s", tricky);
		assert_int_equal(berth_strv_add(&env, job_x, &err), 0);
		char **argv = berth_task_argv_env(&img, cmd, quiet ? BERTH_EP_QUIET : BERTH_EP_LOG,
						  &env.v, keep, &err);
		assert_non_null(argv);
		run_argv_in(argv, env.v, out, sizeof(out), errb, sizeof(errb));
		snprintf(want, sizeof(want), "%scmd:t:%s:yes:none\n", quiet ? "" : "ep:::k:none\n",
			 tricky);
		assert_string_equal(out, want);
		assert_string_equal(errb, "");
		for (size_t i = 0; argv[i]; i++) /* no value in argv */
			assert_null(strstr(argv[i], "100"));
		berth_strv_free(argv);
		berth_strv_free(env.v);
	}
}

static void test_quiet_entrypoint_hides_only_its_output(void **state)
{
	struct berth_image img = ep_image();
	struct berth_err err = {0};
	char **argv = berth_task_argv(&img, cmd_argv, BERTH_EP_QUIET, &err);
	char out[256], errb[256];

	(void)state;
	run_argv(argv, out, sizeof(out), errb, sizeof(errb));
	assert_string_equal(out, "cmd-out\ncmd-env:t:yes\n");
	assert_string_equal(errb, "cmd-err\n");
	berth_strv_free(argv);
}

static void test_logged_entrypoint_shows_its_output(void **state)
{
	struct berth_image img = ep_image();
	struct berth_err err = {0};
	char **argv = berth_task_argv(&img, cmd_argv, BERTH_EP_LOG, &err);
	char out[256], errb[256];

	(void)state;
	run_argv(argv, out, sizeof(out), errb, sizeof(errb));
	assert_string_equal(out, "ep-out\nep-env:t\ncmd-out\ncmd-env:t:yes\n");
	assert_string_equal(errb, "ep-err\ncmd-err\n");
	berth_strv_free(argv);
}

/* ---- /bin/sh in a cached tree ---- */

#define HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct tree {
	char dir[64];
	struct berth_executor ex;
};

static int tree_setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));
	char root[PATH_MAX];

	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/berth-test-env-XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	t->ex.ops = &berth_charliecloud_ops;
	snprintf(t->ex.cache.dir, sizeof(t->ex.cache.dir), "%s", t->dir);
	snprintf(t->ex.digest, sizeof(t->ex.digest), "sha256:" HEX);
	snprintf(root, sizeof(root), "mkdir -p %s/images/" HEX "/rootfs/usr/bin", t->dir);
	if (system(root) != 0)
		return -1;
	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;

	if (berth_remove_tree(AT_FDCWD, t->dir) < 0)
		return -1;
	free(t);
	return 0;
}

/* Run a shell command inside the tree's rootfs. */
static void in_root(struct tree *t, const char *what)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cd %s/images/" HEX "/rootfs && %s", t->dir, what);
	assert_int_equal(system(cmd), 0);
}

static void test_has_shell(void **state)
{
	struct tree *t = *state;

	/* Without openat2 (kernels before 5.6, valgrind 3.19) nothing is known */
	struct open_how how = {.flags = O_PATH};
	if (syscall(SYS_openat2, -1, "", &how, sizeof(how)) < 0 && errno == ENOSYS) {
		assert_true(berth_executor_has_shell(&t->ex));
		skip();
	}
	assert_false(berth_executor_has_shell(&t->ex));
	/* /bin -> /usr/bin (absolute: resolved inside the tree, not on the
	 * host, whose /usr/bin/sh may well exist) */
	in_root(t, "ln -s /usr/bin bin");
	assert_false(berth_executor_has_shell(&t->ex));
	in_root(t, "ln -s busybox usr/bin/sh && printf x >usr/bin/busybox");
	assert_false(berth_executor_has_shell(&t->ex)); /* not executable */
	in_root(t, "chmod 755 usr/bin/busybox");
	assert_true(berth_executor_has_shell(&t->ex));
	/* a SIF or Docker image (no tree) cannot be looked into: assumed */
	snprintf(t->ex.digest, sizeof(t->ex.digest), "sha256:%064d", 0);
	assert_true(berth_executor_has_shell(&t->ex));
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
		T(test_job_locale_stays_out),
		T(test_image_locale_applies),
		T(test_kept_locale_comes_in),
		T(test_kept_name_unset_in_job_keeps_image_value),
		T(test_kept_name_set_in_job_wins),
		T(test_term_from_job),
		T(test_slurm_from_job_only),
		T(test_malformed_entries_skipped),
		T(test_merge_keeps_locale),
		T(test_workdir_relative),
		T(test_workdir_dotdot_clamps_at_root),
		T(test_workdir_absolute_cleaned),
		T(test_workdir_errors),
		T(test_argv_without_entrypoint),
		T(test_argv_shapes),
		T(test_quiet_entrypoint_hides_only_its_output),
		T(test_entrypoint_sees_image_env_only),
		T(test_logged_entrypoint_shows_its_output),
		cmocka_unit_test_setup_teardown(test_has_shell, tree_setup, tree_teardown),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
