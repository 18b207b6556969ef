/* Unit tests for berth_fork_forwarding (executor/base/process.c): the
 * child's status as a shell gives it, and a signal this process gets
 * passed on to the child. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_signal_forwarded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
