#define _GNU_SOURCE
#include "executor/dockerd/bindstage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executor/base/fs.h"

/* Into PID 1's mount namespace when this one is not it (slurmstepd in a
 * job container): dockerd resolves paths there. */
static int enter_host_mounts(struct berth_err *err)
{
	struct stat mine, host;

	/* Where PID 1 cannot be looked at (a container without CAP_SYS_PTRACE),
	 * this is as far as anyone gets: dockerd is taken to share ours. */
	if (stat("/proc/self/ns/mnt", &mine) < 0 || stat("/proc/1/ns/mnt", &host) < 0)
		return 0;
	if (mine.st_ino == host.st_ino && mine.st_dev == host.st_dev)
		return 0;
	_cleanup_close_ int fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNS) < 0)
		return berth_fail(err, errno, "cannot enter the host's mount namespace");
	return 0;
}

/* CacheDir/.docker-binds, root's alone: made if missing, refused if anyone
 * else could put something there (CacheDir itself too). */
static int stage_root(const char *root, struct berth_err *err)
{
	_cleanup_free_ char *parent = strdup(root);
	struct stat st;

	if (!parent)
		return berth_fail(err, ENOMEM, "stage");
	*strrchr(parent, '/') = '\0';
	const char *parts[] = {parent, root};
	for (size_t i = 0; i < 2; i++) {
		if (i == 1 && mkdir(root, 0700) < 0 && errno != EEXIST)
			return berth_fail(err, errno, "cannot create %s", root);
		if (lstat(parts[i], &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
		    (st.st_mode & 022))
			return berth_fail(err, 0, "%s must be a folder only root can write", parts[i]);
	}
	return 0;
}

static int bind_one(const char *dir, size_t i, int fd, char *path, struct berth_err *err)
{
	char src[64];
	struct stat st;

	snprintf(path, PATH_MAX, "%s/%zu", dir, i);
	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	if (fstat(fd, &st) < 0)
		return berth_fail(err, errno, "bind %zu", i);
	int made = S_ISDIR(st.st_mode) ? mkdir(path, 0700) : mknod(path, S_IFREG | 0600, 0);
	/* mount() follows the descriptor's magic link to the object itself */
	if (made < 0 || mount(src, path, NULL, MS_BIND | MS_REC, NULL) < 0)
		return berth_fail(err, errno, "cannot stage bind %zu at %s", i, path);
	return 0;
}

/* The work, in a child (it may change mount namespace); errors come back
 * through a pipe as text. */
static void make_in_child(int report, const char *root, const char *label, const int *fds,
			  size_t n, char (*paths)[PATH_MAX], char *dir)
{
	struct berth_err err = {0};
	char tmpl[PATH_MAX];

	snprintf(tmpl, sizeof(tmpl), "%s/%s.XXXXXX", root, label);
	int rc = enter_host_mounts(&err) < 0 || stage_root(root, &err) < 0 ? -1 : 0;
	if (rc == 0 && !mkdtemp(tmpl))
		rc = berth_fail(&err, errno, "cannot create a folder under %s", root);
	else if (rc == 0) /* the parent learns its name even on failure, to remove it */
		strcpy(dir, tmpl);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = bind_one(tmpl, i, fds[i], paths[i], &err);
	if (rc < 0 && write(report, err.msg, strlen(err.msg)) < 0)
		_exit(2);
	_exit(rc < 0 ? 1 : 0);
}

int berth_bind_stage_make(struct berth_bind_stage *stage, const char *cache_dir,
			  const char *label, const int *fds, size_t n, char (*paths)[PATH_MAX],
			  struct berth_err *err)
{
	char root[PATH_MAX];
	int pipefd[2];
	char msg[sizeof(err->msg)] = "";
	/* the child's results, in memory the parent sees */
	char (*shared)[PATH_MAX] = mmap(NULL, (n + 1) * PATH_MAX, PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (shared == MAP_FAILED)
		return berth_fail(err, errno, "mmap");
	snprintf(root, sizeof(root), "%s/" BERTH_BIND_STAGE_LEAF, cache_dir);
	memset(shared, 0, (n + 1) * PATH_MAX);
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		munmap(shared, (n + 1) * PATH_MAX);
		return berth_fail(err, errno, "pipe");
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		make_in_child(pipefd[1], root, label, fds, n, shared + 1, shared[0]);
	}
	close(pipefd[1]);
	ssize_t got = pid > 0 ? read(pipefd[0], msg, sizeof(msg) - 1) : -1;
	close(pipefd[0]);
	int status = 0;
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	snprintf(stage->dir, sizeof(stage->dir), "%s", shared[0]);
	stage->n = 0;
	for (size_t i = 0; i < n && shared[i + 1][0]; i++) {
		memcpy(paths[i], shared[i + 1], PATH_MAX);
		stage->n = i + 1;
	}
	munmap(shared, (n + 1) * PATH_MAX);
	if (pid < 0)
		return berth_fail(err, errno, "fork");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		msg[got > 0 ? got : 0] = '\0';
		berth_bind_stage_remove(stage);
		return berth_fail(err, 0, "%s", msg[0] ? msg : "cannot stage the binds");
	}
	return 0;
}

/* Unmount everything in `dir` (a stage) and remove it. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	char path[PATH_MAX + 300];

	for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
		if (rmdir(path) < 0)
			unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

void berth_bind_stage_remove(struct berth_bind_stage *stage)
{
	struct berth_err ignored;

	if (!stage->dir[0])
		return;
	pid_t pid = fork();
	if (pid == 0) {
		if (enter_host_mounts(&ignored) < 0)
			_exit(1);
		remove_dir(stage->dir);
		_exit(0);
	}
	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	stage->dir[0] = '\0';
	stage->n = 0;
}

int berth_bind_stage_sweep(const char *cache_dir, const char *job, const char *step,
			   struct berth_err *err)
{
	char prefix[64], path[PATH_MAX + 300], root[PATH_MAX];

	/* stages are "<job>.<step>.XXXXXX" */
	snprintf(prefix, sizeof(prefix), "%s.%s%s", job, step ? step : "", step ? "." : "");
	snprintf(root, sizeof(root), "%s/" BERTH_BIND_STAGE_LEAF, cache_dir);
	pid_t pid = fork();
	if (pid < 0)
		return berth_fail(err, errno, "fork");
	if (pid == 0) {
		struct berth_err ignored;
		if (enter_host_mounts(&ignored) < 0)
			_exit(1);
		DIR *d = opendir(root);
		for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
			if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", root, e->d_name);
			remove_dir(path);
		}
		if (d)
			closedir(d);
		_exit(0);
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return 0;
}
