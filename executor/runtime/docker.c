/* berth: the Docker runtime, through the Engine API (executor/dockerd/api.c).
 *
 * Docker is root-equivalent, so this runtime is driven from root-side code
 * only (the plugin's privileged helper, or an administrator's `berth run`)
 * and sends vetted fields only: User = the job's uid:gid and groups, all
 * capabilities dropped, no-new-privileges, not privileged, binds only
 * under DockerAllowedMounts and only of what the user may read (opened as
 * that user; dockerd gets that very object, staged: bindstage.h), labels
 * berth.job/.step/.uid.  The image is
 * identified by the digest berth computes from the archive (its id in the
 * daemon, never a name) and loaded as one untagged image whose layers
 * berth verified from the job's own archive (docker_load). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executor/dockerd/bindstage.h"
#include "executor/dockerd/api.h"
#include "executor/runtime/caps.h"
#include "executor/executor.h"
#include "executor/base/fs.h"
#include "executor/base/process.h"
#include "executor/runtime/mountns.h"

struct dock {
	struct berth_docker *api;
	char container[BERTH_DOCKER_ID_MAX];
	pid_t relay;           /* the process copying stdio over the attach */
	char uid_label[16];
	struct berth_bind_stage stage; /* the checked bind sources, for dockerd */
	char (*staged)[PATH_MAX];
};

static struct dock *dk(struct berth_executor *ex)
{
	return ex->priv;
}

static int docker_prepare(struct berth_executor *ex, struct berth_err *err)
{
	struct dock *d = calloc(1, sizeof(*d));

	if (!d)
		return berth_fail(err, ENOMEM, "executor");
	ex->priv = d;
	d->relay = -1;
	return berth_docker_open(&d->api, ex->cfg->docker_socket, err);
}

static const struct berth_artifact *docker_artifact(struct berth_executor *ex)
{
	(void)ex;
	return &berth_artifact_rootfs; /* unused: images live in the daemon */
}

/* The writer of the archive dockerd reads (a thread: the archive streams
 * through a pipe, written once, never copied to disk). */
struct writer {
	const struct berth_image *img;
	int fd;
	int rc;
	struct berth_err err;
};

static void *writer_main(void *data)
{
	struct writer *w = data;
	sigset_t pipe_sig;

	/* dockerd gone: EPIPE for this thread, not SIGPIPE for the process */
	sigemptyset(&pipe_sig);
	sigaddset(&pipe_sig, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_sig, NULL);
	w->rc = berth_image_write_verified_archive(w->img, w->fd, &w->err);
	close(w->fd);
	return NULL;
}

/* Load into dockerd the one image berth verified, and nothing else: the
 * archive it gets is written here from the verified config and layers,
 * with no RepoTags (image.h), so no name on the node changes and no other
 * image of the user's archive is loaded.  `id` gets the image's id. */
static int load_verified(struct berth_executor *ex, char id[BERTH_DOCKER_ID_MAX],
			 struct berth_err *err)
{
	struct writer w = {.img = &ex->img, .rc = -1};
	struct berth_err load_err = {0};
	pthread_t thread;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return berth_fail(err, errno, "pipe");
	w.fd = p[1];
	int e = pthread_create(&thread, NULL, writer_main, &w);
	if (e != 0) {
		close(p[0]);
		close(p[1]);
		return berth_fail(err, e, "cannot start the image writer");
	}
	int rc = berth_docker_image_load(dk(ex)->api, p[0], id, &load_err);
	close(p[0]); /* a writer still going (dockerd stopped reading) ends */
	pthread_join(thread, NULL);
	if (w.rc < 0) { /* the reason, before whatever dockerd made of the cut */
		*err = w.err;
		return -1;
	}
	if (rc < 0) {
		*err = load_err;
		return -1;
	}
	if (strcmp(id, ex->img.digest) != 0)
		return berth_fail(err, 0, "Docker loaded image %s, not %s that berth "
				  "verified; refusing to run it", id, ex->img.digest);
	return 0;
}

/* Open the archive, compute its digest, and load that one image, its
 * layers verified (load_verified), every time: an image dockerd holds
 * already is not trusted on its config digest alone, or an archive holding
 * only the config of another user's image would run that image's files.
 * The one shortcut: the same file as a load before, unchanged (device,
 * inode, size, mtime, ctime), whose image dockerd still has, is not read
 * again: the memo is in this cache (root's own, when the plugin loads),
 * written only after such a load, and whoever can open that file holds
 * the layers it supplied. */
static int docker_load(struct berth_executor *ex, const char *ref,
		       struct berth_stage_result *res, struct berth_err *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *tag = NULL;
	_cleanup_free_ char *memo = NULL;
	char work[PATH_MAX], id[BERTH_DOCKER_ID_MAX];
	bool present = false;

	/* what stopped or crashed loads left in this cache (root's, for the
	 * plugin): cheap, a look into tmp/ and downloads/ */
	berth_cache_sweep(&ex->cache);
	if (berth_cache_resolve(&ex->cache, ref, &path, &tag, err) < 0)
		return -1;
	/* Memos of loads that sent their layers; "|" is in no image tag, so
	 * older memos (loads skipped on the digest alone) never match. */
	if (asprintf(&memo, "|layers|%s", tag ? tag : "") < 0) {
		memo = NULL;
		return berth_fail(err, ENOMEM, "memo");
	}
	if (berth_cache_ref_lookup(&ex->cache, path, memo, res->digest)) {
		if (berth_docker_image_inspect(dk(ex)->api, res->digest, &present, id, err) < 0)
			return -1;
		if (present) {
			snprintf(ex->digest, sizeof(ex->digest), "%s", res->digest);
			return 0;
		}
	}
	/* A job user's archive (plain_archives_only) is never decompressed
	 * here, as root: it needs no work folder. */
	snprintf(work, sizeof(work), "%s/tmp/docker-XXXXXX", ex->cache.dir);
	if (ex->cache.plain_archives_only)
		work[0] = '\0';
	else if (!mkdtemp(work))
		return berth_fail(err, errno, "cannot create %s", work);
	int rc = berth_image_open(&ex->img, path, tag, work[0] ? work : NULL, err);
	if (rc == 0) {
		ex->img_loaded = true;
		snprintf(res->digest, sizeof(res->digest), "%s", ex->img.digest);
		rc = load_verified(ex, id, err);
	}
	if (rc == 0) {
		res->converted = true;
		snprintf(ex->digest, sizeof(ex->digest), "%s", ex->img.digest);
		berth_cache_ref_remember(&ex->cache, path, memo, ex->img.digest);
	}
	_cleanup_close_ int dir = open(ex->cache.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	berth_image_close_archive(&ex->img);
	if (dir >= 0 && work[0])
		berth_remove_tree(dir, work + strlen(ex->cache.dir) + 1);
	return rc;
}

static int docker_use(struct berth_executor *ex, const char *digest,
		      struct berth_err *err)
{
	char id[BERTH_DOCKER_ID_MAX];
	bool present = false;

	if (ex->img_loaded && !strcmp(ex->digest, digest))
		return 0; /* this executor just loaded (and checked) it */
	if (berth_docker_image_inspect(dk(ex)->api, digest, &present, id, err) < 0)
		return -1;
	if (!present)
		return berth_fail(err, 0, "Docker has no image %s (removed?); run the "
				  "job again to load it", digest);
	snprintf(ex->digest, sizeof(ex->digest), "%s", digest);
	if (ex->img_loaded)
		return 0; /* loaded by this executor: the config is parsed */
	_cleanup_free_ char *config = NULL;
	if (berth_docker_image_config(dk(ex)->api, digest, &config, err) < 0 ||
	    berth_image_parse_config(&ex->img, config, strlen(config), digest, err) < 0)
		return -1;
	ex->img_loaded = true;
	return 0;
}

static bool under_allowed(const struct berth_config *cfg, const char *real)
{
	for (unsigned i = 0; i < cfg->n_docker_allowed_mounts; i++) {
		const char *prefix = cfg->docker_allowed_mounts[i];
		size_t n = strlen(prefix);
		if (!strcmp(prefix, "/") ||
		    (!strncmp(real, prefix, n) && (real[n] == '/' || real[n] == '\0')))
			return true;
	}
	return false;
}

static int refuse_outside(const struct berth_config *cfg, const struct berth_mount *m,
			  struct berth_err *err)
{
	return berth_fail(err, 0, "bind %s: Docker jobs may bind only under "
			  "DockerAllowedMounts (%s%s); ask the administrator", m->src,
			  cfg->n_docker_allowed_mounts ? "" : "none set",
			  cfg->n_docker_allowed_mounts ? cfg->docker_allowed_mounts[0] : "");
}

/* A bind source opened as the user, then checked where it really is:
 * under one of the site's DockerAllowedMounts.  *fd is what gets bound
 * (bindstage.h), so a path swapped after this check changes nothing. */
static int open_bind(struct berth_executor *ex, const struct berth_container_spec *spec,
		     const struct berth_mount *m, int *fd, struct berth_err *err)
{
	const struct berth_config *cfg = ex->cfg;
	struct berth_cred cred = {.uid = spec->uid, .gid = spec->gid,
				  .groups = spec->groups, .n_groups = spec->n_groups};
	char self[64], real[PATH_MAX];
	int why = 0;

	if (m->berth_own) { /* the batch script's spool folder, a CDI spec's
			     * driver file: root's own, site configuration */
		*fd = open(m->src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (*fd < 0 && errno == ENOTDIR)
			*fd = open(m->src, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		return *fd < 0 ? berth_fail(err, errno, "bind source %s", m->src) : 0;
	}
	/* Where the path points now says which refusal to give (the site's
	 * list before the user's permissions); the check that counts is the
	 * one below, on the object opened. */
	_cleanup_free_ char *now = realpath(m->src, NULL);
	if (now && !under_allowed(cfg, now))
		return refuse_outside(cfg, m, err);
	int rc = berth_user_open(&cred, m->src, fd, &why, err);
	if (rc < 0)
		return -1;
	if (rc == 0 && (why == ENOENT || why == ENOTDIR))
		return berth_fail(err, 0, "--container-mounts: source path does not exist: %s",
				  m->src);
	if (rc == 0)
		return berth_fail(err, why, "bind %s: uid %u may not read it", m->src,
				  (unsigned)spec->uid);
	snprintf(self, sizeof(self), "/proc/self/fd/%d", *fd);
	ssize_t n = readlink(self, real, sizeof(real) - 1);
	if (n < 0 || n >= (ssize_t)sizeof(real) - 1 || real[0] != '/')
		rc = berth_fail(err, n < 0 ? errno : 0, "bind %s: where is it?", m->src);
	else
		real[n] = '\0';
	if (rc >= 0 && !under_allowed(cfg, real))
		rc = refuse_outside(cfg, m, err);
	if (rc < 0) {
		close(*fd);
		*fd = -1;
		return -1;
	}
	return 0;
}

/* Every bind source opened and checked, then staged for dockerd; binds[i]
 * gets the staged path of a bind. */
static int stage_binds(struct berth_executor *ex, const struct berth_container_spec *spec,
		       struct berth_docker_bind *binds, char (*paths)[PATH_MAX],
		       struct berth_err *err)
{
	struct dock *d = dk(ex);
	int fds[BERTH_MOUNT_LIST_MAX + 1] = {-1};
	size_t which[BERTH_MOUNT_LIST_MAX + 1], n = 0;
	char label[64];
	int rc = 0;

	for (size_t i = 0; i < spec->n_binds && rc == 0; i++) {
		if (spec->binds[i].kind != BERTH_MOUNT_BIND)
			continue;
		if (n == BERTH_MOUNT_LIST_MAX + 1) {
			rc = berth_fail(err, 0, "more than %d binds", BERTH_MOUNT_LIST_MAX);
			break;
		}
		rc = open_bind(ex, spec, &spec->binds[i], &fds[n], err);
		if (rc == 0)
			which[n++] = i;
	}
	/* label_step is "JOB.STEP" already; the sweep matches "JOB." */
	snprintf(label, sizeof(label), "%s", spec->label_step ? spec->label_step
				       : spec->label_job ? spec->label_job : "0");
	/* CacheDir: the parent of the cache this executor opened */
	char top[PATH_MAX];
	snprintf(top, sizeof(top), "%s", ex->cache_open ? ex->cache.dir : ex->cfg->cache_dir);
	char *slash = ex->cache_open ? strrchr(top, '/') : NULL;
	if (slash && slash != top)
		*slash = '\0';
	if (rc == 0 && n)
		rc = berth_bind_stage_make(&d->stage, top, label, fds, n, paths, err);
	for (size_t j = 0; j < n; j++) {
		if (rc == 0)
			binds[which[j]].src = paths[j];
		close(fds[j]);
	}
	return rc;
}

/* Docker's binds take ro/rw and a propagation, not mount flags; its
 * tmpfs takes them all.  What it cannot do is refused with the reason. */
static int docker_mount(const struct berth_mount *m, struct berth_docker_bind *out,
			char *opts, size_t opts_len, struct berth_err *err)
{
	*out = (struct berth_docker_bind){m->src, m->dst, m->read_only, NULL, NULL};
	if (m->kind == BERTH_MOUNT_TMPFS) {
		/* Docker's own tmpfs default is noexec: say exec unless asked. */
		int n = snprintf(opts, opts_len, "rw,nosuid,nodev,%s,mode=%o",
				 m->flags & BERTH_MNT_NOEXEC ? "noexec" : "exec",
				 m->tmpfs_mode_set ? m->tmpfs_mode : 01777);
		if (m->tmpfs_size)
			n += snprintf(opts + n, opts_len - (size_t)n, ",size=%llu",
				      (unsigned long long)m->tmpfs_size);
		if (m->tmpfs_extra[0])
			snprintf(opts + n, opts_len - (size_t)n, ",%s", m->tmpfs_extra);
		if (berth_runtime_can_mount(BERTH_RT_DOCKER, m, err) < 0)
			return -1;
		out->src = NULL;
		out->tmpfs_options = opts;
		return 0;
	}
	if (berth_runtime_can_mount(BERTH_RT_DOCKER, m, err) < 0)
		return -1;
	if (m->propagation)
		out->propagation = berth_propagation_name(m->propagation);
	return 0;
}

/* Mount points inside other binds, made as the user in the outer bind's
 * host folder before dockerd sees them: runc would make them as root (a
 * root-owned folder in the user's own), and cannot at all inside a
 * read-only bind.  The same place Docker uses, owned by whom it should be. */
static int make_nested_as_user(const struct berth_container_spec *spec, struct berth_err *err)
{
	struct berth_cred cred = {.uid = spec->uid, .gid = spec->gid,
				  .groups = spec->groups, .n_groups = spec->n_groups};
	bool any = false;
	int pipefd[2];

	for (size_t i = 1; i < spec->n_binds; i++)
		any |= berth_mount_parent(spec->binds, i) >= 0;
	if (!any)
		return 0;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return berth_fail(err, errno, "pipe");
	pid_t pid = fork();
	if (pid == 0) {
		struct berth_err e = {0};
		close(pipefd[0]);
		if (berth_drop_privileges(&cred, &e) < 0 ||
		    berth_ns_make_nested(NULL, spec->binds, spec->n_binds, &e) < 0) {
			ssize_t w = write(pipefd[1], e.msg, strlen(e.msg));
			_exit(w < 0 ? 2 : 1);
		}
		_exit(0);
	}
	close(pipefd[1]);
	char msg[sizeof(err->msg)] = "";
	ssize_t got = pid > 0 ? read(pipefd[0], msg, sizeof(msg) - 1) : -1;
	close(pipefd[0]);
	if (pid < 0)
		return berth_fail(err, errno, "fork");
	int code = berth_wait_pid(pid, err);
	if (code == 0)
		return 0;
	msg[got > 0 ? got : 0] = '\0';
	return code < 0 ? -1 : berth_fail(err, 0, "%s", msg[0] ? msg : "cannot make the mount points");
}

static int docker_create(struct berth_executor *ex, const struct berth_container_spec *spec,
			 struct berth_err *err)
{
	struct dock *d = dk(ex);
	_cleanup_free_ struct berth_docker_bind *binds =
		calloc(spec->n_binds + 1, sizeof(*binds));
	_cleanup_free_ char (*opts)[96] = calloc(spec->n_binds + 1, sizeof(*opts));

	if (!binds || !opts)
		return berth_fail(err, ENOMEM, "binds");
	if (spec->uid == 0)
		return berth_fail(err, 0, "berth does not run Docker containers as root");
	if (spec->remap_root && berth_runtime_can_remap_root(BERTH_RT_DOCKER, err) < 0)
		return -1;
	for (size_t i = 0; i < spec->n_binds; i++)
		if (docker_mount(&spec->binds[i], &binds[i], opts[i], sizeof(opts[i]), err) < 0)
			return -1;
	if (!(d->staged = calloc(spec->n_binds + 1, PATH_MAX)))
		return berth_fail(err, ENOMEM, "binds");
	if (make_nested_as_user(spec, err) < 0 || stage_binds(ex, spec, binds, d->staged, err) < 0)
		return -1;
	snprintf(d->uid_label, sizeof(d->uid_label), "%u", (unsigned)spec->uid);
	/* the node's name, as on the host network and on the other runtimes
	 * (Docker would name it after the container's id) */
	char host[HOST_NAME_MAX + 1] = "";
	gethostname(host, sizeof(host) - 1);
	struct berth_docker_create c = {
		.hostname = host[0] ? host : NULL,
		.image = ex->digest, .argv = spec->argv, .env = spec->env,
		.workdir = berth_spec_workdir(ex),
		.uid = spec->uid, .gid = spec->gid,
		.groups = spec->groups, .n_groups = spec->n_groups,
		.binds = binds, .n_binds = spec->n_binds, .devices = spec->devices,
		.network_none = spec->unshare & BERTH_UNSHARE_NET,
		.ipc_private = spec->unshare & BERTH_UNSHARE_IPC, .writable = spec->writable,
		.memory_bytes = spec->memory_bytes, .cpus = spec->cpus,
		.cpuset_cpus = spec->cpuset_cpus, .pids_limit = spec->pids_limit,
		.ulimits = spec->ulimits, .n_ulimits = spec->n_ulimits,
		.cgroup_parent = spec->cgroup_parent,
		.label_job = spec->label_job, .label_step = spec->label_step,
		.label_uid = d->uid_label, .label_node = spec->label_node,
		.open_stdin = true,
	};
	return berth_docker_container_create(d->api, &c, d->container, err);
}

/* Attach before start (no output lost), start, and copy stdio in a child:
 * the caller keeps its own loop for signals and the exit code. */
static int docker_start(struct berth_executor *ex, struct berth_err *err)
{
	const struct berth_container_spec *spec = ex->spec;
	struct dock *d = dk(ex);
	int sock = -1;

	if (berth_docker_attach(d->api, d->container, &sock, err) < 0)
		return -1;
	d->relay = fork();
	if (d->relay < 0) {
		close(sock);
		return berth_fail(err, errno, "fork");
	}
	if (d->relay == 0) {
		struct berth_err ignored;
		int in = spec->stdin_fd >= 0 ? spec->stdin_fd : STDIN_FILENO;
		int out = spec->stdout_fd >= 0 ? spec->stdout_fd : STDOUT_FILENO;
		int errfd = spec->stderr_fd >= 0 ? spec->stderr_fd : STDERR_FILENO;
		signal(SIGPIPE, SIG_IGN);
		_exit(berth_docker_relay(sock, in, out, errfd, &ignored) < 0 ? 1 : 0);
	}
	close(sock);
	if (berth_docker_container_start(d->api, d->container, err) == 0)
		return 0;
	/* The OCI runtime's exec failure, told the way the docker CLI tells
	 * it (cli/command/container/run.go): 127 not found, 126 not
	 * executable. */
	if (strstr(err->msg, "executable file not found") ||
	    strstr(err->msg, "no such file or directory"))
		ex->refused = 127;
	else if (strstr(err->msg, "permission denied") || strstr(err->msg, "is a directory"))
		ex->refused = 126;
	return -1;
}

static int docker_kill(struct berth_executor *ex, int sig, struct berth_err *err)
{
	return berth_docker_container_kill(dk(ex)->api, dk(ex)->container, sig, err);
}

/* Done when the relay has seen the stream close; then the daemon's wait
 * gives the exit code (128+N after signal N, as the shell's). */
static int docker_poll(struct berth_executor *ex, struct berth_err *err)
{
	struct dock *d = dk(ex);
	int code;

	if (d->relay > 0) {
		pid_t pid = waitpid(d->relay, NULL, WNOHANG);
		if (pid == 0)
			return 0;
		d->relay = -1;
	}
	if (berth_docker_container_wait(d->api, d->container, &code, err) < 0)
		return -1;
	ex->exit_code = code;
	return 1;
}

static int docker_remove_image(struct berth_executor *ex, const char *digest,
			       struct berth_err *err)
{
	char id[BERTH_DOCKER_ID_MAX];
	bool present = false;

	if (berth_docker_image_inspect(dk(ex)->api, digest, &present, id, err) < 0)
		return -1;
	if (!present)
		return berth_fail(err, 0, "Docker has no image %s: nothing to remove",
				  digest);
	/* not forced: dockerd keeps an image a container uses (409) */
	if (berth_docker_image_remove(dk(ex)->api, digest, err) == 0)
		return 0;
	if (strstr(err->msg, "HTTP 409") && strstr(err->msg, "container"))
		return berth_fail(err, 0, "image %s is in use (a container of a running job "
				  "or berth run uses it); not removed: try again when it has "
				  "ended", digest);
	return -1;
}

static int docker_image_loaded(struct berth_executor *ex, const char *digest, bool *loaded,
			       struct berth_err *err)
{
	char id[BERTH_DOCKER_ID_MAX];

	return berth_docker_image_inspect(dk(ex)->api, digest, loaded, id, err);
}

/* Remove the container now; keep its id when that fails, so release
 * tries once more. */
static int docker_finish(struct berth_executor *ex, struct berth_err *err)
{
	struct dock *d = dk(ex);

	if (!d || !d->container[0])
		return 0;
	if (berth_docker_container_remove(d->api, d->container, err) < 0)
		return berth_wrap(err, "cannot remove container %.12s", d->container);
	d->container[0] = '\0';
	return 0;
}

/* The container goes with the executor, whatever happened to it. */
static void docker_release(struct berth_executor *ex)
{
	struct dock *d = dk(ex);
	struct berth_err ignored;

	if (!d)
		return;
	if (d->relay > 0) {
		kill(d->relay, SIGKILL);
		waitpid(d->relay, NULL, 0);
	}
	if (d->container[0])
		berth_docker_container_remove(d->api, d->container, &ignored);
	berth_bind_stage_remove(&d->stage); /* after the container: it used them */
	free(d->staged);
	berth_docker_close(d->api);
	free(d);
	ex->priv = NULL;
}

const struct berth_executor_ops berth_docker_ops = {
	.name = "docker",
	.artifact = docker_artifact,
	.prepare = docker_prepare,
	.create = docker_create,
	.release = docker_release,
	.load = docker_load,
	.use = docker_use,
	.start = docker_start,
	.kill = docker_kill,
	.poll = docker_poll,
	.remove_image = docker_remove_image,
	.image_loaded = docker_image_loaded,
	.finish = docker_finish,
};
