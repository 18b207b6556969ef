/* berth: one error object threaded through every call (crun style).
 *
 * A function that can fail takes `struct berth_err *err` as its last
 * argument, returns -1 (or NULL) on failure and fills *err with a message
 * that names what failed and, where one exists, its cause (strerror).
 * Callers either handle the error or pass the same pointer up; the outermost
 * caller prints err->msg once, prefixed with "berth: ".
 *
 * This header is libc-only so every layer may include it. */
#ifndef BERTH_ERROR_H
#define BERTH_ERROR_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define BERTH_ERR_MSG_MAX 1024

/* The exit status of a run or a job task when berth itself (or the
 * runtime) failed before the command could start: 125, as `docker run` and
 * podman give; 126/127 stay "found, not executable" / "not found". */
#define BERTH_EXIT_BERTH 125

struct berth_err {
	int errnum;                  /* errno of the cause, 0 when none */
	char msg[BERTH_ERR_MSG_MAX]; /* "what failed: why" without prefix */
};

/* Fill *err from a printf format; when errnum != 0, ": strerror(errnum)" is
 * appended. Always returns -1 so callers can `return berth_fail(...)`. */
int berth_fail(struct berth_err *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Put "context: " in front of an existing message (keeps errnum). Returns -1. */
int berth_wrap(struct berth_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Cleanup attributes instead of goto ladders. */
static inline void berth_freep(void *p) { free(*(void **)p); }
static inline void berth_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void berth_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_free_ __attribute__((cleanup(berth_freep)))
#define _cleanup_close_ __attribute__((cleanup(berth_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(berth_fclosep)))

/* Hand a cleanup-owned value to someone else. */
#define berth_steal(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define berth_steal_fd(fd) ({ int _t = (fd); (fd) = -1; _t; })

#endif
