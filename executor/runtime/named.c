#define _GNU_SOURCE
#include "executor/runtime/named.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <linux/nsfs.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/base/process.h"
#include "executor/base/strv.h"
#include "executor/runtime/fakeroot.h"
#include "executor/runtime/named_int.h"

extern char **environ;

#define JOIN_WAIT_TENTHS 600 /* a holder gets 60 s to have its container up */

/* ---- the record ---------------------------------------------------------- */

static int read_small(int dir_fd, const char *name, char *buf, size_t len)
{
	_cleanup_close_ int fd = berth_open_beneath(dir_fd, name, O_RDONLY, 0);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* NAME written whole or not at all (a crash leaves no half record). */
static int write_small(int dir_fd, const char *name, const char *text, struct berth_err *err)
{
	char tmp[64];

	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	_cleanup_close_ int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
					O_NOFOLLOW, 0600);
	if (fd < 0 || berth_write_all(fd, text, strlen(text)) < 0 ||
	    renameat(dir_fd, tmp, dir_fd, name) < 0)
		return berth_fail(err, errno, "cannot write the container's %s", name);
	return 0;
}

static int read_record(int dir_fd, struct berth_named *n)
{
	char buf[256];

	if (read_small(dir_fd, "image", buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%71s %31s", n->digest, n->runtime) != 2)
		return -1;
	return 0;
}

/* ---- taking it ----------------------------------------------------------- */

static int refuse_running(struct berth_named *n, enum berth_name_mode mode,
			  struct berth_err *err)
{
	if (mode == BERTH_NAME_CREATE)
		return berth_fail(err, 0, "--container-name=%s:create: the container "
				  "already exists (it is running); choose another name or drop "
				  ":create", n->name);
	/* pyxis starts a second container on the same files; berth's two
	 * overlays on one upper layer would be undefined (overlayfs: changes
	 * lost or seen half), so it refuses */
	return berth_fail(err, 0, "--container-name=%s:no_exec: the container is running "
			  "and no_exec does not join it (a second container on the same "
			  "layer could lose its changes); wait for that step, drop :no_exec "
			  "to join it, or use another name", n->name);
}

static int read_holder(int dir_fd, pid_t *pid, char *token, size_t len)
{
	char buf[128], *end;

	if (read_small(dir_fd, "holder", buf, sizeof(buf)) < 0)
		return -1;
	long p = strtol(buf, &end, 10);
	if (end == buf || *end != ' ' || p <= 1 || sscanf(end + 1, "%32s", token) != 1 ||
	    strlen(token) >= len)
		return -1;
	*pid = (pid_t)p;
	return 0;
}

static int take_existing(int dir_fd, struct berth_named *n, enum berth_name_mode mode,
			 const char *runtime, struct berth_err *err)
{
	if (mode == BERTH_NAME_CREATE)
		return berth_fail(err, 0, "--container-name=%s:create: the container "
				  "already exists; choose another name, remove it (berth rm %s) "
				  "or drop :create", n->name, n->name);
	if (mode == BERTH_NAME_EXEC)
		return berth_fail(err, 0, "--container-name=%s:exec: the container is not "
				  "running; drop :exec to start it again", n->name);
	if (read_record(dir_fd, n) < 0)
		return berth_fail(err, 0, "container %s: its record is damaged; remove it "
				  "(berth rm %s)", n->name, n->name);
	if (strcmp(n->runtime, runtime) != 0)
		return berth_fail(err, 0, "container %s was made by %s, not %s; use "
				  "--container-runtime=%s or another name", n->name, n->runtime,
				  runtime, n->runtime);
	return 0;
}

static int take_new(struct berth_cache *cache, const char *rel, struct berth_named *n,
		    enum berth_name_mode mode, const char *digest, const char *runtime,
		    int *dir_fd, struct berth_err *err)
{
	char text[160];

	if (mode == BERTH_NAME_EXEC || mode == BERTH_NAME_NO_CREATE)
		return berth_fail(err, 0, "--container-name=%s:%s: there is no container "
				  "of that name%s", n->name, berth_name_mode_str(mode),
				  mode == BERTH_NAME_EXEC ? " running" : "");
	if (!digest || !digest[0])
		return berth_fail(err, 0, "there is no container named %s, and without "
				  "--container-image it cannot be made", n->name);
	if (mkdirat(*dir_fd, "upper", 0755) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s/%s/upper", cache->dir, rel);
	if (mkdirat(*dir_fd, "work", 0700) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s/%s/work", cache->dir, rel);
	snprintf(text, sizeof(text), "%s %s\n", digest, runtime);
	if (write_small(*dir_fd, "image", text, err) < 0)
		return -1;
	snprintf(n->digest, sizeof(n->digest), "%s", digest);
	snprintf(n->runtime, sizeof(n->runtime), "%s", runtime);
	n->created = true;
	return 0;
}

static void nap(void)
{
	nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
}

/* The record of a container another task is making may not be written
 * yet: wait for it. */
static int wait_record(int dir_fd, struct berth_named *n)
{
	for (int i = 0; i < JOIN_WAIT_TENTHS; i++, nap())
		if (read_record(dir_fd, n) == 0)
			return 0;
	return -1;
}

int berth_named_take(struct berth_cache *cache, const char *scope, const char *name,
		     enum berth_name_mode mode, const char *digest, const char *runtime,
		     struct berth_named *n, struct berth_err *err)
{
	char rel[PATH_MAX];

	memset(n, 0, sizeof(*n));
	n->lock_fd = -1;
	snprintf(n->name, sizeof(n->name), "%s", name);
	snprintf(rel, sizeof(rel), "containers/%s/%s", scope, name);
	snprintf(n->dir, sizeof(n->dir), "%s/%s", cache->dir, rel);
	/* Only a container that may be made gets a folder. */
	int dir_fd = berth_open_beneath(cache->dir_fd, rel, O_RDONLY | O_DIRECTORY, 0);
	if (dir_fd < 0 && (mode == BERTH_NAME_EXEC || mode == BERTH_NAME_NO_CREATE ||
			   !digest || !digest[0]))
		return take_new(cache, rel, n, mode, digest, runtime, &dir_fd, err);
	if (dir_fd < 0) {
		int path_fd = berth_mkdir_beneath(cache->dir_fd, rel, 0700);
		dir_fd = path_fd < 0 ? -1 : berth_open_beneath(path_fd, "", O_RDONLY | O_DIRECTORY, 0);
		if (path_fd >= 0)
			close(path_fd);
		if (dir_fd < 0)
			return berth_fail(err, errno, "cannot create %s", n->dir);
	}
	int rc = -1;
	n->lock_fd = openat(dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (n->lock_fd < 0) {
		berth_fail(err, errno, "cannot open %s/lock", n->dir);
	} else if (flock(n->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		/* running (or being made): join it, unless the mode says otherwise */
		if (mode == BERTH_NAME_CREATE || mode == BERTH_NAME_NO_EXEC)
			refuse_running(n, mode, err);
		else if (wait_record(dir_fd, n) < 0)
			berth_fail(err, 0, "container %s: the task making it has not finished "
				   "within %d s", n->name, JOIN_WAIT_TENTHS / 10);
		else if (strcmp(n->runtime, runtime) != 0)
			berth_fail(err, 0, "container %s runs under %s, not %s", n->name,
				   n->runtime, runtime);
		else
			rc = 0;
		close(n->lock_fd);
		n->lock_fd = -1;
	} else {
		n->holder = true;
		unlinkat(dir_fd, "holder", 0); /* an earlier holder's: it has ended */
		rc = faccessat(dir_fd, "image", F_OK, AT_SYMLINK_NOFOLLOW) == 0
			     ? take_existing(dir_fd, n, mode, runtime, err)
			     : take_new(cache, rel, n, mode, digest, runtime, &dir_fd, err);
	}
	close(dir_fd);
	if (rc < 0)
		berth_named_release(n);
	return rc;
}

/* ---- running ------------------------------------------------------------- */

static bool is_running(int dir_fd);

int berth_named_mark_running(struct berth_named *n, pid_t pid, struct berth_err *err)
{
	unsigned char raw[12];
	char token[2 * sizeof(raw) + 1], file[64], text[96];
	_cleanup_close_ int dir_fd = open(n->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

	if (dir_fd < 0)
		return berth_fail(err, errno, "%s", n->dir);
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return berth_fail(err, errno, "getrandom");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(token + 2 * i, 3, "%02x", raw[i]);
	_cleanup_close_ int mark_fd = berth_mkdir_beneath(dir_fd, "upper/.berth", 0755);
	_cleanup_close_ int marks = mark_fd < 0 ? -1 : berth_open_beneath(mark_fd, "", O_RDONLY | O_DIRECTORY, 0);
	if (marks < 0)
		return berth_fail(err, errno, "cannot create %s/upper/.berth", n->dir);
	/* earlier holders' marks: they have ended (we hold the lock) */
	DIR *d = fdopendir(dup(marks));
	for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d))
		if (!strncmp(e->d_name, "running-", 8))
			unlinkat(marks, e->d_name, 0);
	if (d)
		closedir(d);
	snprintf(file, sizeof(file), "running-%s", token);
	_cleanup_close_ int fd = openat(marks, file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return berth_fail(err, errno, "cannot create the container's running mark");
	snprintf(text, sizeof(text), "%ld %s\n", (long)pid, token);
	return write_small(dir_fd, "holder", text, err);
}

/* The children of pid (Linux's /proc/PID/task/PID/children). */
static size_t children_of(pid_t pid, pid_t *out, size_t max)
{
	char path[64], buf[4096];
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", (long)pid, (long)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	for (char *p = buf, *end; n < max; p = end) {
		long c = strtol(p, &end, 10);
		if (end == p)
			break;
		out[n++] = (pid_t)c;
	}
	return n;
}

/* The first process of the holder's tree (nearest the holder) that sees
 * the holder's mark in its root: inside the container, set up (the
 * runtime's own processes on the way there do not see it), and as long-lived
 * as the container (the command's own children come and go). */
static pid_t find_inside(pid_t holder, const char *token)
{
	pid_t queue[512];
	size_t head = 0, tail = 0;
	char path[128];

	queue[tail++] = holder;
	while (head < tail) {
		pid_t p = queue[head++];
		snprintf(path, sizeof(path), "/proc/%ld/root/.berth/running-%s", (long)p, token);
		if (access(path, F_OK) == 0)
			return p;
		tail += children_of(p, queue + tail, sizeof(queue) / sizeof(*queue) - tail);
	}
	return 0;
}

#define N_INSIDE 7

void close_inside(struct inside_fds *f)
{
	int *all[] = {&f->user, &f->mnt, &f->pid, &f->root, &f->net, &f->ipc, &f->uts};

	for (size_t i = 0; i < N_INSIDE; i++)
		if (*all[i] >= 0) {
			close(*all[i]);
			*all[i] = -1;
		}
}

int open_inside(pid_t pid, struct inside_fds *f)
{
	static const char *const names[] = {"ns/user", "ns/mnt", "ns/pid", "root",
					    "ns/net", "ns/ipc", "ns/uts"};
	int *all[] = {&f->user, &f->mnt, &f->pid, &f->root, &f->net, &f->ipc, &f->uts};
	char path[64];

	for (size_t i = 0; i < N_INSIDE; i++) {
		snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, names[i]);
		*all[i] = open(path, (i == 3 ? O_PATH | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
		if (*all[i] < 0) {
			close_inside(f);
			return -1;
		}
	}
	return 0;
}

int ours_already(int fd, const char *ns, struct berth_err *err)
{
	char mine[64];
	struct stat theirs, ours;

	snprintf(mine, sizeof(mine), "/proc/self/ns/%s", ns);
	if (fstat(fd, &theirs) < 0)
		return berth_fail(err, errno, "namespace %s", ns);
	return stat(mine, &ours) == 0 && ours.st_ino == theirs.st_ino &&
	       ours.st_dev == theirs.st_dev;
}

static int enter_ns(int fd, const char *ns, int type, struct berth_err *err)
{
	int same = ours_already(fd, ns, err);

	if (same != 0)
		return same < 0 ? -1 : 0;
	if (setns(fd, type) < 0)
		return berth_fail(err, errno, "cannot join the running container's %s namespace", ns);
	return 0;
}

/* A network, IPC or UTS namespace of the container's own
 * (--container-unshare): it belongs to a user namespace outside the
 * runtime's (berth's, around ch-run), where the rights to enter it are;
 * that one first, then the namespace.  The same as ours: nothing to do. */
static int enter_owned_ns(int fd, const char *ns, int type, struct berth_err *err)
{
	int same = ours_already(fd, ns, err);

	if (same != 0)
		return same < 0 ? -1 : 0;
	_cleanup_close_ int owner = ioctl(fd, NS_GET_USERNS);
	if (owner < 0)
		return berth_fail(err, errno, "cannot find who owns the running container's %s "
				  "namespace", ns);
	if (enter_ns(owner, "user", CLONE_NEWUSER, err) < 0)
		return -1;
	return enter_ns(fd, ns, type, err);
}

/* The joiner's child: the task's command, inside the container. */
struct join_cmd {
	char *const *argv, *const *env;
};

static void exec_joined(void *arg)
{
	const struct join_cmd *c = arg;

	environ = (char **)c->env; /* execvp looks argv[0] up in the job's PATH */
	execvp(c->argv[0], c->argv);
	fprintf(stderr, "berth: %s: %s\n", c->argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

int berth_named_join(const struct berth_named *n, char *const *argv, char *const *env,
		     const char *workdir, bool remap_root, struct berth_err *err)
{
	char token[40];
	pid_t holder, inside = 0;

	/* first, as the holder's runtime does before it starts the container:
	 * the command run inside sees the same faked ids */
	if (remap_root && berth_fake_id_syscalls(err) < 0)
		return -1;
	_cleanup_close_ int dir_fd = open(n->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

	if (dir_fd < 0)
		return berth_fail(err, errno, "%s", n->dir);
	/* The holder may still be starting: its record, then its container;
	 * a process found may end before its namespaces are opened. */
	struct inside_fds fds = {-1, -1, -1, -1, -1, -1, -1};
	bool found = false;
	for (int i = 0; i < JOIN_WAIT_TENTHS && !found; i++, found ? (void)0 : nap()) {
		if (read_holder(dir_fd, &holder, token, sizeof(token)) == 0 && kill(holder, 0) == 0 &&
		    (inside = find_inside(holder, token)) > 0)
			found = open_inside(inside, &fds) == 0;
		if (!found && !is_running(dir_fd))
			return berth_fail(err, 0, "container %s stopped while this task joined it; "
					  "run the step again", n->name);
	}
	if (!found)
		return berth_fail(err, 0, "container %s: its first task did not come up "
				  "within %d s", n->name, JOIN_WAIT_TENTHS / 10);
	return join_inside(&fds, n->name, argv, env, workdir, -1, err);
}

int join_inside(struct inside_fds *fds, const char *name, char *const *argv,
		       char *const *env, const char *workdir, int cwd_fd, struct berth_err *err)
{
	/* the container's own network, IPC and UTS namespaces first, through
	 * the user namespace that owns them (an ancestor of the runtime's);
	 * then user: it gives the rights the other two need; then its root
	 * as it sees it (a runtime that chroots, rather than pivot_root,
	 * leaves the namespace's own root elsewhere) */
	int rc = enter_owned_ns(fds->net, "net", CLONE_NEWNET, err) < 0 ||
		 enter_owned_ns(fds->ipc, "ipc", CLONE_NEWIPC, err) < 0 ||
		 enter_owned_ns(fds->uts, "uts", CLONE_NEWUTS, err) < 0 ||
		 enter_ns(fds->user, "user", CLONE_NEWUSER, err) < 0 ||
		 enter_ns(fds->mnt, "mnt", CLONE_NEWNS, err) < 0 ||
		 enter_ns(fds->pid, "pid", CLONE_NEWPID, err) < 0 ? -1 : 0;
	if (rc == 0 && (fchdir(fds->root) < 0 || chroot(".") < 0))
		rc = berth_fail(err, errno, "cannot enter the root of container %s", name);
	close_inside(fds);
	if (rc < 0)
		return -1;
	if (workdir && *workdir ? chdir(workdir) < 0
			       : (cwd_fd < 0 || fchdir(cwd_fd) < 0) && chdir("/") < 0)
		return berth_fail(err, errno, "cannot change to %s in container %s",
				  workdir && *workdir ? workdir : "/", name);
	struct join_cmd cmd = {argv, env};
	return berth_fork_forwarding(exec_joined, &cmd, err);
}

void berth_named_release(struct berth_named *n)
{
	if (n->lock_fd >= 0)
		close(n->lock_fd);
	n->lock_fd = -1;
}

/* ---- ps, rm, the job's end ------------------------------------------------ */

static bool is_running(int dir_fd)
{
	return berth_lock_held(dir_fd, "lock");
}

int berth_named_list(struct berth_cache *cache, berth_named_visit visit, void *ctx,
		     struct berth_err *err)
{
	_cleanup_close_ int top = berth_open_beneath(cache->dir_fd, "containers",
						     O_RDONLY | O_DIRECTORY, 0);
	if (top < 0)
		return errno == ENOENT ? 0 : berth_fail(err, errno, "%s/containers", cache->dir);
	DIR *scopes = fdopendir(dup(top));
	for (struct dirent *s = scopes ? readdir(scopes) : NULL; s; s = readdir(scopes)) {
		if (s->d_name[0] == '.')
			continue;
		_cleanup_close_ int sfd = berth_open_beneath(top, s->d_name, O_RDONLY | O_DIRECTORY, 0);
		DIR *names = sfd < 0 ? NULL : fdopendir(dup(sfd));
		for (struct dirent *e = names ? readdir(names) : NULL; e; e = readdir(names)) {
			struct berth_named n = {0};
			if (e->d_name[0] == '.')
				continue;
			_cleanup_close_ int nfd = berth_open_beneath(sfd, e->d_name,
								     O_RDONLY | O_DIRECTORY, 0);
			if (nfd < 0 || read_record(nfd, &n) < 0)
				continue;
			visit(ctx, s->d_name, e->d_name, n.digest, n.runtime, is_running(nfd),
			      berth_tree_size(nfd, "upper"));
		}
		if (names)
			closedir(names);
	}
	if (scopes)
		closedir(scopes);
	return 0;
}

int berth_named_remove(struct berth_cache *cache, const char *scope, const char *name,
		       struct berth_err *err)
{
	char rel[PATH_MAX];

	snprintf(rel, sizeof(rel), "containers/%s", scope);
	_cleanup_close_ int sfd = berth_open_beneath(cache->dir_fd, rel, O_RDONLY | O_DIRECTORY, 0);
	_cleanup_close_ int nfd = sfd < 0 ? -1 : berth_open_beneath(sfd, name, O_RDONLY | O_DIRECTORY, 0);
	if (nfd < 0)
		return berth_fail(err, ENOENT, "no container %s (scope %s)", name, scope);
	if (is_running(nfd))
		return berth_fail(err, EBUSY, "container %s is running; end its step first", name);
	if (berth_remove_tree(sfd, name) < 0)
		return berth_fail(err, errno, "cannot remove %s/%s/%s", cache->dir, rel, name);
	return 0;
}

int berth_named_remove_scope(struct berth_cache *cache, const char *scope,
			     struct berth_err *err)
{
	_cleanup_close_ int top = berth_open_beneath(cache->dir_fd, "containers",
						     O_RDONLY | O_DIRECTORY, 0);
	if (top < 0)
		return 0;
	if (berth_remove_tree(top, scope) < 0)
		return berth_fail(err, errno, "cannot remove %s/containers/%s", cache->dir, scope);
	return 0;
}
