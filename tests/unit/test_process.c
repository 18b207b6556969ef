/* Unit tests for berth_fork_forwarding (executor/base/process.c): the
 * child's status as a shell gives it, and a signal this process gets
 * passed on to the child. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "executor/base/process.h"

/* The helper leaves every signal blocked (its caller exits next): give
 * the test its mask back. */
static void unblock_all(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void exit_7(void *arg)
{
	(void)arg;
	_exit(7);
}

static void signal_parent_then_wait(void *arg)
{
	(void)arg;
	kill(getppid(), SIGUSR1); /* the parent passes it back to us */
	for (;;)
		pause();
}

static void test_exit_status(void **state)
{
	struct berth_err err = {0};

	(void)state;
	assert_int_equal(berth_fork_forwarding(exit_7, NULL, &err), 7);
	unblock_all();
}

static void test_signal_forwarded(void **state)
{
	struct berth_err err = {0};

	(void)state;
	assert_int_equal(berth_fork_forwarding(signal_parent_then_wait, NULL, &err),
			 128 + SIGUSR1);
	unblock_all();
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Is `pid` gone (or a zombie waiting for whoever reaps orphans here)? */
static bool gone(long pid)
{
	char path[64], stat[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (!(f = fopen(path, "r")))
		return true;
	bool zombie = fgets(stat, sizeof(stat), f) && strstr(stat, ") Z ");
	fclose(f);
	return zombie;
}

/* The stopped stager's own child must be gone too (the whole group was
 * signalled); poll a little. */
static void assert_gone(const char *text)
{
	long pid = strtol(text, NULL, 10);

	assert_true(pid > 1);
	for (int i = 0; i < 50 && !gone(pid); i++)
		usleep(20000);
	assert_true(gone(pid));
}

/* The pid the program's background child wrote to `path`. */
static void read_pid(const char *path, char *pid, size_t len)
{
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	assert_non_null(fgets(pid, (int)len, f));
	fclose(f);
	unlink(path);
}

/* A stager that ignores SIGTERM (its child too) and whose child holds the
 * output pipe: StageTimeout must still end both, within ~3 s. */
static void test_timeout_kills_group(void **state)
{
	char path[] = "/tmp/berth-test-timeout-XXXXXX";
	int fd = mkstemp(path);
	char cmd[256], pid[32] = "";
	(void)state;
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "trap '' TERM; sleep 60 & echo $! > %s; wait", path);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	char *out = NULL;
	struct berth_err err = {0};
	int status = -1;
	struct berth_spawn sp = {.argv = argv, .stdin_fd = -1, .stderr_fd = -1,
				 .capture_stdout = &out, .capture_max = 4096, .timeout_s = 1};
	double t0 = now_s();
	assert_int_equal(berth_spawn_run(&sp, &status, &err), -1);
	assert_true(now_s() - t0 < 5.0);
	assert_non_null(strstr(err.msg, "/bin/sh stopped: it did not finish within 1 s"));
	read_pid(path, pid, sizeof(pid));
	assert_gone(pid);
	free(out);
}

/* reap_group: what a program that exited left in its group is killed
 * (a site importer's forgotten background child); without it, it lives. */
static void test_reap_group(void **state)
{
	(void)state;
	for (int reap = 1; reap >= 0; reap--) {
		char *argv[] = {"/bin/sh", "-c", "sleep 60 </dev/null >/dev/null 2>&1 & echo $!",
				NULL};
		char *out = NULL;
		struct berth_err err = {0};
		int status = -1;
		struct berth_spawn sp = {.argv = argv, .stdin_fd = -1, .stderr_fd = -1,
					 .capture_stdout = &out, .capture_max = 4096,
					 .timeout_s = 30, .reap_group = reap};
		assert_int_equal(berth_spawn_run(&sp, &status, &err), 0);
		assert_int_equal(status, 0);
		out[strcspn(out, "\n")] = '\0';
		if (reap) {
			assert_gone(out);
		} else {
			assert_int_equal(kill(atoi(out), 0), 0);
			kill(atoi(out), SIGKILL);
		}
		free(out);
	}
}

struct stop_after {
	int asked;
	int stop_at;
};

static const char *stop_on_third(void *ctx)
{
	struct stop_after *s = ctx;

	return ++s->asked >= s->stop_at ? "the job has ended" : NULL;
}

static void test_should_stop(void **state)
{
	char path[] = "/tmp/berth-test-stop-XXXXXX";
	int fd = mkstemp(path);
	char cmd[256];
	(void)state;
	assert_true(fd >= 0);
	close(fd);
	/* the grandchild's pid goes to a file: the capture is dropped */
	snprintf(cmd, sizeof(cmd), "sleep 60 & echo $! > %s; wait", path);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	char *out = NULL;
	struct berth_err err = {0};
	struct stop_after stop = {.stop_at = 3};
	int status = -1;
	struct berth_spawn sp = {.argv = argv, .stdin_fd = -1, .stderr_fd = -1,
				 .capture_stdout = &out, .capture_max = 4096,
				 .should_stop = stop_on_third, .stop_ctx = &stop};
	double t0 = now_s();
	assert_int_equal(berth_spawn_run(&sp, &status, &err), -1);
	assert_true(now_s() - t0 < 6.0);
	assert_int_equal(stop.asked, 3);
	assert_non_null(strstr(err.msg, "stopped: the job has ended"));
	char pid[32] = "";
	read_pid(path, pid, sizeof(pid));
	assert_gone(pid);
	free(out);
}

/* A descriptor the caller did not name does not reach the program. */
static void test_fds_not_inherited(void **state)
{
	int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
	char cmd[64];
	(void)state;
	assert_true(leak > 2);
	snprintf(cmd, sizeof(cmd), "test -e /proc/self/fd/%d && echo open || echo closed", leak);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	char *out = NULL;
	struct berth_err err = {0};
	int status = -1;
	struct berth_spawn sp = {.argv = argv, .stdin_fd = -1, .stderr_fd = -1,
				 .capture_stdout = &out, .capture_max = 4096};
	assert_int_equal(berth_spawn_run(&sp, &status, &err), 0);
	assert_int_equal(status, 0);
	assert_string_equal(out, "closed\n");
	free(out);
	/* named in keep_fds, it does */
	sp.keep_fds = &leak;
	sp.n_keep_fds = 1;
	out = NULL;
	assert_int_equal(berth_spawn_run(&sp, &status, &err), 0);
	assert_string_equal(out, "open\n");
	free(out);
	close(leak);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_signal_forwarded),
		cmocka_unit_test(test_timeout_kills_group),
		cmocka_unit_test(test_should_stop),
		cmocka_unit_test(test_reap_group),
		cmocka_unit_test(test_fds_not_inherited),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
