/* berth: the executor lifecycle shared by every runtime, and the registry.
 * A runtime file supplies only what differs: its cached artifact and the
 * command line/environment of its runtime program. */
#define _GNU_SOURCE
#include "executor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process.h"

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

	(void)err;
	berth_cache_entry_path(&ex->cache, digest, ex->ops->artifact(ex)->leaf, path);
	*loaded = access(path, F_OK) == 0;
	return 0;
}

/* A SIF ("SIF_MAGIC" at offset 32) or a bare squashfs ("hsqs"). */
static bool is_raw_image(const char *path)
{
	char head[48] = {0};
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, head, sizeof(head)) < 4)
		return false;
	return !memcmp(head, "hsqs", 4) || !memcmp(head + 32, "SIF_MAGIC", 9);
}

int berth_executor_load_image(struct berth_executor *ex, const char *ref,
			      struct berth_stage_result *res, struct berth_err *err)
{
	memset(res, 0, sizeof(*res));
	if (ex->ops->load)
		return ex->ops->load(ex, ref, res, err);
	if (is_raw_image(ref)) {
		if (!ex->ops->runs_raw_images)
			return berth_fail(err, 0, "%s is a SIF/squashfs image: it runs "
					  "only with the singularity runtime; give %s "
					  "a docker-save archive", ref, ex->ops->name);
		ex->raw_image = ref; /* the caller's string; runs without a cache entry */
		return 0;
	}
	return berth_cache_stage(&ex->cache, ref, ex->ops->artifact(ex), res, err);
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
	return berth_cache_remove(&ex->cache, digest, err);
}

const char *berth_spec_workdir(const struct berth_executor *ex)
{
	if (ex->spec && ex->spec->workdir)
		return ex->spec->workdir;
	if (ex->img_loaded && ex->img.workdir)
		return ex->img.workdir;
	return "/";
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
	ex->spec = spec;
	if (ex->ops->create(ex, spec, err) < 0)
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
		if (write(report[1], &child, sizeof(child)) < 0)
			_exit(127);
		_exit(127);
	}
	setpgid(ex->pid, ex->pid);
	close(report[1]);
	struct berth_err child;
	ssize_t n = read(report[0], &child, sizeof(child));
	close(report[0]);
	if (n == (ssize_t)sizeof(child)) {
		waitpid(ex->pid, NULL, 0);
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
	if (ex->img_loaded)
		berth_image_close(&ex->img);
	berth_strv_free(ex->argv);
	berth_strv_free(ex->envp);
	berth_cache_close(&ex->cache);
	free(ex);
}

/* ---- environment ------------------------------------------------------------ */

static size_t env_name_len(const char *pair)
{
	return strcspn(pair, "=");
}

static bool env_name_in(const char *pair, char *const *names)
{
	size_t len = env_name_len(pair);

	for (size_t i = 0; names && names[i]; i++)
		if (strlen(names[i]) == len && !strncmp(names[i], pair, len))
			return true;
	return false;
}

static bool env_name_is(const char *pair, const char *name)
{
	size_t len = strlen(name);

	return !strncmp(pair, name, len) && (pair[len] == '=' || !pair[len]);
}

/* LANG, LANGUAGE and LC_*: the job's locale names one of the host's
 * locales, which the image may lack (pyxis keeps the image's locale). */
static bool env_is_locale(const char *pair)
{
	return env_name_is(pair, "LANG") || env_name_is(pair, "LANGUAGE") ||
	       !strncmp(pair, "LC_", 3);
}

static ssize_t env_find(char **v, size_t n, const char *pair)
{
	size_t len = env_name_len(pair);

	for (size_t i = 0; i < n; i++)
		if (!strncmp(v[i], pair, len) && v[i][len] == '=')
			return (ssize_t)i;
	return -1;
}

/* One of the image's variables: added, or over base's value unless the
 * name is kept.  SLURM_* never comes from an image: the task must see its
 * own step. */
static int env_add_image(struct berth_strv *out, const char *pair, char *const *keep,
			 struct berth_err *err)
{
	if (!strchr(pair, '=') || pair[0] == '=' || !strncmp(pair, "SLURM_", 6))
		return 0;
	ssize_t at = out->v ? env_find(out->v, out->n, pair) : -1;
	if (at < 0)
		return berth_strv_add(out, pair, err);
	if (env_name_in(pair, keep))
		return 0;
	char *copy = strdup(pair);
	if (!copy)
		return berth_fail(err, ENOMEM, "environment");
	free(out->v[at]);
	out->v[at] = copy;
	return 0;
}

char **berth_env_merge(char *const *base, const struct berth_image *img,
		       char *const *keep, struct berth_err *err)
{
	struct berth_strv out = {0};

	for (size_t i = 0; base && base[i]; i++)
		if (strchr(base[i], '=') && base[i][0] != '=' &&
		    berth_strv_add(&out, base[i], err) < 0)
			goto fail;
	for (size_t i = 0; img && i < img->n_env; i++)
		if (env_add_image(&out, img->env[i], keep, err) < 0)
			goto fail;
	if (!out.v && !(out.v = calloc(1, sizeof(char *)))) {
		berth_fail(err, ENOMEM, "environment");
		goto fail;
	}
	return out.v;
fail:
	berth_strv_free(out.v);
	return NULL;
}

static size_t strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

char **berth_task_env(char *const *job, const struct berth_image *img,
		      char *const *keep, struct berth_err *err)
{
	size_t n_job = strv_len(job), n_keep = strv_len(keep), n = 0;
	/* Borrowed pointers: the job's variables without its locale, and the
	 * kept names plus TERM (the user's terminal, not the image builder's). */
	_cleanup_free_ char **base = calloc(n_job + 1, sizeof(char *));
	_cleanup_free_ char **kept = calloc(n_keep + 2, sizeof(char *));

	if (!base || !kept) {
		berth_fail(err, ENOMEM, "environment");
		return NULL;
	}
	for (size_t i = 0; i < n_job; i++)
		if (!env_is_locale(job[i]) || env_name_in(job[i], keep))
			base[n++] = job[i];
	if (n_keep)
		memcpy(kept, keep, n_keep * sizeof(char *));
	kept[n_keep] = (char *)"TERM";
	return berth_env_merge(base, img, kept, err);
}

/* ---- working directory ------------------------------------------------------- */

int berth_workdir_resolve(const char *dir, char *out, size_t len, struct berth_err *err)
{
	size_t n = 0;

	if (!dir || !dir[0])
		return berth_fail(err, 0, "empty working directory: give a path inside "
				  "the container");
	if (len < 2)
		return berth_fail(err, ENAMETOOLONG, "working directory '%s'", dir);
	/* Component by component from "/": "." goes, ".." drops the last one
	 * kept and stays at "/" when there is none, as the kernel does at a
	 * root.  The same text for every runtime (Docker would clean it too). */
	for (const char *p = dir; *p;) {
		size_t c = strcspn(p, "/");
		if (c == 2 && !strncmp(p, "..", 2)) {
			while (n > 0 && out[--n] != '/')
				;
		} else if (c > 0 && !(c == 1 && p[0] == '.')) {
			if (n + 1 + c >= len)
				return berth_fail(err, ENAMETOOLONG, "working directory '%s'", dir);
			out[n] = '/';
			memcpy(out + n + 1, p, c);
			n += 1 + c;
		}
		p += c + (p[c] == '/');
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return 0;
}

/* ---- what a task runs ---------------------------------------------------------- */

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

/* In the container, a task with a quiet ENTRYPOINT runs as
 *   /bin/sh -c HIDE sh ENTRYPOINT... /bin/sh -c SHOW sh CMD...
 * HIDE keeps the real stdout/stderr as fds 3/4 and sends the entry point's
 * own output to /dev/null; the entry point execs its arguments, so SHOW
 * runs next, puts 3/4 back for the command and closes them. */
static const char hide_output[] = "exec 3>&1 4>&2 >/dev/null 2>&1; exec \"$@\"";
static const char show_output[] = "exec 1>&3 2>&4 3>&- 4>&-; exec \"$@\"";

static int add_all(struct berth_strv *out, char *const *v, size_t n, struct berth_err *err)
{
	for (size_t i = 0; v && (n == SIZE_MAX ? v[i] != NULL : i < n); i++)
		if (berth_strv_add(out, v[i], err) < 0)
			return -1;
	return 0;
}

static int add_shell(struct berth_strv *out, const char *script, struct berth_err *err)
{
	if (berth_strv_add(out, "/bin/sh", err) < 0 || berth_strv_add(out, "-c", err) < 0 ||
	    berth_strv_add(out, script, err) < 0)
		return -1;
	return berth_strv_add(out, "sh", err); /* $0; the rest is "$@" */
}

char **berth_task_argv(const struct berth_image *img, char *const *cmd,
		       enum berth_entrypoint mode, struct berth_err *err)
{
	struct berth_strv out = {0};
	bool ep = mode != BERTH_EP_NONE && img && img->n_entrypoint > 0;
	bool quiet = ep && mode == BERTH_EP_QUIET;

	if (!cmd || !cmd[0]) {
		berth_fail(err, 0, "no command to run in the container");
		return NULL;
	}
	if ((quiet && add_shell(&out, hide_output, err) < 0) ||
	    (ep && add_all(&out, img->entrypoint, img->n_entrypoint, err) < 0) ||
	    (quiet && add_shell(&out, show_output, err) < 0) ||
	    add_all(&out, cmd, SIZE_MAX, err) < 0) {
		berth_strv_free(out.v);
		return NULL;
	}
	return out.v;
}
