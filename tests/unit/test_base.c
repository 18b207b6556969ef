/* Unit tests for executor/base/hex.c (the encoder against known values,
 * the hex-digit and digest checks on good and bad inputs) and the read
 * loops of executor/base/fs.c (berth_read_full on a pipe that delivers in
 * pieces, interrupted by a signal, and at end of file; berth_pread_full
 * and berth_read_all on a short file), and executor/base/cpus.c (CPU
 * sets as lists, a child's binding cut to its parent's). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executor/base/cpus.h"
#include "executor/base/fs.h"
#include "executor/base/hex.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- hex ------------------------------------------------------------------- */

static void test_hex_encode(void **state)
{
	static const unsigned char bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
	static const unsigned char abc_sha256[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
		0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
		0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	char out[65];
	(void)state;

	berth_hex_encode(bytes, sizeof(bytes), out);
	assert_string_equal(out, "00017f80abff");
	memset(out, 'x', sizeof(out));
	berth_hex_encode(bytes, 0, out);
	assert_string_equal(out, "");
	berth_hex_encode(abc_sha256, sizeof(abc_sha256), out);
	assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_is_hex(void **state)
{
	(void)state;
	assert_true(berth_is_hex("0123456789abcdef", 16));
	assert_true(berth_is_hex(HEX64, 64));
	assert_true(berth_is_hex("", 0));
	assert_true(berth_is_hex("abcd zz", 4)); /* what follows is not looked at */
	assert_false(berth_is_hex("0123456789ABCDEF", 16)); /* uppercase */
	assert_false(berth_is_hex("abcdeF", 6));
	assert_false(berth_is_hex("abc", 4));  /* short: the NUL is no digit */
	assert_false(berth_is_hex("abcg", 4)); /* not hex */
	assert_false(berth_is_hex("ab-d", 4));
	assert_false(berth_is_hex(" abc", 4));
}

static void test_digest_valid(void **state)
{
	(void)state;
	assert_true(berth_digest_valid("sha256:" HEX64));
	assert_false(berth_digest_valid(NULL));
	assert_false(berth_digest_valid(""));
	assert_false(berth_digest_valid("sha256:"));
	assert_false(berth_digest_valid(HEX64));                      /* no algorithm */
	assert_false(berth_digest_valid("sha512:" HEX64));            /* another one */
	assert_false(berth_digest_valid("SHA256:" HEX64));
	assert_false(berth_digest_valid("sha256:" HEX64 "0"));        /* long */
	assert_false(berth_digest_valid("sha256:" HEX64 "\n"));
	assert_false(berth_digest_valid("sha256:" "0123456789abcdef0123456789abcdef"
					"0123456789abcdef0123456789abcde")); /* short */
	assert_false(berth_digest_valid("sha256:" "0123456789ABCDEF0123456789abcdef"
					"0123456789abcdef0123456789abcdef")); /* uppercase */
	assert_false(berth_digest_valid("sha256:" "0123456789abcdeg0123456789abcdef"
					"0123456789abcdef0123456789abcdef")); /* not hex */
}

/* ---- read loops ------------------------------------------------------------ */

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A child writing the pieces into a pipe, pausing `gap_ms` before each
 * after the first, then closing it.  Returns the read end. */
static int pipe_in_pieces(const char *const *pieces, long gap_ms, pid_t *pid)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		close(p[0]);
		for (size_t i = 0; pieces[i]; i++) {
			if (i)
				pause_ms(gap_ms);
			if (berth_write_all(p[1], pieces[i], strlen(pieces[i])) < 0)
				_exit(1);
		}
		_exit(0);
	}
	close(p[1]);
	return p[0];
}

static void reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_read_full_pieces(void **state)
{
	static const char *const pieces[] = {"hel", "lo ", "wor", "ld", NULL};
	char buf[32] = "";
	pid_t pid;
	(void)state;

	int fd = pipe_in_pieces(pieces, 20, &pid);
	/* Across the pieces: all that was asked for. */
	assert_int_equal(berth_read_full(fd, buf, 8), 8);
	assert_memory_equal(buf, "hello wo", 8);
	/* Fewer than asked only at end of file, then 0. */
	assert_int_equal(berth_read_full(fd, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "rld", 3);
	assert_int_equal(berth_read_full(fd, buf, sizeof(buf)), 0);
	close(fd);
	reap(pid);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal without SA_RESTART interrupts the read; it goes on. */
static void test_read_full_eintr(void **state)
{
	static const char *const pieces[] = {"one", "two", NULL};
	struct sigaction sa = {.sa_handler = on_alarm}, old;
	struct itimerval it = {.it_value = {.tv_usec = 30000}};
	struct itimerval off = {0};
	char buf[8] = "";
	pid_t pid;
	(void)state;

	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	int fd = pipe_in_pieces(pieces, 200, &pid);
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	ssize_t n = berth_read_full(fd, buf, 6);
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "onetwo", 6);
	close(fd);
	reap(pid);
}

static void test_read_full_empty(void **state)
{
	static const char *const pieces[] = {NULL};
	char buf[4];
	pid_t pid;
	(void)state;

	int fd = pipe_in_pieces(pieces, 0, &pid);
	assert_int_equal(berth_read_full(fd, buf, sizeof(buf)), 0);
	assert_int_equal(berth_read_full(fd, buf, 0), 0);
	close(fd);
	reap(pid);
	assert_int_equal(berth_read_full(-1, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EBADF);
}

static void test_pread_full_and_read_all(void **state)
{
	char path[] = "/tmp/berth-test-base-XXXXXX", buf[16];
	(void)state;

	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(berth_write_all(fd, "0123456789", 10), 0);
	/* At an offset, not moving the file position. */
	assert_int_equal(berth_pread_full(fd, buf, 4, 3), 4);
	assert_memory_equal(buf, "3456", 4);
	assert_int_equal(berth_pread_full(fd, buf, sizeof(buf), 6), 4);
	assert_memory_equal(buf, "6789", 4);
	assert_int_equal(berth_pread_full(fd, buf, sizeof(buf), 10), 0);
	assert_int_equal(berth_pread_full(fd, buf, sizeof(buf), 100), 0);
	/* read_all: exactly len bytes, or EIO for a short file. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(berth_read_all(fd, buf, 10), 0);
	assert_memory_equal(buf, "0123456789", 10);
	assert_int_equal(lseek(fd, 5, SEEK_SET), 5);
	errno = 0;
	assert_int_equal(berth_read_all(fd, buf, 6), -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(berth_read_all(fd, buf, 0), 0);
	close(fd);
}

/* ---- cpus ------------------------------------------------------------------ */

static void test_cpus_format(void **state)
{
	cpu_set_t set;
	char buf[64], tiny[4];
	struct berth_err err = {0};
	(void)state;

	CPU_ZERO(&set);
	assert_int_equal(berth_cpus_format(&set, buf, sizeof(buf), &err), -1);
	assert_int_equal(err.errnum, EINVAL);
	CPU_SET(0, &set);
	assert_int_equal(berth_cpus_format(&set, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "0");
	CPU_SET(1, &set);
	CPU_SET(2, &set);
	CPU_SET(5, &set);
	CPU_SET(7, &set);
	CPU_SET(8, &set);
	CPU_SET(CPU_SETSIZE - 1, &set);
	assert_int_equal(berth_cpus_format(&set, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "0-2,5,7-8,1023");
	assert_int_equal(berth_cpus_format(&set, tiny, sizeof(tiny), &err), -1);
	assert_int_equal(err.errnum, ENOSPC);
}

/* A child bound to one CPU of its parent's: that CPU; one bound to none
 * of them (the parent narrowed afterwards) fails. */
static void test_cpus_of_task(void **state)
{
	cpu_set_t mine, one;
	char buf[1024], want[16];
	struct berth_err err = {0};
	int fds[2], first = -1, status;
	(void)state;

	assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
	for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
		if (CPU_ISSET(c, &mine))
			first = c;
	assert_true(first >= 0);
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		CPU_ZERO(&one);
		CPU_SET(first, &one);
		if (sched_setaffinity(0, sizeof(one), &one) < 0)
			_exit(1);
		close(fds[1]);
		_exit(read(fds[0], &c, 1) == 0 ? 0 : 1); /* until the parent closes */
	}
	close(fds[0]);
	/* until the child has bound itself */
	for (int i = 0; i < 5000; i++) {
		cpu_set_t now;
		if (sched_getaffinity(pid, sizeof(now), &now) == 0 && CPU_COUNT(&now) == 1)
			break;
		usleep(1000);
	}
	assert_int_equal(berth_cpus_of_task(pid, buf, sizeof(buf), &err), 0);
	snprintf(want, sizeof(want), "%d", first);
	assert_string_equal(buf, want);
	if (CPU_COUNT(&mine) > 1) {
		cpu_set_t others = mine;
		CPU_CLR(first, &others);
		assert_int_equal(sched_setaffinity(0, sizeof(others), &others), 0);
		assert_int_equal(berth_cpus_of_task(pid, buf, sizeof(buf), &err), -1);
		assert_non_null(strstr(err.msg, "none of the step's"));
		assert_int_equal(sched_setaffinity(0, sizeof(mine), &mine), 0);
	}
	close(fds[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(berth_cpus_of_task(pid, buf, sizeof(buf), &err), -1);
	assert_int_equal(err.errnum, ESRCH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_encode),
		cmocka_unit_test(test_is_hex),
		cmocka_unit_test(test_digest_valid),
		cmocka_unit_test(test_read_full_pieces),
		cmocka_unit_test(test_read_full_eintr),
		cmocka_unit_test(test_read_full_empty),
		cmocka_unit_test(test_pread_full_and_read_all),
		cmocka_unit_test(test_cpus_format),
		cmocka_unit_test(test_cpus_of_task),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
