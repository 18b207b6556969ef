/* berth: ImageStorage's question, answered by trying (sqfs_probe.h).
 * Executable and /dev/fuse openable is not enough: the kernel may refuse
 * an unprivileged FUSE mount in a user namespace, and a squashfuse may be
 * unable to serve (a libfuse 2 build that takes no /dev/fd/N mount point,
 * a missing library).  Under auto that must mean the tree, not a step that
 * fails at its start. */
#define _GNU_SOURCE
#include "executor/runtime/sqfs_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/base/memo.h"
#include "executor/base/process.h"
#include "executor/convert/squashfs.h"
#include "executor/runtime/mountns.h"

#define PROBE_TEXT "berth squashfuse probe\n"
#define SAID_MAX 512

/* One file, PROBE_TEXT at /probe, in a new SquashFS file `path`. */
static int write_probe_image(const char *path, struct berth_err *err)
{
	struct berth_sqfs_merge *m = NULL;
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc;

	if (fd < 0)
		return berth_fail(err, errno, "cannot create %s", path);
	rc = berth_sqfs_merge_new(fd, 0, NULL, &m, err);
	if (rc == 0)
		rc = berth_sqfs_merge_file_begin(m, "probe", 0644, 0, err);
	if (rc == 0)
		rc = berth_sqfs_merge_file_data(m, 0, PROBE_TEXT, strlen(PROBE_TEXT), err);
	if (rc == 0)
		rc = berth_sqfs_merge_file_end(m, strlen(PROBE_TEXT), err);
	if (rc == 0)
		rc = berth_sqfs_merge_finish(m, NULL, err);
	if (m)
		berth_sqfs_merge_free(m);
	if (rc < 0 && !err->msg[0])
		berth_fail(err, errno, "cannot write the probe image %s", path);
	return rc;
}

/* Is PROBE_TEXT what the mount at DIR/image serves? */
static int read_back(const char *dir, struct berth_err *err)
{
	char path[PATH_MAX + 16], buf[sizeof(PROBE_TEXT)] = {0};

	snprintf(path, sizeof(path), "%s/image/probe", dir);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(err, errno, "cannot read the probe image through it");
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n != (ssize_t)strlen(PROBE_TEXT) || memcmp(buf, PROBE_TEXT, (size_t)n) != 0)
		return berth_fail(err, n < 0 ? errno : 0, "it served the probe image wrong");
	return 0;
}

/* What squashfuse wrote on stderr (its tail, on one line), appended. */
static void append_said(const char *file, struct berth_err *err)
{
	char said[SAID_MAX] = {0};
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : pread(fd, said, sizeof(said) - 1, 0);
	size_t used = strlen(err->msg);

	if (n <= 0)
		return;
	for (ssize_t i = 0; i < n; i++)
		if (said[i] == '\n' || said[i] == '\r' || said[i] == '\t')
			said[i] = ' ';
	while (n > 0 && said[n - 1] == ' ')
		said[--n] = '\0';
	snprintf(err->msg + used, sizeof(err->msg) - used, " (it said: %s)", said);
}

/* The child: its own namespaces and tmpfs (gone when it exits, and with
 * them squashfuse, which gets SIGTERM when the child ends). */
static void probe_child(const char *squashfuse, const char *dir, int report)
{
	struct berth_err err = {0};
	char image[PATH_MAX + 16], said[PATH_MAX + 16];

	snprintf(image, sizeof(image), "%s/probe.sqfs", dir);
	snprintf(said, sizeof(said), "%s/said", dir);
	int rc = berth_ns_enter(&err);
	if (rc == 0)
		rc = berth_ns_layer(dir, &err);
	if (rc == 0) {
		/* squashfuse inherits stderr: its complaint becomes the reason */
		int fd = open(said, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		rc = fd < 0 ? berth_fail(&err, errno, "cannot create %s", said) : 0;
		if (fd >= 0 && dup2(fd, STDERR_FILENO) < 0)
			rc = berth_fail(&err, errno, "dup2");
		if (fd >= 0)
			close(fd);
	}
	if (rc == 0)
		rc = write_probe_image(image, &err);
	if (rc == 0 && berth_ns_squashfs(dir, image, squashfuse, &err) < 0) {
		/* its message is about a cache entry; this is about the program */
		int e = err.errnum;
		berth_fail(&err, e, "it could not serve a test image");
	} else if (rc == 0 && read_back(dir, &err) == 0) {
		_exit(0);
	}
	append_said(said, &err);
	(void)berth_write_all(report, err.msg, strlen(err.msg));
	_exit(1);
}

/* Read the child's report until it exits or the time is up. */
static int collect(pid_t pid, int fd, char *msg, size_t len)
{
	size_t used = 0;
	time_t end = time(NULL) + BERTH_SQFS_PROBE_TIMEOUT_S;
	int status;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(end - time(NULL));
		int r = left > 0 ? poll(&p, 1, left * 1000) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) { /* a squashfuse that never answers */
			kill(pid, SIGKILL);
			snprintf(msg, len, "it did not answer within %d s",
				 BERTH_SQFS_PROBE_TIMEOUT_S);
			berth_wait_pid(pid, NULL);
			return -1;
		}
		ssize_t n = read(fd, msg + used, len - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (used += (size_t)n) >= len - 1)
			break;
	}
	msg[used] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static bool try_mount(const char *squashfuse, const char *dir, char *why, size_t len)
{
	char msg[BERTH_ERR_MSG_MAX + SAID_MAX] = "";
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(why, len, "cannot try SquashfusePath=%s: pipe: %s", squashfuse,
			 strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		probe_child(squashfuse, dir, fds[1]);
	}
	close(fds[1]);
	if (pid < 0) {
		snprintf(why, len, "cannot try SquashfusePath=%s: fork: %s", squashfuse,
			 strerror(errno));
		close(fds[0]);
		return false;
	}
	int rc = collect(pid, fds[0], msg, sizeof(msg));
	close(fds[0]);
	if (rc == 0)
		return true;
	snprintf(why, len, "SquashfusePath=%s cannot mount a SquashFS image here: %s",
		 squashfuse, msg[0] ? msg : "the probe failed");
	return false;
}

void berth_sqfs_probe_memo_name(char *name, size_t len)
{
	struct utsname u;

	if (uname(&u) == 0 && u.nodename[0] && !strchr(u.nodename, '/') && u.nodename[0] != '.')
		snprintf(name, len, BERTH_SQFS_PROBE_MEMO ".%s", u.nodename);
	else
		snprintf(name, len, BERTH_SQFS_PROBE_MEMO);
}

bool berth_ns_squashfs_probe(const char *squashfuse, const char *dir, int memo_dir_fd,
			     char *why, size_t len)
{
	char key[PATH_MAX + 128 + sizeof(((struct utsname *)0)->release)];
	char answer[BERTH_ERR_MSG_MAX + SAID_MAX + PATH_MAX];
	char memo[NAME_MAX + 1];
	struct utsname u;
	time_t written;

	/* missing program or /dev/fuse: cheap to see, and said as it is */
	if (!berth_ns_squashfs_usable(squashfuse, why, len))
		return false;
	size_t n;
	if (berth_memo_file_key(squashfuse, key, sizeof(key)) < 0 || uname(&u) < 0)
		memo_dir_fd = -1;
	else if ((n = strlen(key)) < sizeof(key))
		snprintf(key + n, sizeof(key) - n, " %s", u.release);
	/* one file per node: nodes that share a CacheDir may differ */
	berth_sqfs_probe_memo_name(memo, sizeof(memo));
	if (berth_memo_get(memo_dir_fd, memo, key, answer, sizeof(answer), &written)) {
		if (!strcmp(answer, "yes"))
			return true;
		if (!strncmp(answer, "no ", 3) && time(NULL) - written < BERTH_SQFS_PROBE_NO_TTL) {
			snprintf(why, len, "%s", answer + 3);
			return false;
		}
	}
	bool ok = try_mount(squashfuse, dir, why, len);
	snprintf(answer, sizeof(answer), ok ? "yes" : "no %s", why);
	answer[strcspn(answer, "\n")] = '\0';
	berth_memo_put(memo_dir_fd, memo, key, answer);
	return ok;
}
