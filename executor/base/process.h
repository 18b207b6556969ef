/* berth: the one way berth spawns processes.
 *
 * fork + execve with an argv array, never a shell.  When a credential is
 * given, the child drops to it completely before exec (setgroups, then
 * setresgid, then setresuid): SPANK's user_init runs with only the effective
 * uid dropped, and a child that kept real uid 0 would be root.  A failure in
 * the child between fork and exec is sent back to the parent through a
 * close-on-exec pipe, so the caller gets "cannot run X: cause" instead of a
 * bare exit status. */
#ifndef BERTH_PROCESS_H
#define BERTH_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/error.h"

struct berth_cred {
	uid_t uid;
	gid_t gid;
	const gid_t *groups; /* supplementary groups; NULL/0 = only gid */
	size_t n_groups;
};

struct berth_spawn {
	char *const *argv;             /* argv[0] is the absolute program path */
	char *const *envp;             /* NULL = inherit environ */
	const struct berth_cred *cred; /* NULL = keep the caller's */
	const char *cwd;               /* NULL = keep */
	int stdin_fd;                  /* -1 = /dev/null */
	int stderr_fd;                 /* -1 = inherit */
	/* When non-NULL, stdout is captured (at most `capture_max` bytes; more
	 * is an error) into a malloc'd NUL-terminated string; else inherited. */
	char **capture_stdout;
	size_t capture_max;
	bool stderr_to_capture;        /* 2>&1 into the capture (error text) */
	/* While capturing: called with each complete output line as it comes,
	 * and with NULL and the seconds elapsed when the program has been
	 * silent for a while (to tell a waiting user it is still working). */
	void (*on_output)(void *ctx, const char *line, unsigned seconds);
	void *output_ctx;
	const int *keep_fds;           /* the only fds above stderr it inherits */
	size_t n_keep_fds;
	/* While capturing, a stager that must not outlive its step: after
	 * `timeout_s` seconds (0 = none), or as soon as `should_stop` (asked
	 * about once a second) returns a reason, the program's whole process
	 * group gets SIGTERM, then SIGKILL two seconds later, and the run
	 * fails with "... stopped: REASON".  Either one puts the program in a
	 * process group of its own (so no terminal signals reach it). */
	unsigned timeout_s;
	const char *(*should_stop)(void *ctx);
	void *stop_ctx;
	/* With its own process group (timeout_s or should_stop): once the
	 * program has exited, whatever is left of its group is killed (a
	 * site program's forgotten background child). */
	bool reap_group;
	/* Sent to the program when the process that started it ends
	 * (PR_SET_PDEATHSIG; 0 = none): a helper that must not outlive the
	 * container that process becomes (squashfuse). */
	int death_signal;
};

/* Run to completion.  *status receives the exit code in the shell's
 * convention (the code, or 128+N after signal N).  Returns -1 only when the
 * program could not be started or its output not read. */
int berth_spawn_run(const struct berth_spawn *sp, int *status,
		    struct berth_err *err);

/* Start without waiting (no capture allowed).  Returns the pid or -1. */
pid_t berth_spawn_start(const struct berth_spawn *sp, struct berth_err *err);

/* waitpid, retrying on EINTR; returns the shell-convention code or -1. */
int berth_wait_pid(pid_t pid, struct berth_err *err);

/* Fork with every signal blocked; the child gets the caller's mask back and
 * runs `child(arg)`, which execs or _exits.  The parent waits for it,
 * passing on the signals Slurm sends this process (TERM, INT, HUP, QUIT,
 * USR1, USR2, CONT), and returns its status as a shell gives it (128+N
 * after signal N); -1 with err when it cannot fork.  The caller's signals
 * stay blocked: it is meant to exit with that status. */
int berth_fork_forwarding(void (*child)(void *arg), void *arg, struct berth_err *err);

/* Drop to `cred` in the current process (setgroups+setresgid+setresuid) and
 * verify that getting root back is impossible. */
int berth_drop_privileges(const struct berth_cred *cred, struct berth_err *err);

/* May `cred` open `path` for reading (a folder: list and enter it)?  Asked
 * in a child that has dropped to cred, so the kernel's own checks decide:
 * permissions, ACLs, every parent folder.  Returns 1 yes, 0 no, -1 error. */
int berth_user_can_read(const struct berth_cred *cred, const char *path,
			struct berth_err *err);

/* Open `path` for reading as `cred` would (a child drops to cred, opens it
 * and hands the descriptor back): *fd is then exactly the object the user
 * may read, whatever the path names a moment later.  1 opened, 0 refused
 * by the kernel (*errno_out says why), -1 error. */
int berth_user_open(const struct berth_cred *cred, const char *path, int *fd,
		    int *errno_out, struct berth_err *err);

/* Open a file a user named, for reading, without ever blocking on it:
 * O_NONBLOCK|O_NOCTTY, then fstat; anything but a regular file (a FIFO
 * would hold the reader until someone writes to it, a device or a socket is
 * no image) is refused with a message naming what it is.  Returns the fd,
 * or -1 with err (err->errnum is open's errno when the open failed). */
int berth_open_regular(const char *path, struct berth_err *err);

/* "a FIFO", "a folder", ... for a stat mode that is not a regular file. */
const char *berth_file_kind(mode_t mode);

/* Pass file descriptors over a unix socket (SCM_RIGHTS), and receive them.
 * Return 0, or -1 with errno. */
int berth_send_fds(int sock, const int *fds, size_t n);
int berth_recv_fds(int sock, int *fds, size_t n);

/* Exit status in the shell's convention from a waitpid() status. */
int berth_exit_code(int wait_status);

/* A resource limit for a container, as Docker names it ("nofile"); -1 is
 * unlimited. */
struct berth_ulimit {
	const char *name;
	int64_t soft, hard;
};

#endif
