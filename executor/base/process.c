#define _GNU_SOURCE
#include "executor/base/process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/wait.h>

extern char **environ;

/* What the child reports through the pipe when it fails before exec. */
struct child_failure {
	int errnum;
	char what[64];
};

int berth_exit_code(int wait_status)
{
	if (WIFEXITED(wait_status))
		return WEXITSTATUS(wait_status);
	if (WIFSIGNALED(wait_status))
		return 128 + WTERMSIG(wait_status);
	return 255;
}

int berth_drop_privileges(const struct berth_cred *cred, struct berth_err *err)
{
	/* SPANK's user_init runs with the effective uid dropped and the real
	 * uid 0: setgroups() needs the effective root back first.  Only this
	 * process (a forked child) regains it, and only to give it up fully. */
	if (getuid() == 0 && geteuid() != 0 && seteuid(0) < 0)
		return berth_fail(err, errno, "seteuid(0) before dropping to uid %u",
				  (unsigned)cred->uid);
	if (setgroups(cred->n_groups, cred->groups) < 0)
		return berth_fail(err, errno, "setgroups for uid %u",
				  (unsigned)cred->uid);
	if (setresgid(cred->gid, cred->gid, cred->gid) < 0)
		return berth_fail(err, errno, "setresgid(%u)", (unsigned)cred->gid);
	if (setresuid(cred->uid, cred->uid, cred->uid) < 0)
		return berth_fail(err, errno, "setresuid(%u)", (unsigned)cred->uid);
	/* Belt and braces: a non-root target must not be able to return. */
	if (cred->uid != 0 && setuid(0) == 0)
		return berth_fail(err, 0, "privileges still recoverable after drop");
	return 0;
}

static void child_report(int fd, int errnum, const char *what)
{
	struct child_failure f = {.errnum = errnum};

	strncpy(f.what, what, sizeof(f.what) - 1);
	if (write(fd, &f, sizeof(f)) < 0) {
		/* nothing left to tell anyone */
	}
	_exit(127);
}

static int dup_onto(int from, int to)
{
	if (from == to)
		return fcntl(to, F_SETFD, 0); /* keep it across exec */
	return dup2(from, to) < 0 ? -1 : 0;
}

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Every descriptor above stderr close-on-exec (close_range, Linux 5.11; a
 * loop of fcntl where the kernel lacks it: both async-signal-safe, as a
 * child of multithreaded slurmstepd needs). */
static int cloexec_from_3(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return 0;
#endif
	long max = sysconf(_SC_OPEN_MAX);
	for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 && errno != EBADF)
			return -1;
	return 0;
}

static bool own_group(const struct berth_spawn *sp)
{
	return sp->timeout_s || sp->should_stop;
}

/* In the child: wire stdio, drop credentials, exec.  Never returns. */
static void child_exec(const struct berth_spawn *sp, int out_fd, int report_fd)
{
	struct berth_err err;
	int in_fd = sp->stdin_fd;

	if (in_fd < 0 && (in_fd = open("/dev/null", O_RDONLY)) < 0)
		child_report(report_fd, errno, "open /dev/null");
	if (dup_onto(in_fd, STDIN_FILENO) < 0)
		child_report(report_fd, errno, "dup2 stdin");
	if (out_fd >= 0 && dup_onto(out_fd, STDOUT_FILENO) < 0)
		child_report(report_fd, errno, "dup2 stdout");
	int err_fd = sp->stderr_to_capture ? out_fd : sp->stderr_fd;
	if (err_fd >= 0 && dup_onto(err_fd, STDERR_FILENO) < 0)
		child_report(report_fd, errno, "dup2 stderr");
	/* Only what the caller names: a stager running as the job user must
	 * not hold (and could be ptraced for) slurmstepd's descriptors. */
	if (cloexec_from_3() < 0)
		child_report(report_fd, errno, "close-on-exec");
	for (size_t i = 0; i < sp->n_keep_fds; i++)
		if (fcntl(sp->keep_fds[i], F_SETFD, 0) < 0)
			child_report(report_fd, errno, "keep fd");
	if (own_group(sp) && setpgid(0, 0) < 0)
		child_report(report_fd, errno, "setpgid");
	if (sp->death_signal && prctl(PR_SET_PDEATHSIG, sp->death_signal) < 0)
		child_report(report_fd, errno, "PR_SET_PDEATHSIG");
	if (sp->cred && berth_drop_privileges(sp->cred, &err) < 0)
		child_report(report_fd, err.errnum, "drop privileges");
	if (sp->cwd && chdir(sp->cwd) < 0)
		child_report(report_fd, errno, "chdir");
	/* The parent may have blocked or ignored signals (slurmstepd does). */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	execve(sp->argv[0], sp->argv, sp->envp ? sp->envp : environ);
	child_report(report_fd, errno, "execve");
}

/* Read the child's pre-exec failure, if any: 0 when exec succeeded. */
static int read_child_failure(int fd, const struct berth_spawn *sp,
			      struct berth_err *err)
{
	struct child_failure f;
	ssize_t n;

	do
		n = read(fd, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(f))
		return 0;
	f.what[sizeof(f.what) - 1] = '\0';
	return berth_fail(err, f.errnum, "cannot run %s (%s)", sp->argv[0],
			  f.what);
}

static pid_t start(const struct berth_spawn *sp, int out_fd,
		   struct berth_err *err)
{
	int report[2];
	pid_t pid;

	if (pipe2(report, O_CLOEXEC) < 0)
		return berth_fail(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		close(report[0]);
		close(report[1]);
		return berth_fail(err, errno, "fork");
	}
	if (pid == 0) {
		close(report[0]);
		child_exec(sp, out_fd, report[1]);
	}
	/* Also here, so the group exists before anyone signals it (EACCES
	 * once the child has exec'd: then it made the group itself). */
	if (own_group(sp))
		setpgid(pid, pid);
	close(report[1]);
	if (read_child_failure(report[0], sp, err) < 0) {
		close(report[0]);
		waitpid(pid, NULL, 0);
		return -1;
	}
	close(report[0]);
	return pid;
}

pid_t berth_spawn_start(const struct berth_spawn *sp, struct berth_err *err)
{
	return start(sp, -1, err);
}

int berth_wait_pid(pid_t pid, struct berth_err *err)
{
	int wstatus;

	while (waitpid(pid, &wstatus, 0) < 0) {
		if (errno != EINTR)
			return berth_fail(err, errno, "waitpid(%d)", (int)pid);
	}
	return berth_exit_code(wstatus);
}

/* Wait for `child`, passing on the signals Slurm sends this process; all
 * signals are blocked, so sigwaitinfo takes each one as it comes. */
static int wait_forwarding(pid_t child)
{
	static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT};
	sigset_t set;
	int status;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(*forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		pid_t w = waitpid(child, &status, WNOHANG);
		if (w == child)
			return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
		int sig = sigwaitinfo(&set, NULL);
		if (sig > 0 && sig != SIGCHLD)
			kill(child, sig);
	}
}

int berth_fork_forwarding(void (*child)(void *arg), void *arg, struct berth_err *err)
{
	sigset_t all, old;

	/* blocked before the fork: a signal that comes before the parent
	 * waits is still passed on */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid < 0)
		return berth_fail(err, errno, "fork");
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		child(arg);
		_exit(255); /* child() execs or exits; this is only a guard */
	}
	return wait_forwarding(pid);
}

/* Read all of fd into a NUL-terminated buffer of at most `max` bytes. */
#define SILENCE_SECONDS 5

/* Hand the complete lines in buf[from..len) to the callback. */
static size_t report_lines(const struct berth_spawn *sp, char *buf, size_t from,
			   size_t len, unsigned seconds)
{
	char *nl;

	while (sp->on_output && from < len && (nl = memchr(buf + from, '\n', len - from))) {
		*nl = '\0';
		sp->on_output(sp->output_ctx, buf + from, seconds);
		*nl = '\n';
		from = (size_t)(nl - buf) + 1;
	}
	return from;
}

/* Why a running stager must stop now, or NULL. */
static const char *stop_reason(const struct berth_spawn *sp, unsigned seconds,
			       char *buf, size_t len)
{
	if (sp->timeout_s && seconds >= sp->timeout_s) {
		snprintf(buf, len, "it did not finish within %u s", sp->timeout_s);
		return buf;
	}
	return sp->should_stop ? sp->should_stop(sp->stop_ctx) : NULL;
}

/* SIGTERM to the program's group (it may have children of its own), then
 * SIGKILL when it has not gone within two seconds.  Reaps nothing. */
static void stop_group(pid_t pid)
{
	pid_t target = getpgid(pid) == pid ? -pid : pid; /* never our own group */
	siginfo_t info;

	kill(target, SIGTERM);
	for (int tenth = 0; tenth < 20; tenth++) {
		info.si_pid = 0;
		if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    info.si_pid == pid)
			break;
		nanosleep(&(struct timespec){.tv_nsec = 100000000L}, NULL);
	}
	kill(target, SIGKILL);
}

static int read_capped(const struct berth_spawn *sp, pid_t pid, int fd, size_t max,
		       char **out, struct berth_err *err)
{
	size_t cap = 4096, len = 0, reported = 0;
	_cleanup_free_ char *buf = malloc(cap);
	struct timespec start, now;
	unsigned silent_since = 0;
	bool ticking = sp->on_output || own_group(sp);
	char why[64];

	if (!buf)
		return berth_fail(err, ENOMEM, "capture buffer");
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		clock_gettime(CLOCK_MONOTONIC, &now);
		unsigned seconds = (unsigned)(now.tv_sec - start.tv_sec);
		const char *reason = stop_reason(sp, seconds, why, sizeof(why));
		if (reason) {
			stop_group(pid);
			return berth_fail(err, 0, "%s stopped: %s", sp->argv[0], reason);
		}
		if (ticking && poll(&pfd, 1, 1000) == 0) {
			if (sp->on_output && seconds - silent_since >= SILENCE_SECONDS) {
				sp->on_output(sp->output_ctx, NULL, seconds);
				silent_since = seconds;
			}
			continue;
		}
		if (len + 1 >= cap) {
			char *bigger = realloc(buf, cap * 2);
			if (!bigger)
				return berth_fail(err, ENOMEM, "capture buffer");
			buf = bigger;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_fail(err, errno, "read child output");
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return berth_fail(err, 0, "child output over %zu bytes", max);
		reported = report_lines(sp, buf, reported, len, seconds);
		silent_since = seconds;
	}
	buf[len] = '\0';
	*out = berth_steal(buf);
	return 0;
}

int berth_spawn_run(const struct berth_spawn *sp, int *status,
		    struct berth_err *err)
{
	int out[2] = {-1, -1};
	pid_t pid;
	int rc = 0;

	if (sp->capture_stdout && pipe2(out, O_CLOEXEC) < 0)
		return berth_fail(err, errno, "pipe");
	pid = start(sp, out[1], err);
	if (out[1] >= 0)
		close(out[1]);
	if (pid < 0) {
		if (out[0] >= 0)
			close(out[0]);
		return -1;
	}
	if (sp->capture_stdout) {
		rc = read_capped(sp, pid, out[0], sp->capture_max, sp->capture_stdout, err);
		close(out[0]);
		if (rc < 0)
			kill(own_group(sp) ? -pid : pid, SIGKILL);
	}
	/* What the program left in its group goes, killed while its exited
	 * leader is not reaped yet (so that the group's id is still its). */
	if (sp->reap_group && own_group(sp)) {
		siginfo_t info;
		while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR)
			;
		kill(-pid, SIGKILL);
	}
	int code = berth_wait_pid(pid, rc < 0 ? NULL : err);
	if (rc < 0 || code < 0)
		return -1;
	*status = code;
	return 0;
}

int berth_user_can_read(const struct berth_cred *cred, const char *path,
			struct berth_err *err)
{
	pid_t pid = fork();

	if (pid < 0)
		return berth_fail(err, errno, "fork");
	if (pid == 0) {
		struct berth_err ignored;
		if (berth_drop_privileges(cred, &ignored) < 0)
			_exit(2);
		/* open() as the user: a folder opens only if it can be read
		 * and every parent entered. */
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		_exit(fd >= 0 ? 0 : 1);
	}
	int code = berth_wait_pid(pid, err);
	if (code < 0)
		return -1;
	if (code == 2)
		return berth_fail(err, 0, "cannot take uid %u to check %s",
				  (unsigned)cred->uid, path);
	return code == 0;
}

#define MAX_PASSED_FDS 8

/* In a fresh child: close every descriptor above stderr but `keep`
 * (close_range, Linux 5.9; a loop where the headers or the kernel lack it). */
static int close_all_but(int keep)
{
#ifdef SYS_close_range
	if ((keep <= 3 || syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U) == 0) &&
	    syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U) == 0)
		return 0;
#endif
	long max = sysconf(_SC_OPEN_MAX);
	for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
		if (fd != keep)
			close(fd);
	return 0;
}

int berth_user_open(const struct berth_cred *cred, const char *path, int *fd,
		    int *errno_out, struct berth_err *err)
{
	int sv[2];

	*fd = -1;
	*errno_out = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return berth_fail(err, errno, "socketpair");
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return berth_fail(err, errno, "fork");
	}
	if (pid == 0) {
		struct berth_err ignored;
		close(sv[0]);
		/* Nothing of the caller's but the socket: /proc/self/fd/N in
		 * `path` must not reach a descriptor of slurmstepd's. */
		if (close_all_but(sv[1]) < 0 || berth_drop_privileges(cred, &ignored) < 0)
			_exit(2);
		int opened = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (opened < 0) {
			int e = errno;
			_exit(write(sv[1], &e, sizeof(e)) == (ssize_t)sizeof(e) ? 1 : 2);
		}
		_exit(berth_send_fds(sv[1], &opened, 1) < 0 ? 2 : 0);
	}
	close(sv[1]);
	int code = berth_wait_pid(pid, err);
	int rc = -1;
	if (code == 0 && berth_recv_fds(sv[0], fd, 1) == 0)
		rc = 1;
	else if (code == 1 && read(sv[0], errno_out, sizeof(*errno_out)) == (ssize_t)sizeof(int))
		rc = 0;
	else if (code >= 0)
		berth_fail(err, 0, "cannot take uid %u to open %s", (unsigned)cred->uid, path);
	close(sv[0]);
	return rc;
}

int berth_send_fds(int sock, const int *fds, size_t n)
{
	char byte = 'F';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
		struct cmsghdr align;
	} u = {0};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * n)};

	if (n > MAX_PASSED_FDS) {
		errno = EINVAL;
		return -1;
	}
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

int berth_recv_fds(int sock, int *fds, size_t n)
{
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};

	if (n > MAX_PASSED_FDS || recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1) {
		if (n > MAX_PASSED_FDS)
			errno = EINVAL;
		return -1;
	}
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int) * n)) {
		errno = EPROTO;
		return -1;
	}
	memcpy(fds, CMSG_DATA(cm), sizeof(int) * n);
	return 0;
}

const char *berth_file_kind(mode_t mode)
{
	return S_ISFIFO(mode) ? "a FIFO" : S_ISDIR(mode) ? "a folder" : S_ISSOCK(mode) ? "a socket"
	       : S_ISCHR(mode) ? "a character device" : S_ISBLK(mode) ? "a block device"
	       : S_ISLNK(mode) ? "a symbolic link" : "not a file";
}

int berth_open_regular(const char *path, struct berth_err *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return berth_fail(err, errno, "cannot open %s", path);
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return berth_fail(err, e, "cannot read %s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return berth_fail(err, 0, "%s is not a regular file (%s): give a docker-save "
				  "archive (docker save IMAGE -o FILE.tar)", path,
				  berth_file_kind(st.st_mode));
	}
	return fd;
}
