/* berth: the slurmstepd side (remote context): prepare the cache as root,
 * stage the image as the user in user_init, launch each task in task_init. */
#define _GNU_SOURCE
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <slurm/slurm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/cache/cache.h"
#include "executor/executor.h"
#include "executor/base/process.h"
#include "executor/source/imageref.h"
#include "spank/berth_spank.h"
#include "spank/pin.h"

#define STAGE_OUTPUT_MAX (64 * 1024)

static void keep_error(const char *fmt, const char *detail)
{
	snprintf(berth.stage_error, sizeof(berth.stage_error), fmt, detail);
}

/* As root, before user_init drops the effective uid: the user's cache
 * folder must exist and be theirs. */
int berth_remote_post_opt(spank_t sp)
{
	struct berth_err err = {0};
	uid_t uid;
	gid_t gid;

	if (spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &gid) != ESPANK_SUCCESS) {
		keep_error("%s", "cannot get the job's uid/gid from Slurm");
		return 0;
	}
	if (berth_cache_prepare_user(berth.cfg.cache_dir, uid, gid, &err) < 0)
		keep_error("%s", err.msg);
	return 0;
}

/* Strip the trailing newline and keep only the last line of `out`. */
static char *last_line(char *out)
{
	size_t len = strlen(out);
	char *nl;

	while (len && out[len - 1] == '\n')
		out[--len] = '\0';
	nl = strrchr(out, '\n');
	return nl ? nl + 1 : out;
}

static bool is_progress(const char *line)
{
	return !strncmp(line, PFX "downloading:", strlen(PFX "downloading:"));
}

/* What srun's user sees while an image is staged: berth's own progress
 * lines as they come, and a line every few seconds of silence. */
static void show_staging(void *ctx, const char *line, unsigned seconds)
{
	static unsigned last_progress;

	(void)ctx;
	if (line && is_progress(line)) {
		/* progress lines come every second: pass one every 5.  Other
		 * lines (an error) reach the user once, from task_init. */
		if (last_progress && seconds - last_progress < 5)
			return;
		last_progress = seconds ? seconds : 1;
		slurm_spank_log("%s", line);
	} else if (!line)
		slurm_spank_log(PFX "still preparing %s for %s (%us)", berth_image_shown(),
				berth_runtime_name(berth.runtime), seconds);
}

/* Drop the progress lines from a stager's output, in place: they were
 * shown while it ran, and an error message repeating them buries the
 * reason. */
static void drop_progress_lines(char *out)
{
	char *to = out;

	for (char *line = out; *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
		if (!is_progress(line)) {
			memmove(to, line, len);
			to += len;
		}
		line += len;
	}
	*to = '\0';
}

/* A stager that was stopped left its build folder behind (its lock is
 * free now): the same user removes it at once, not at their next job. */
static void sweep_after_stop(const struct berth_cred *cred, char **envp)
{
	char *argv[] = {berth.cfg.launcher_path, "cache", "sweep", "--cache-dir",
			berth.cfg.cache_dir, NULL};
	_cleanup_free_ char *out = NULL;
	struct berth_err err = {0};
	int status = -1;
	struct berth_spawn spawn = {
		.argv = argv, .envp = envp, .cred = cred, .cwd = "/", .stdin_fd = -1,
		.stderr_fd = -1, .capture_stdout = &out, .capture_max = 4096,
		.stderr_to_capture = true, .timeout_s = 60,
	};
	if (berth_spawn_run(&spawn, &status, &err) < 0 || status != 0)
		slurm_error(PFX "removing a stopped staging's leftovers failed: %s",
			    err.msg[0] ? err.msg : out ? out : "?");
}

/* Run one berth command for staging and return its last output line
 * (malloc'd in *line_out's owner `out`).  Errors are kept for task_init.
 * It is stopped at StageTimeout, or as soon as the job has ended. */
static int run_stager(spank_t sp, char **argv, const struct berth_cred *cred,
		      int stdin_fd, char **out, char **line_out)
{
	char cwd[PATH_MAX] = "/";
	/* The site's settings travel along: plugstack arguments are not in
	 * berth.conf, and the stager must not read the user's environment. */
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", berth_config_env(), NULL};
	struct berth_err err = {0};
	struct berth_stage_watch watch = {.cred = cred};
	int status;

	/* squeue as the job user, even for the root-side loader */
	if (spank_get_item(sp, S_JOB_ID, &watch.job) != ESPANK_SUCCESS)
		watch.job = 0;
	struct berth_cred user = {0};
	if (cred->uid == 0 && spank_get_item(sp, S_JOB_UID, &user.uid) == ESPANK_SUCCESS &&
	    spank_get_item(sp, S_JOB_GID, &user.gid) == ESPANK_SUCCESS)
		watch.cred = &user;
	/* A relative image path means relative to where the job was submitted. */
	berth_job_cwd(sp, cwd, sizeof(cwd));
	struct berth_spawn spawn = {
		.argv = argv, .envp = envp, .cred = cred, .cwd = cwd,
		.stdin_fd = stdin_fd, .stderr_fd = -1,
		.capture_stdout = out, .capture_max = STAGE_OUTPUT_MAX,
		.stderr_to_capture = true, .on_output = show_staging,
		.timeout_s = berth.cfg.stage_timeout,
		.should_stop = berth_stage_watch_check, .stop_ctx = &watch,
	};
	if (berth_spawn_run(&spawn, &status, &err) < 0) {
		if (watch.reason[0] || strstr(err.msg, " stopped: ")) {
			/* for the admin too: a batch job's output may go nowhere */
			slurm_info(PFX "job %u: %s", watch.job, err.msg);
			sweep_after_stop(cred, envp);
			if (!watch.reason[0])
				snprintf(err.msg + strlen(err.msg), sizeof(err.msg) - strlen(err.msg),
					 " (StageTimeout=%u: the site can raise it)",
					 berth.cfg.stage_timeout);
		}
		keep_error("cannot stage the image: %s", err.msg);
		return -1;
	}
	drop_progress_lines(*out);
	*line_out = last_line(*out);
	if (status != 0) {
		/* The command already said "berth: ...": say it once. */
		const char *msg = *out;
		if (!strncmp(msg, PFX, strlen(PFX)))
			msg += strlen(PFX);
		keep_error("%s", *msg ? msg : "image staging failed");
		return -1;
	}
	return 0;
}

static int keep_digest(spank_t sp, const char *line)
{
	static const char as_is[] = " as-is";
	size_t len = strlen(line);

	/* A SIF or SquashFS file the user gave: run as it is, from its path. */
	if (len > strlen(as_is) && !strcmp(line + len - strlen(as_is), as_is)) {
		char cwd[PATH_MAX];
		int n = (int)(len - strlen(as_is));
		berth_job_cwd(sp, cwd, sizeof(cwd));
		int rc = line[0] == '/' ? asprintf(&berth.raw_image, "%.*s", n, line)
					: asprintf(&berth.raw_image, "%s/%.*s", cwd, n, line);
		if (rc < 0) {
			berth.raw_image = NULL;
			keep_error("%s", "out of memory");
			return -1;
		}
		slurm_verbose(PFX "image %s runs as it is", berth.raw_image);
		return 0;
	}
	if (strncmp(line, "sha256:", 7) != 0 || len < 72 || line[71] != ' ') {
		keep_error("unexpected output from the image stager: %s", line);
		return -1;
	}
	snprintf(berth.digest, sizeof(berth.digest), "%.71s", line);
	slurm_verbose(PFX "image %s ready (%s)", berth.digest, line + 72);
	return 0;
}

/* The stager reads the image on stdin (--image-stdin): its command line is
 * readable by every user on the node, and a URL may hold a password or a
 * signature. */
static int run_image_stager(spank_t sp, char **argv, const struct berth_cred *cred,
			    const char *image, char **out, char **line_out)
{
	struct berth_err err = {0};
	_cleanup_close_ int in = berth_image_stdin(image, &err);

	if (in < 0) {
		keep_error("cannot stage the image: %s", err.msg);
		return -1;
	}
	return run_stager(sp, argv, cred, in, out, line_out);
}

/* A damaged cache entry the stager rebuilt: srun's user hears of it. */
static void show_rebuilt(const char *out)
{
	static const char said[] = PFX "the cached copy of ";

	for (const char *line = out; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (!strncmp(line, said, strlen(said)))
			slurm_spank_log("%.*s", (int)strcspn(line, "\n"), line);
}

static int stage_as_user(spank_t sp, const struct berth_cred *cred)
{
	char pinned[BERTH_PIN_ENTRY_MAX], url_pin[BERTH_PIN_ENTRY_MAX];
	const char *image = berth_pinned_image(sp, pinned, sizeof(pinned), url_pin, sizeof(url_pin));
	char *argv[] = {berth.cfg.launcher_path, "pull", "--runtime",
			(char *)berth_runtime_name(berth.runtime), "--cache-dir",
			berth.cfg.cache_dir, "--singularity", berth.cfg.singularity_path,
			"--singularity-format", (char *)berth_sing_format_name(berth.cfg.sing_format),
			"--image-stdin", url_pin[0] ? "--pin" : NULL, url_pin, NULL};
	_cleanup_free_ char *out = NULL;
	char *line;

	if (run_image_stager(sp, argv, cred, image, &out, &line) < 0)
		return -1;
	show_rebuilt(out);
	return keep_digest(sp, line);
}

/* Open the archive for `berth docker load` in a child that is the job user
 * through and through (never slurmstepd itself: /proc/self/fd would be its
 * descriptors, and a FIFO would hold it past scancel), without blocking,
 * and accept only a regular file. */
static int open_as_user(const struct berth_cred *user, const char *path, const char *abs,
			int *fd)
{
	struct berth_err err = {0};
	struct stat st = {0};
	char msg[PATH_MAX + 160];
	int why = 0;
	int rc = berth_user_open(user, abs, fd, &why, &err);

	if (rc < 0) {
		keep_error("cannot read the image: %s", err.msg);
		return -1;
	}
	if (rc == 0) {
		snprintf(msg, sizeof(msg), "%s: %s", path, strerror(why));
		keep_error("cannot read the image %s", msg);
		return -1;
	}
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, sizeof(msg), "%s is not a regular file (%s): give a docker-save "
			 "archive (docker save IMAGE -o FILE.tar)", path,
			 berth_file_kind(st.st_mode));
		keep_error("%s", msg);
		return -1;
	}
	return 0;
}

/* Docker: the job user fetches (a URL) and opens the archive, so only what
 * the user may read can be loaded; root-side `berth docker load` reads it
 * from that descriptor and talks to dockerd. */
static int stage_docker(spank_t sp, const struct berth_cred *user)
{
	static const struct berth_cred root = {.uid = 0, .gid = 0};
	_cleanup_free_ char *out = NULL;
	_cleanup_free_ char *out2 = NULL;
	_cleanup_free_ char *path = NULL;
	char *line, *tag = NULL, cwd[PATH_MAX] = "/";
	char pinned[BERTH_PIN_ENTRY_MAX], url_pin[BERTH_PIN_ENTRY_MAX];
	const char *image = berth_pinned_image(sp, pinned, sizeof(pinned), url_pin, sizeof(url_pin));

	char *fetch[] = {berth.cfg.launcher_path, "fetch", "--cache-dir", berth.cfg.cache_dir,
			 "--image-stdin", url_pin[0] ? "--pin" : NULL, url_pin, NULL};
	if (run_image_stager(sp, fetch, user, image, &out, &line) < 0)
		return -1;
	if (!(path = strdup(line)))
		return -1;
	if ((tag = strrchr(path, '#')))
		*tag++ = '\0';
	berth_job_cwd(sp, cwd, sizeof(cwd));
	_cleanup_free_ char *abs = NULL;
	if (path[0] != '/' && asprintf(&abs, "%s/%s", cwd, path) < 0)
		return -1;
	_cleanup_close_ int fd = -1;
	if (open_as_user(user, path, abs ? abs : path, &fd) < 0)
		return -1;
	char *load[] = {berth.cfg.launcher_path, "docker", "load", "--socket",
			berth.cfg.docker_socket, "--cache-dir", berth.cfg.cache_dir,
			"--name", path, tag ? "--tag" : NULL, tag, NULL};
	if (run_stager(sp, load, &root, fd, &out2, &line) < 0)
		return -1;
	if (strncmp(line, "sha256:", 7) != 0) { /* docker loads archives only */
		keep_error("unexpected output from the Docker loader: %s", line);
		return -1;
	}
	return keep_digest(sp, line);
}

int berth_remote_user_init(spank_t sp)
{
	struct berth_cred cred = {0};
	gid_t *groups = NULL;
	int n_groups = 0;

	if (berth.stage_error[0])
		return 0; /* reported from task_init, where srun's user sees it */
	if (spank_get_item(sp, S_JOB_UID, &cred.uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &cred.gid) != ESPANK_SUCCESS) {
		keep_error("%s", "cannot get the job's uid/gid from Slurm");
		return 0;
	}
	if (spank_get_item(sp, S_JOB_SUPPLEMENTARY_GIDS, &groups, &n_groups) == ESPANK_SUCCESS &&
	    n_groups > 0) {
		cred.groups = groups;
		cred.n_groups = (size_t)n_groups;
	}
	/* A named container without an image runs the one it was made from:
	 * the launcher finds it in the container's record. */
	int rc = !berth.image ? 0
		 : berth.runtime == BERTH_RT_DOCKER ? stage_docker(sp, &cred)
						    : stage_as_user(sp, &cred);
	if (rc == 0)
		berth.staged = true;
	return 0;
}

/* The launcher's command line: settings the user cannot change travel as
 * options (the launcher reads no configuration), then the task's argv. */
/* Where named containers live: per job, or per user (ContainerScope). */
static void name_scope(spank_t sp, char *scope, size_t len)
{
	uint32_t job = 0;

	spank_get_item(sp, S_JOB_ID, &job);
	if (berth.cfg.container_scope_user)
		snprintf(scope, len, "user");
	else
		snprintf(scope, len, "job-%u", job);
}

static char **launcher_argv(spank_t sp, int job_argc, char **job_argv, bool batch,
			    size_t *n_prefix)
{
	static char scope[32];
	/* every option below at once is 42 words, the command and NULL apart */
	size_t cap = (size_t)job_argc + 52 + 2 * berth.n_mounts;
	char **argv = calloc(cap, sizeof(char *));
	size_t n = 0;

	if (!argv)
		return NULL;
	argv[n++] = berth.cfg.launcher_path;
	argv[n++] = "launch";
	argv[n++] = "--runtime";
	argv[n++] = (char *)berth_runtime_name(berth.runtime);
	argv[n++] = "--cache-dir";
	argv[n++] = berth.cfg.cache_dir;
	argv[n++] = "--ch-run";
	argv[n++] = berth.cfg.chrun_path;
	argv[n++] = "--singularity";
	argv[n++] = berth.cfg.singularity_path;
	argv[n++] = "--singularity-format";
	argv[n++] = (char *)berth_sing_format_name(berth.cfg.sing_format);
	argv[n++] = "--image-storage";
	argv[n++] = (char *)berth_image_storage_name(berth.cfg.image_storage);
	argv[n++] = "--squashfuse";
	argv[n++] = berth.cfg.squashfuse_path;
	if (berth.raw_image || berth.digest[0]) {
		argv[n++] = berth.raw_image ? "--image" : "--digest";
		argv[n++] = berth.raw_image ? berth.raw_image : berth.digest;
	}
	if (berth.container_name || berth.save) {
		name_scope(sp, scope, sizeof(scope));
		argv[n++] = "--name-scope";
		argv[n++] = scope;
		if (berth.writable == BERTH_NO)
			argv[n++] = "--readonly";
	}
	if (berth.container_name) {
		argv[n++] = "--name";
		argv[n++] = berth.container_name;
	}
	if (berth.save) {
		argv[n++] = "--save";
		argv[n++] = berth.save;
	}
	bool home = berth.mount_home == BERTH_UNSET ? berth.cfg.mount_home
						    : berth.mount_home == BERTH_YES;
	if (home)
		argv[n++] = "--mount-home";
	if (berth.writable == BERTH_YES)
		argv[n++] = "--writable";
	if (berth.entrypoint == BERTH_YES)
		argv[n++] = "--entrypoint";
	if (berth.verbose == BERTH_YES)
		argv[n++] = "--verbose";
	if (berth.entrypoint_log == BERTH_YES)
		argv[n++] = "--entrypoint-log";
	if (berth.remap_root == BERTH_YES)
		argv[n++] = "--remap-root";
	if (berth.unshare) {
		argv[n++] = "--unshare";
		argv[n++] = berth.unshare;
	}
	if (berth.workdir) {
		argv[n++] = "--workdir";
		argv[n++] = berth.workdir;
	}
	/* the step's GPUs come from its environment; these are checked */
	argv[n++] = "--cdi-dirs";
	argv[n++] = berth.cfg.cdi_spec_dirs;
	if (berth.devices) {
		argv[n++] = "--devices";
		argv[n++] = berth.devices;
	}
	if (berth.env_names) {
		argv[n++] = "--env-keep";
		argv[n++] = berth.env_names;
	}
	if (berth.mounts) {
		argv[n++] = "--mounts";
		argv[n++] = berth.mounts;
	}
	if (batch && job_argc > 0) {
		argv[n++] = "--batch-script";
		argv[n++] = job_argv[0];
	}
	argv[n++] = "--";
	*n_prefix = n;
	for (int i = 0; i < job_argc; i++)
		argv[n++] = job_argv[i];
	argv[n] = NULL;
	return argv;
}

/* ---- docker: the root-side monitor of each task -------------------------- */

static void add_num(struct berth_strv *v, const char *opt, unsigned long long n)
{
	berth_strv_add(v, opt, NULL);
	berth_strv_addf(v, NULL, "%llu", n);
}

/* task_init_privileged, as root in the task's process: start the monitor
 * (it inherits the task's stdio) and keep our end of its control socket
 * for the launcher the task becomes. */
int berth_remote_task_privileged(spank_t sp)
{
	uid_t uid;
	gid_t gid, *groups = NULL;
	int n_groups = 0, job_argc, sv[2];
	uint32_t job = 0, step = 0;
	uint64_t mem_mb = 0;
	uint32_t cpus = 0, local_tasks = 0;
	char **job_argv, **job_env;
	struct berth_strv argv = {0};
	struct berth_err err = {0};

	if (berth.runtime != BERTH_RT_DOCKER || !berth.staged)
		return 0;
	if (spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &gid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_ARGV, &job_argc, &job_argv) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_ENV, &job_env) != ESPANK_SUCCESS) {
		keep_error("%s", "cannot get the task from Slurm");
		berth.staged = false;
		return 0;
	}
	spank_get_item(sp, S_JOB_SUPPLEMENTARY_GIDS, &groups, &n_groups);
	spank_get_item(sp, S_JOB_ID, &job);
	spank_get_item(sp, S_JOB_STEPID, &step);
	/* The step's memory, else the job's on this node (batch steps). */
	if (spank_get_item(sp, S_STEP_ALLOC_MEM, &mem_mb) != ESPANK_SUCCESS || !mem_mb)
		spank_get_item(sp, S_JOB_ALLOC_MEM, &mem_mb);
	spank_get_item(sp, S_STEP_CPUS_PER_TASK, &cpus);
	spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &local_tasks);
	(void)job_env; /* the launcher sends the final one, SLURM_PROCID & co. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		keep_error("%s", "cannot set up the Docker monitor (socketpair)");
		berth.staged = false;
		return 0;
	}
	berth_strv_add(&argv, berth.cfg.launcher_path, NULL);
	berth_strv_add(&argv, "docker", NULL);
	berth_strv_add(&argv, "monitor", NULL);
	berth_strv_add(&argv, "--socket", NULL);
	berth_strv_add(&argv, berth.cfg.docker_socket, NULL);
	berth_strv_add(&argv, "--cache-dir", NULL);
	berth_strv_add(&argv, berth.cfg.cache_dir, NULL);
	berth_strv_add(&argv, "--digest", NULL);
	berth_strv_add(&argv, berth.digest, NULL);
	berth_strv_add(&argv, "--user", NULL);
	berth_strv_addf(&argv, NULL, "%u:%u", (unsigned)uid, (unsigned)gid);
	if (n_groups > 0) {
		char list[4096] = "";
		for (int i = 0; i < n_groups; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%u",
				 i ? "," : "", (unsigned)groups[i]);
		berth_strv_add(&argv, "--groups", NULL);
		berth_strv_add(&argv, list, NULL);
	}
	add_num(&argv, "--job", job);
	add_num(&argv, "--step", step);
	add_num(&argv, "--control-fd", (unsigned long long)sv[0]);
	if (berth.cfg.n_docker_allowed_mounts) {
		char list[8192] = "";
		for (unsigned i = 0; i < berth.cfg.n_docker_allowed_mounts; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 i ? "," : "", berth.cfg.docker_allowed_mounts[i]);
		berth_strv_add(&argv, "--allowed-mounts", NULL);
		berth_strv_add(&argv, list, NULL);
	}
	if (step == SLURM_BATCH_SCRIPT && job_argc > 0) {
		berth_strv_add(&argv, "--batch-script", NULL);
		berth_strv_add(&argv, job_argv[0], NULL);
	}
	/* Each container gets its task's share of the step's memory here, so
	 * that the step's containers together stay within it: dockerd puts
	 * them in its own cgroups (/docker/ID with the cgroupfs driver), not
	 * in the step's, where Slurm's limit would hold them.  Not
	 * CgroupParent=<the step's cgroup>: that path is Slurm's layout of
	 * cgroup v1 (slurm_<node>/uid_U/job_J/step_S in every controller),
	 * runc would create it in controllers Slurm does not use and leave it
	 * there, and a container still alive at the step's end keeps Slurm
	 * from removing the step's cgroup.  Under cgroup v2 with dockerd's
	 * systemd driver a parent must be a systemd slice, which Slurm's
	 * step is not (it is inside slurmstepd's scope), so the share is the
	 * one way that holds under both.  The cost: one task cannot borrow
	 * memory another leaves unused. */
	if (mem_mb)
		add_num(&argv, "--memory",
			((unsigned long long)mem_mb << 20) / (local_tasks ? local_tasks : 1));
	if (berth.cfg.docker_pids_limit)
		add_num(&argv, "--pids-limit", berth.cfg.docker_pids_limit);
	if (cpus)
		add_num(&argv, "--cpus", cpus);
	if (berth.mounts) {
		berth_strv_add(&argv, "--mounts", NULL);
		berth_strv_add(&argv, berth.mounts, NULL);
	}
	if (berth.workdir) {
		berth_strv_add(&argv, "--workdir", NULL);
		berth_strv_add(&argv, berth.workdir, NULL);
	}
	/* CDI: the monitor lets only the nodes its device cgroup allows */
	berth_strv_add(&argv, "--cdi-dirs", NULL);
	berth_strv_add(&argv, berth.cfg.cdi_spec_dirs, NULL);
	if (berth.devices) {
		berth_strv_add(&argv, "--devices", NULL);
		berth_strv_add(&argv, berth.devices, NULL);
	}
	if (berth.env_names) {
		berth_strv_add(&argv, "--env-keep", NULL);
		berth_strv_add(&argv, berth.env_names, NULL);
	}
	if (berth.entrypoint == BERTH_YES)
		berth_strv_add(&argv, "--entrypoint", NULL);
	if (berth.entrypoint_log == BERTH_YES)
		berth_strv_add(&argv, "--entrypoint-log", NULL);
	if (berth.writable == BERTH_YES)
		berth_strv_add(&argv, "--writable", NULL);
	if (berth.unshare) {
		berth_strv_add(&argv, "--unshare", NULL);
		berth_strv_add(&argv, berth.unshare, NULL);
	}
	berth_strv_add(&argv, "--", NULL);
	for (int i = 0; i < job_argc; i++)
		berth_strv_add(&argv, job_argv[i], NULL);
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", NULL};
	const int keep[] = {sv[0]};
	struct berth_spawn spawn = {
		.argv = argv.v, .envp = envp, .stdin_fd = STDIN_FILENO, .stderr_fd = -1,
		.keep_fds = keep, .n_keep_fds = 1,
	};
	pid_t pid = argv.v ? berth_spawn_start(&spawn, &err) : -1;
	berth_strv_free(argv.v);
	close(sv[0]);
	if (pid < 0) {
		close(sv[1]);
		keep_error("cannot start the Docker monitor: %s", err.msg);
		berth.staged = false;
		return 0;
	}
	fcntl(sv[1], F_SETFD, 0); /* the launcher inherits it */
	berth.control_fd = sv[1];
	return 0;
}

/* Run `berth docker sweep` as root for a job (and step, when given). */
static void docker_sweep(uint32_t job, const uint32_t *step)
{
	char job_s[16], step_s[16];
	struct berth_err err = {0};

	snprintf(job_s, sizeof(job_s), "%u", job);
	snprintf(step_s, sizeof(step_s), "%u", step ? *step : 0);
	char *argv[] = {berth.cfg.launcher_path, "docker", "sweep", "--socket",
			berth.cfg.docker_socket, "--cache-dir", berth.cfg.cache_dir, "--job", job_s,
			step ? "--step" : NULL, step_s, NULL};
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
	static const struct berth_cred root = {.uid = 0, .gid = 0};
	_cleanup_free_ char *out = NULL;
	int status = -1;
	struct berth_spawn spawn = {.argv = argv, .envp = envp, .cred = &root,
				    .stdin_fd = -1, .stderr_fd = -1,
				    .capture_stdout = &out, .capture_max = 65536,
				    .stderr_to_capture = true};
	if (berth_spawn_run(&spawn, &status, &err) < 0 || status != 0)
		slurm_error(PFX "sweeping the Docker containers of job %s failed: %s",
			    job_s, err.msg[0] ? err.msg : out ? out : "?");
	else
		slurm_verbose(PFX "%s", last_line(out));
}

/* Remove what the step left in dockerd (the monitor may have been killed
 * with the step's processes). */
int berth_remote_exit(spank_t sp)
{
	uint32_t job = 0, step = 0;

	if (berth.runtime != BERTH_RT_DOCKER || !berth.image)
		return 0;
	spank_get_item(sp, S_JOB_ID, &job);
	spank_get_item(sp, S_JOB_STEPID, &step);
	docker_sweep(job, &step);
	return 0;
}

/* The job epilog: every container of the job, if the site runs Docker. */
int berth_docker_sweep_job(spank_t sp)
{
	uint32_t job = 0;
	const char *env = getenv("SLURM_JOB_ID");

	if (!(berth.cfg.allowed_runtimes & (1u << BERTH_RT_DOCKER)))
		return 0;
	/* The epilog's environment names the job where the item is missing. */
	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS || job == 0)
		job = env ? (uint32_t)strtoul(env, NULL, 10) : 0;
	if (job == 0) {
		slurm_error(PFX "job epilog: no job id; Docker containers not swept");
		return 0;
	}
	docker_sweep(job, NULL);
	return 0;
}

/* The job epilog: a job's named containers end with it (ContainerScope=job),
 * removed by `berth rm` run as the job's user, on every node the job had. */
int berth_named_sweep_job(spank_t sp)
{
	uint32_t job = 0;
	uid_t uid = 0;
	const char *env_job = getenv("SLURM_JOB_ID"), *env_uid = getenv("SLURM_JOB_UID");
	char scope[32], top[PATH_MAX + 32];
	struct berth_err err = {0};

	if (berth.cfg.container_scope_user)
		return 0;
	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS || job == 0)
		job = env_job ? (uint32_t)strtoul(env_job, NULL, 10) : 0;
	if (spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS || uid == 0)
		uid = env_uid ? (uid_t)strtoul(env_uid, NULL, 10) : 0;
	snprintf(top, sizeof(top), "%s/%u/containers/job-%u", berth.cfg.cache_dir, (unsigned)uid,
		 job);
	if (job == 0 || uid == 0 || access(top, F_OK) < 0)
		return 0; /* nothing named in this job here */
	struct passwd *pw = getpwuid(uid);
	struct berth_cred cred = {.uid = uid, .gid = pw ? pw->pw_gid : (gid_t)uid};
	snprintf(scope, sizeof(scope), "job-%u", job);
	char *argv[] = {berth.cfg.launcher_path, "rm", "--cache-dir", berth.cfg.cache_dir,
			"--scope", scope, "--all", NULL};
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", berth_config_env(), NULL};
	_cleanup_free_ char *out = NULL;
	int status = -1;
	struct berth_spawn spawn = {.argv = argv, .envp = envp, .cred = &cred, .cwd = "/",
				    .stdin_fd = -1, .stderr_fd = -1, .capture_stdout = &out,
				    .capture_max = 65536, .stderr_to_capture = true};
	if (berth_spawn_run(&spawn, &status, &err) < 0 || status != 0)
		slurm_error(PFX "removing the named containers of job %u failed: %s", job,
			    err.msg[0] ? err.msg : out ? out : "?");
	return 0;
}

/* Slurm hands --container-image to the task twice over: a batch job gets
 * sbatch's options back as SLURM_SPANK_<option variable>.  A URL with a
 * password or a signature leaves the task's environment (Slurm's own
 * records of the job keep it: README, privilege model). */
static void drop_secret_image_env(spank_t sp)
{
	char shown[BERTH_IMAGE_MAX + 1];

	if (!berth.image || !berth_url_masked(berth.image, shown, sizeof(shown)))
		return;
	spank_unsetenv(sp, "SLURM_SPANK__SLURM_SPANK_OPTION_berth_container_image");
	spank_unsetenv(sp, "_SLURM_SPANK_OPTION_berth_container_image");
}

int berth_remote_task_init(spank_t sp)
{
	char **job_argv, **job_env;
	int job_argc;
	uint32_t step_id = 0;

	drop_secret_image_env(sp);

	if (!berth.staged) {
		fprintf(stderr, PFX "%s\n",
			berth.stage_error[0] ? berth.stage_error : "the image was not staged");
		/* This is the task's own process: end it with berth's status,
		 * which a workflow engine tells from the command's (a failed
		 * task_init gives Slurm's generic 1). */
		fflush(stderr);
		_exit(BERTH_EXIT_BERTH);
	}
	if (spank_get_item(sp, S_JOB_ARGV, &job_argc, &job_argv) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_ENV, &job_env) != ESPANK_SUCCESS) {
		fprintf(stderr, PFX "cannot get the task's argv/environment from Slurm\n");
		return -1;
	}
	spank_get_item(sp, S_JOB_STEPID, &step_id);
	char fd[16];
	snprintf(fd, sizeof(fd), "%d", berth.control_fd);
	/* --cdi-dirs: which GPUs are this task's is read in its own device
	 * cgroup (cli/launch.c) */
	char *relay[] = {berth.cfg.launcher_path, "launch", "--runtime", "docker",
			 "--cdi-dirs", berth.cfg.cdi_spec_dirs, "--control-fd", fd, "--", NULL};
	size_t n_prefix = 8;
	_cleanup_free_ char **argv = berth.runtime == BERTH_RT_DOCKER
		? NULL : launcher_argv(sp, job_argc, job_argv, step_id == SLURM_BATCH_SCRIPT, &n_prefix);
	char **run = berth.runtime == BERTH_RT_DOCKER ? relay : argv;
	if (!run)
		return -1;
#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 11, 0)
	/* Slurm runs the launcher in front of the task's argv itself, after
	 * its own set-up (TMPDIR, TaskProlog, rlimits). */
	if (spank_prepend_task_argv(sp, (int)n_prefix, (const char **)run) == ESPANK_SUCCESS)
		return 0;
	fprintf(stderr, PFX "spank_prepend_task_argv failed\n");
	return -1;
#else
	/* Slurm 22.05 has no spank_prepend_task_argv(): become the launcher. */
	(void)n_prefix;
	execve(run[0], run, job_env);
	fprintf(stderr, PFX "cannot run the launcher %s (LauncherPath): %s\n",
		run[0], strerror(errno));
	return -1;
#endif
}
