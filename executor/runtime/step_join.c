/* --container-name=JOBID.STEPID (pyxis): a step joins the container of a
 * running step of the user's on this node, named or not, found by its
 * processes' environment (named.c keeps the named containers). */
#define _GNU_SOURCE
#include "executor/runtime/named.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/base/strv.h"
#include "executor/runtime/named_int.h"

extern char **environ;

/* Does NUL-separated `env` (len bytes) hold the entry `want` exactly? */
static bool env_has(const char *env, size_t len, const char *want)
{
	for (size_t at = 0; at < len; at += strnlen(env + at, len - at) + 1)
		if (!strcmp(env + at, want))
			return true;
	return false;
}

/* /proc/PID/environ, NUL-separated, malloc'd; NULL when it cannot be read. */
static char *read_environ(pid_t pid, size_t *len)
{
	char path[64];
	size_t cap = 1 << 16;

	snprintf(path, sizeof(path), "/proc/%ld/environ", (long)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = fd < 0 ? NULL : malloc(cap + 1);
	ssize_t r;
	*len = 0;
	while (buf && *len < cap && (r = read(fd, buf + *len, cap - *len)) > 0)
		*len += (size_t)r;
	if (buf)
		buf[*len] = '\0';
	return buf;
}

/* The parent of `pid` from /proc/PID/stat (readable for any process, even
 * one whose environment and namespaces are not); 0 when unknown. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512];
	long ppid = 0;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* after the name (which may hold spaces and parentheses): " S PPID" */
	const char *after_comm = strrchr(buf, ')');
	if (!after_comm || strlen(after_comm) < 4)
		return 0;
	char *end;
	ppid = strtol(after_comm + 4, &end, 10);
	return end == after_comm + 4 || ppid < 0 ? 0 : (pid_t)ppid;
}

/* The real uid of `pid` from /proc/PID/status (its /proc folder is root's
 * once it is not dumpable); (uid_t)-1 when unknown. */
static uid_t real_uid_of(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	FILE *f = fopen(path, "re");
	char line[256];
	uid_t found = (uid_t)-1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Uid:", 4)) {
			char *end;
			unsigned long uid = strtoul(line + 4, &end, 10);
			found = end == line + 4 ? (uid_t)-1 : (uid_t)uid;
			break;
		}
	if (f)
		fclose(f);
	return found;
}

/* Is `pid` below the slurmstepd of step JOB.STEP?  slurmstepd names itself
 * "slurmstepd: [JOB.STEP]" in its command line, which anyone may read. */
static bool under_stepd(pid_t pid, const char *job, const char *step)
{
	char path[64], want[96], cmd[96];

	snprintf(want, sizeof(want), "slurmstepd: [%s.%s]", job, step);
	for (int depth = 0; pid > 1 && depth < 32; depth++, pid = parent_of(pid)) {
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, cmd, sizeof(cmd) - 1);
		if (n <= 0)
			continue;
		cmd[n] = '\0';
		if (!strncmp(cmd, "slurmstepd:", 11))
			return !strcmp(cmd, want);
	}
	return false;
}

/* A process of ours from step JOB.STEP that runs inside its container: it
 * was started with that step's SLURM_JOB_ID and SLURM_STEP_ID, and its root
 * is not ours (the runtime's own processes on the way in still see the
 * node's).  The oldest such (lowest pid): the task itself, not its passing
 * children.  0 when none; then *hidden says whether a process of ours in
 * that step could not be looked into at all (a setuid runtime's: its
 * namespaces are root's). */
static pid_t find_step(const char *job, const char *step, bool *hidden)
{
	char want_job[64], want_step[64], path[300];
	struct stat root, theirs, proc;
	pid_t best = 0;

	*hidden = false;
	snprintf(want_job, sizeof(want_job), "SLURM_JOB_ID=%s", job);
	snprintf(want_step, sizeof(want_step), "SLURM_STEP_ID=%s", step);
	if (stat("/", &root) < 0)
		return 0;
	DIR *d = opendir("/proc");
	for (struct dirent *e; d && (e = readdir(d));) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 1 || pid == getpid() || (best && pid >= best))
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/root/", pid);
		if (stat(path, &theirs) < 0) {
			if (errno == EACCES && !*hidden)
				*hidden = real_uid_of((pid_t)pid) == getuid() &&
					  under_stepd((pid_t)pid, job, step);
			continue;
		}
		if (theirs.st_dev == root.st_dev && theirs.st_ino == root.st_ino)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld", pid);
		if (stat(path, &proc) < 0 || proc.st_uid != getuid())
			continue;
		size_t len;
		_cleanup_free_ char *env = read_environ((pid_t)pid, &len);
		if (env && env_has(env, len, want_job) && env_has(env, len, want_step))
			best = (pid_t)pid;
	}
	if (d)
		closedir(d);
	return best;
}

/* The running step's environment (its image's and its job's), with this
 * step's SLURM_* in place of that step's.  malloc'd vector; NULL on error. */
static char **step_env(pid_t pid, struct berth_err *err)
{
	size_t len, n = 0, ours = 0;
	_cleanup_free_ char *theirs = read_environ(pid, &len);

	for (char **e = environ; *e; e++)
		ours++;
	size_t cap = ours + 1;
	for (size_t at = 0; theirs && at < len; at += strnlen(theirs + at, len - at) + 1)
		cap++;
	char **out = calloc(cap, sizeof(*out));
	if (!theirs || !out) {
		free(out);
		berth_fail(err, errno ? errno : ENOMEM, "the environment of step process %ld",
			   (long)pid);
		return NULL;
	}
	for (size_t at = 0; at < len; at += strnlen(theirs + at, len - at) + 1)
		if (theirs[at] && strncmp(theirs + at, "SLURM_", 6) != 0)
			out[n++] = strdup(theirs + at);
	for (char **e = environ; *e; e++)
		if (!strncmp(*e, "SLURM_", 6))
			out[n++] = strdup(*e);
	for (size_t i = 0; i < n; i++)
		if (!out[i]) {
			berth_strv_free(out);
			berth_fail(err, ENOMEM, "environment");
			return NULL;
		}
	return out;
}

int berth_step_join(const char *name, char *const *argv, const char *workdir,
		    struct berth_err *err)
{
	char job[32], step[32];

	if (sscanf(name, "%31[0-9].%31[0-9]", job, step) != 2)
		return berth_fail(err, 0, "--container-name=%s: not JOBID.STEPID", name);
	bool hidden;
	pid_t pid = find_step(job, step, &hidden);
	struct inside_fds fds = {-1, -1, -1, -1, -1, -1, -1};
	char cwd[64];
	snprintf(cwd, sizeof(cwd), "/proc/%ld/cwd", (long)pid);
	_cleanup_close_ int cwd_fd = pid > 0 ? open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	if (pid > 0 && open_inside(pid, &fds) < 0)
		pid = 0;
	/* a setuid runtime's container: its namespaces hang off the node's own
	 * user namespace, where only root may enter them */
	if ((pid <= 0 && hidden) ||
	    (pid > 0 && geteuid() != 0 && ours_already(fds.user, "user", err) == 1)) {
		close_inside(&fds);
		return berth_fail(err, 0, "--container-name=%s: step %s.%s runs in a container "
				  "whose namespaces belong to root (a runtime installed setuid), "
				  "which no step of yours can join; name its container instead "
				  "(--container-name=NAME on the first step, then the same name)",
				  name, job, step);
	}
	if (pid <= 0)
		return berth_fail(err, 0, "--container-name=%s: no step %s.%s of yours runs in a "
				  "container on this node; start it first (a name of the form "
				  "JOBID.STEPID always means a running step)", name, job, step);
	char **env = step_env(pid, err);
	if (!env) {
		close_inside(&fds);
		return -1;
	}
	int rc = join_inside(&fds, name, argv, env, workdir, cwd_fd, err);
	berth_strv_free(env);
	return rc;
}
