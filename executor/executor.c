/* berth: the executor lifecycle shared by every runtime, and the registry.
 * A runtime file supplies only what differs: its cached artifact and the
 * command line/environment of its runtime program. */
#define _GNU_SOURCE
#include "executor/base/strv.h"
#include "executor/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executor/base/process.h"

/* One row per runtime. */
static const struct {
	enum berth_runtime runtime;
	const struct berth_executor_ops *ops;
} registry[] = {
	{BERTH_RT_CHARLIECLOUD, &berth_charliecloud_ops},
	{BERTH_RT_SINGULARITY, &berth_singularity_ops},
	{BERTH_RT_DOCKER, &berth_docker_ops},
};

int berth_executor_new(const char *name, const struct berth_config *cfg,
		       const char *cache_dir, struct berth_executor **out,
		       struct berth_err *err)
{
	enum berth_runtime rt = berth_runtime_from_name(name);
	const struct berth_executor_ops *ops = NULL;

	*out = NULL;
	for (size_t i = 0; i < sizeof(registry) / sizeof(*registry); i++)
		if (registry[i].runtime == rt)
			ops = registry[i].ops;
	if (rt == BERTH_RT_NONE)
		return berth_fail(err, 0, "unknown runtime '%s' (known: charliecloud, "
				  "singularity, apptainer, docker)", name);
	if (!ops)
		return berth_fail(err, 0, "runtime '%s' is not available in this "
				  "version of berth", name);
	struct berth_executor *ex = calloc(1, sizeof(*ex));
	if (!ex)
		return berth_fail(err, ENOMEM, "executor");
	ex->ops = ops;
	ex->cfg = cfg;
	ex->lock_fd = -1;
	ex->pid = -1;
	ex->cache.dir_fd = -1;
	if (berth_cache_open(&ex->cache, cache_dir ? cache_dir : cfg->cache_dir,
			     getuid(), err) < 0 ||
	    (ops->prepare && ops->prepare(ex, err) < 0)) {
		berth_executor_destroy(ex);
		return -1;
	}
	ex->cache_open = true;
	berth_cache_configure(&ex->cache, cfg);
	*out = ex;
	return 0;
}

int berth_executor_image_loaded(struct berth_executor *ex, const char *digest,
				bool *loaded, struct berth_err *err)
{
	char path[PATH_MAX];

	if (ex->ops->image_loaded)
		return ex->ops->image_loaded(ex, digest, loaded, err);
	berth_cache_entry_path(&ex->cache, digest, ex->ops->artifact(ex)->leaf, path);
	*loaded = access(path, F_OK) == 0;
	return 0;
}

/* A SIF ("SIF_MAGIC" at offset 32) or a bare squashfs ("hsqs"). */
/* 1 a SIF or SquashFS file, 0 anything else (or nothing: a reference, a
 * missing file, which the stager names later), -1 a path that is no
 * regular file: a FIFO must not hold the stager (berth_open_regular). */
static int is_raw_image(const char *path, struct berth_err *err)
{
	char head[48] = {0};
	struct berth_err why = {0};
	struct stat st;

	if (stat(path, &st) < 0 || S_ISDIR(st.st_mode))
		return 0; /* a folder named like a registry image is no image */
	_cleanup_close_ int fd = berth_open_regular(path, &why);

	if (fd < 0 && !why.errnum) {
		*err = why;
		return -1;
	}
	if (fd < 0 || read(fd, head, sizeof(head)) < 4)
		return 0;
	return !memcmp(head, "hsqs", 4) || !memcmp(head + 32, "SIF_MAGIC", 9);
}

int berth_executor_load_image(struct berth_executor *ex, const char *ref,
			      struct berth_stage_result *res, struct berth_err *err)
{
	memset(res, 0, sizeof(*res));
	if (ex->ops->load)
		return ex->ops->load(ex, ref, res, err);
	/* The site's importer first: what it claims is a local file now (an
	 * archive, or a SquashFS/SIF that may run as it is). */
	const char *orig_ref = ref;
	free(ex->imported);
	ex->imported = NULL;
	int claimed = berth_cache_import(&ex->cache, ref, &ex->imported, err);
	if (claimed < 0)
		return -1;
	if (claimed)
		ref = ex->imported;
	int raw = is_raw_image(ref, err);
	if (raw < 0)
		return -1;
	if (raw) {
		if (!ex->ops->runs_raw_images)
			return berth_fail(err, 0, "%s is a SIF/squashfs image: it runs "
					  "only with the singularity runtime; give %s "
					  "a docker-save archive", ref, ex->ops->name);
		ex->raw_image = ref; /* the caller's string; runs without a cache entry */
		return 0;
	}
	/* asked already: not twice */
	const char *importer = ex->cache.importer;
	ex->cache.importer = NULL;
	int rc = berth_cache_stage(&ex->cache, ref, ex->ops->artifact(ex), res, err);
	ex->cache.importer = importer;
	/* A damaged file is the importer's to fix, not the user's. */
	if (rc < 0 && claimed)
		berth_wrap(err, "the site's importer %s fetched %s as %s, which berth could not "
			   "stage (if the file is damaged, ask the site's administrators to fix "
			   "the importer)", importer, orig_ref, ref);
	return rc;
}

int berth_executor_use_image(struct berth_executor *ex, const char *digest,
			     struct berth_err *err)
{
	if (ex->ops->use)
		return ex->ops->use(ex, digest, err);
	if (ex->lock_fd >= 0)
		close(ex->lock_fd);
	/* Held shared while the container lives, across exec too: gc will
	 * not evict an image in use. */
	ex->lock_fd = berth_cache_use(&ex->cache, digest, ex->ops->artifact(ex)->leaf, err);
	if (ex->lock_fd < 0)
		return -1;
	if (ex->img_loaded)
		berth_image_close(&ex->img);
	ex->img_loaded = false;
	if (berth_cache_load_config(&ex->cache, digest, &ex->img, err) < 0)
		return -1;
	ex->img_loaded = true;
	snprintf(ex->digest, sizeof(ex->digest), "%s", digest);
	return 0;
}

int berth_executor_remove_image(struct berth_executor *ex, const char *digest,
				struct berth_err *err)
{
	if (ex->ops->remove_image)
		return ex->ops->remove_image(ex, digest, err);
	return berth_cache_remove_artifact(&ex->cache, digest, ex->ops->artifact(ex)->leaf, err);
}

const char *berth_spec_workdir(const struct berth_executor *ex)
{
	if (ex->spec && ex->spec->workdir)
		return ex->spec->workdir;
	if (ex->img_loaded && ex->img.workdir)
		return ex->img.workdir;
	return "/";
}

const char *berth_spec_home(const struct berth_executor *ex, char *buf, size_t len)
{
	const char *home = ex->spec ? berth_strv_getenv(ex->spec->env, "HOME") : NULL;
	struct passwd pw, *found = NULL;
	char pwbuf[4096];

	if (!home)
		home = getenv("HOME");
	if (!home || home[0] != '/') {
		if (getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &found) != 0 || !found)
			return NULL;
		home = pw.pw_dir;
	}
	if (home[0] != '/' || strlen(home) >= len)
		return NULL;
	memcpy(buf, home, strlen(home) + 1);
	return buf;
}

const char *berth_spec_home_dst(const struct berth_executor *ex, const char *home)
{
	return ex->spec && ex->spec->remap_root ? "/root" : home;
}

int berth_executor_set_command(struct berth_executor *ex, struct berth_strv *argv,
			       struct berth_strv *envp, struct berth_err *err)
{
	for (size_t i = 0; ex->spec->argv[i]; i++) {
		if (berth_strv_add(argv, ex->spec->argv[i], err) < 0) {
			berth_strv_free(argv->v);
			berth_strv_free(envp->v);
			return -1;
		}
	}
	ex->argv = argv->v;
	ex->envp = envp->v;
	return 0;
}

/* What the container sees at `path`, for the command check below. */
enum probe { PROBE_MISSING, PROBE_EXEC, PROBE_NOEXEC, PROBE_DIR, PROBE_UNKNOWN };

/* Folders a runtime mounts over the image (ch-run, singularity) or that
 * the user's home may live under: what is there is not the image's, so the
 * check below cannot tell and lets the runtime find out. */
static bool runtime_mounts_over(const char *path)
{
	static const char *const over[] = {"/dev", "/proc", "/sys", "/tmp", "/var/tmp",
					   "/run", "/home", "/root", "/.singularity.d",
					   "/.berth", "/mnt", "/media"};

	for (size_t i = 0; i < sizeof(over) / sizeof(*over); i++) {
		size_t n = strlen(over[i]);
		if (!strncmp(path, over[i], n) && (path[n] == '/' || !path[n]))
			return true;
	}
	return false;
}

/* --container-mount-home binds the user's home where the job's $HOME (or
 * else the passwd entry) names it, at /root under remapped root. */
static bool under_home(const struct berth_container_spec *spec, const char *path)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	const char *home = spec->remap_root ? "/root" : berth_strv_getenv(spec->env, "HOME");

	if (!home || home[0] != '/') {
		if (getpwuid_r(spec->uid, &pw, buf, sizeof(buf), &found) != 0 || !found ||
		    !pw.pw_dir[0])
			return true; /* not known: let the runtime decide */
		home = pw.pw_dir;
	}
	size_t n = strlen(home);
	return !strncmp(path, home, n) && (path[n] == '/' || !path[n]);
}

static enum probe probe_mode(const struct stat *st)
{
	if (S_ISDIR(st->st_mode))
		return PROBE_DIR;
	return S_ISREG(st->st_mode) && (st->st_mode & 0111) ? PROBE_EXEC : PROBE_NOEXEC;
}

/* `path` (absolute) in the container's view: under a bind's destination,
 * the bind's source (the caller reads it as the container will); else the
 * image tree at root, symlinks resolved inside it (RESOLVE_IN_ROOT). */
static enum probe probe_path(int root, const struct berth_container_spec *spec,
			     const char *path)
{
	const struct berth_mount *best = NULL;
	size_t best_len = 0;
	struct stat st;

	for (size_t i = 0; i < spec->n_binds; i++) {
		const char *dst = spec->binds[i].dst;
		size_t n = strlen(dst);
		while (n > 1 && dst[n - 1] == '/')
			n--;
		if (n >= best_len && !strncmp(path, dst, n) &&
		    (path[n] == '/' || !path[n] || n == 1)) {
			best = &spec->binds[i];
			best_len = n;
		}
	}
	if (best) {
		char host[PATH_MAX];
		if (best->kind != BERTH_MOUNT_BIND ||
		    snprintf(host, sizeof(host), "%s%s", best->src,
			     best_len == 1 ? path : path + best_len) >=
			    (int)sizeof(host))
			return PROBE_UNKNOWN;
		return stat(host, &st) < 0 ? PROBE_MISSING : probe_mode(&st);
	}
	if (runtime_mounts_over(path) || (spec->mount_home && under_home(spec, path)))
		return PROBE_UNKNOWN;
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
	_cleanup_close_ int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? PROBE_MISSING : PROBE_UNKNOWN;
	return fstat(fd, &st) < 0 ? PROBE_UNKNOWN : probe_mode(&st);
}

/* The container's PATH (what ch-run's execvp and Apptainer's LookPath
 * search), else the one Docker and the runtimes default to. */
static const char *spec_path(const struct berth_container_spec *spec)
{
	for (size_t i = 0; spec->env && spec->env[i]; i++)
		if (!strncmp(spec->env[i], "PATH=", 5))
			return spec->env[i] + 5;
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

/* Find the command the way the runtime will, in the image tree, before
 * anything runs: ch-run reports a failed exec as 1, Apptainer as 255, and
 * a workflow engine must tell "no such command" (127) and "not
 * executable" (126) from the command's own failure, as with a shell or
 * Docker.  Only where the image is a tree in the cache (charliecloud's
 * rootfs, singularity's sandbox) and nothing can have changed it (no
 * named container's layer); elsewhere the runtime decides. */
static int check_command(struct berth_executor *ex, const struct berth_container_spec *spec,
			 struct berth_err *err)
{
	char tree[PATH_MAX];

	if (!ex->digest[0] || ex->raw_image || spec->layer_dir || !ex->ops->artifact)
		return 0;
	berth_cache_entry_path(&ex->cache, ex->digest, ex->ops->artifact(ex)->leaf, tree);
	_cleanup_close_ int root = open(tree, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return 0; /* a SIF, or an image inside Docker: the runtime tells */
	return berth_executor_check_command_at(ex, root, err);
}

int berth_executor_check_command_at(struct berth_executor *ex, int root,
				    struct berth_err *err)
{
	const struct berth_container_spec *spec = ex->spec;
	char full[PATH_MAX];
	const char *cmd = spec->argv[0];
	enum probe found = PROBE_MISSING;

	if (strchr(cmd, '/')) {
		const char *wd = berth_spec_workdir(ex);
		if (snprintf(full, sizeof(full), "%s%s%s", cmd[0] == '/' ? "" : wd,
			     cmd[0] == '/' || wd[strlen(wd) - 1] == '/' ? "" : "/", cmd) >=
		    (int)sizeof(full))
			return 0;
		found = probe_path(root, spec, full);
	} else {
		_cleanup_free_ char *dirs = strdup(spec_path(spec));
		char *save = NULL;
		if (!dirs)
			return 0;
		for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
			if (d[0] != '/' ||
			    snprintf(full, sizeof(full), "%s/%s", d, cmd) >= (int)sizeof(full))
				return 0; /* relative to the working folder: let it run */
			enum probe p = probe_path(root, spec, full);
			if (p == PROBE_EXEC || p == PROBE_UNKNOWN)
				return 0;
			if (p == PROBE_NOEXEC)
				found = PROBE_NOEXEC; /* as bash: 126 unless one later runs */
		}
	}
	if (found == PROBE_EXEC || found == PROBE_UNKNOWN)
		return 0;
	if (found == PROBE_MISSING) {
		ex->refused = 127;
		return berth_fail(err, 0, "%s: command not found in the container (searched "
				  "%s): check its name, or use an image that has it", cmd,
				  strchr(cmd, '/') ? "that path" : spec_path(spec));
	}
	ex->refused = 126;
	if (found == PROBE_DIR)
		return berth_fail(err, 0, "%s: is a folder in the container, not a command: "
				  "name the program inside it", cmd);
	return berth_fail(err, 0, "%s: found in the container but not executable: run "
			  "it through its interpreter, or make it executable in the image", cmd);
}

/* The mounts into own_binds, but umount:DST items, which become what the
 * runtime leaves out: ch-run's /etc/passwd and /etc/group (--no-passwd),
 * and nothing else (caps.h says the same at submission). */
static int take_umounts(struct berth_executor *ex, const struct berth_container_spec *spec,
			struct berth_err *err)
{
	size_t n = 0;

	for (size_t i = 0; i < spec->n_binds; i++) {
		const struct berth_mount *m = &spec->binds[i];
		if (m->kind != BERTH_MOUNT_UMOUNT) {
			ex->own_binds[n++] = *m;
			continue;
		}
		if (strcmp(ex->ops->name, "charliecloud") != 0 ||
		    (strcmp(m->dst, "/etc/passwd") != 0 && strcmp(m->dst, "/etc/group") != 0))
			return berth_fail(err, 0, "mount umount:%s: %s cannot leave out a mount "
					  "it makes there; drop the item", m->dst, ex->ops->name);
		ex->own_spec.no_passwd = true;
	}
	ex->own_spec.n_binds = n;
	return 0;
}

int berth_executor_create(struct berth_executor *ex,
			  const struct berth_container_spec *spec,
			  struct berth_err *err)
{
	if (ex->state != BERTH_STATE_NONE)
		return berth_fail(err, 0, "container already created");
	if (!ex->digest[0] && !ex->raw_image)
		return berth_fail(err, 0, "no image loaded: load one before creating "
				  "a container");
	if (!spec->argv || !spec->argv[0])
		return berth_fail(err, 0, "no command to run in the container");
	for (size_t i = 0; i < spec->n_binds; i++)
		if ((spec->binds[i].kind == BERTH_MOUNT_BIND && spec->binds[i].src[0] != '/') ||
		    spec->binds[i].dst[0] != '/')
			return berth_fail(err, 0, "bind '%s:%s': both paths must be "
					  "absolute", spec->binds[i].src, spec->binds[i].dst);
	/* One order for every runtime: parents before the mounts inside them. */
	ex->own_spec = *spec;
	if (spec->n_binds) {
		free(ex->own_binds);
		ex->own_binds = malloc(spec->n_binds * sizeof(*ex->own_binds));
		if (!ex->own_binds)
			return berth_fail(err, ENOMEM, "mounts");
		if (take_umounts(ex, spec, err) < 0)
			return -1;
		berth_mounts_sort(ex->own_binds, ex->own_spec.n_binds);
		ex->own_spec.binds = ex->own_binds;
	}
	spec = ex->spec = &ex->own_spec;
	if (check_command(ex, spec, err) < 0 || ex->ops->create(ex, spec, err) < 0)
		return -1;
	ex->state = BERTH_STATE_CREATED;
	return 0;
}

/* In the child (or this process, for exec): stdio, then the runtime's own
 * last steps, then execve.  Returns only on failure. */
static int exec_runtime(struct berth_executor *ex, struct berth_err *err)
{
	const struct berth_container_spec *spec = ex->spec;
	const int fds[3] = {spec->stdin_fd, spec->stdout_fd, spec->stderr_fd};

	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0 && fds[i] != i && dup2(fds[i], i) < 0)
			return berth_fail(err, errno, "dup2");
	if (ex->lock_fd >= 0)
		fcntl(ex->lock_fd, F_SETFD, 0); /* keep the shared lock across exec */
	if (ex->ops->before_exec && ex->ops->before_exec(ex, err) < 0)
		return -1;
	execve(ex->argv[0], ex->argv, ex->envp);
	/* the path is the site's setting: name it, so the admin knows where */
	const char *key = !strcmp(ex->ops->name, "charliecloud") ? "ChRunPath"
			  : !strcmp(ex->ops->name, "singularity") ? "SingularityPath" : NULL;
	return berth_fail(err, errno, "cannot run %s, the %s runtime%s%s%s", ex->argv[0],
			  ex->ops->name, key ? " (" : "", key ? key : "",
			  key ? " in berth.conf; tell the administrator)" : "");
}

int berth_executor_exec(struct berth_executor *ex, struct berth_err *err)
{
	if (ex->state != BERTH_STATE_CREATED)
		return berth_fail(err, 0, "container not created");
	return exec_runtime(ex, err);
}

int berth_executor_start(struct berth_executor *ex, struct berth_err *err)
{
	int report[2];

	if (ex->state != BERTH_STATE_CREATED)
		return berth_fail(err, 0, "container not created");
	if (ex->ops->start) {
		if (ex->ops->start(ex, err) < 0)
			return -1;
		ex->state = BERTH_STATE_RUNNING;
		return 0;
	}
	if (pipe2(report, O_CLOEXEC) < 0)
		return berth_fail(err, errno, "pipe");
	ex->pid = fork();
	if (ex->pid < 0) {
		close(report[0]);
		close(report[1]);
		return berth_fail(err, errno, "fork");
	}
	if (ex->pid == 0) {
		struct berth_err child = {0};
		close(report[0]);
		setpgid(0, 0); /* kill() reaches the whole container */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL); /* the caller may block some */
		signal(SIGPIPE, SIG_DFL);
		exec_runtime(ex, &child);
		/* 126/127: a command before_exec found missing (refused) */
		int code = ex->refused ? ex->refused : 125;
		if (write(report[1], &child, sizeof(child)) < 0)
			_exit(code);
		_exit(code);
	}
	setpgid(ex->pid, ex->pid);
	close(report[1]);
	struct berth_err child;
	ssize_t n = read(report[0], &child, sizeof(child));
	close(report[0]);
	if (n == (ssize_t)sizeof(child)) {
		int status = 0;
		while (waitpid(ex->pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && (WEXITSTATUS(status) == 126 || WEXITSTATUS(status) == 127))
			ex->refused = WEXITSTATUS(status);
		ex->pid = -1;
		*err = child;
		return -1;
	}
	ex->state = BERTH_STATE_RUNNING;
	return 0;
}

int berth_executor_kill(struct berth_executor *ex, int sig, struct berth_err *err)
{
	if (ex->state != BERTH_STATE_RUNNING)
		return 0;
	if (ex->ops->kill)
		return ex->ops->kill(ex, sig, err);
	if (ex->pid <= 0)
		return 0;
	if (kill(-ex->pid, sig) < 0 && errno != ESRCH)
		return berth_fail(err, errno, "cannot signal the container");
	return 0;
}

int berth_executor_wait(struct berth_executor *ex, struct berth_err *err)
{
	if (ex->state != BERTH_STATE_RUNNING)
		return berth_fail(err, 0, "container not running");
	if (ex->ops->poll) {
		int done;
		while ((done = berth_executor_poll(ex, err)) == 0)
			usleep(20 * 1000);
		return done < 0 ? -1 : 0;
	}
	int code = berth_wait_pid(ex->pid, err);
	if (code < 0)
		return -1;
	ex->exit_code = code;
	ex->state = BERTH_STATE_EXITED;
	ex->pid = -1;
	return 0;
}

int berth_executor_poll(struct berth_executor *ex, struct berth_err *err)
{
	int wstatus;

	if (ex->state != BERTH_STATE_RUNNING)
		return berth_fail(err, 0, "container not running");
	if (ex->ops->poll) {
		int done = ex->ops->poll(ex, err);
		if (done > 0)
			ex->state = BERTH_STATE_EXITED;
		return done;
	}
	pid_t pid = waitpid(ex->pid, &wstatus, WNOHANG);
	if (pid < 0 && errno != EINTR)
		return berth_fail(err, errno, "waitpid(%d)", (int)ex->pid);
	if (pid <= 0)
		return 0;
	ex->exit_code = berth_exit_code(wstatus);
	ex->state = BERTH_STATE_EXITED;
	ex->pid = -1;
	return 1;
}

int berth_executor_exit_code(const struct berth_executor *ex)
{
	return ex->exit_code;
}

int berth_executor_refused(const struct berth_executor *ex)
{
	return ex ? ex->refused : 0;
}

enum berth_state berth_executor_state(const struct berth_executor *ex)
{
	return ex->state;
}

int berth_executor_finish(struct berth_executor *ex, struct berth_err *err)
{
	return ex && ex->ops->finish ? ex->ops->finish(ex, err) : 0;
}

void berth_executor_destroy(struct berth_executor *ex)
{
	if (!ex)
		return;
	if (ex->state == BERTH_STATE_RUNNING && ex->pid > 0 && !ex->ops->kill) {
		kill(-ex->pid, SIGKILL);
		waitpid(ex->pid, NULL, 0);
	}
	if (ex->ops->release)
		ex->ops->release(ex);
	if (ex->lock_fd >= 0)
		close(ex->lock_fd);
	free(ex->own_binds);
	free(ex->imported);
	if (ex->img_loaded)
		berth_image_close(&ex->img);
	berth_strv_free(ex->argv);
	berth_strv_free(ex->envp);
	berth_cache_close(&ex->cache);
	free(ex);
}

bool berth_executor_has_shell(struct berth_executor *ex)
{
	char path[PATH_MAX];
	struct stat st;

	if (!ex->digest[0] || ex->raw_image)
		return true;
	berth_cache_entry_path(&ex->cache, ex->digest, ex->ops->artifact(ex)->leaf, path);
	_cleanup_close_ int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return true; /* a SIF, or an image that lives in Docker: not known */
	/* RESOLVE_IN_ROOT: /bin/sh and its symlinks (busybox, usrmerge's
	 * /bin -> usr/bin) resolve as they will inside the container. */
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
	_cleanup_close_ int sh = (int)syscall(SYS_openat2, root, "bin/sh", &how, sizeof(how));
	if (sh < 0)
		return errno == ENOSYS; /* a kernel older than 5.6 cannot tell */
	return fstat(sh, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}
