/* berth launch: the per-task launcher.
 *
 * The plugin's task_init execs this as the job user (Slurm 22.05 has no
 * spank_prepend_task_argv).  It does what slurmstepd would still have done
 * after task_init (create TMPDIR, apply SLURM_RLIMIT_*), then hands the
 * task to the executor, which replaces this process with the container:
 * the task's pid, signals, stdio and exit code are the container's.  The
 * image's cache lock is held shared across that exec, so gc cannot evict an
 * image a task runs from. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/executor.h"
#include "executor/runtime/cdi.h"
#include "executor/runtime/named.h"
#include "executor/runtime/save.h"
#include "executor/base/process.h"
#include "cli/cli.h"

extern char **environ;

#define BATCH_DIR "/.berth/batch" /* every cached rootfs has this mount point */

struct launch {
	int control_fd;        /* docker: the root-side monitor's socket */
	const char *runtime;
	const char *cache_dir;
	const char *digest;
	const char *raw_image;  /* a user's SIF/SquashFS file, run as it is */
	const char *batch_script;
	const char *workdir;
	const char *mounts;    /* --container-mounts, checked by the plugin */
	char *env_keep;        /* NAME,NAME: the job's value wins */
	bool mount_home, writable, entrypoint, entrypoint_log, verbose, remap_root;
	unsigned unshare;       /* --unshare net,ipc,uts (BERTH_UNSHARE_*) */
	const char *name;       /* --container-name=NAME[:MODE] */
	const char *name_scope; /* "job-<id>" or "user" */
	bool readonly;          /* --container-readonly (a named one is writable) */
	const char *save;       /* --container-save: write the container here */
	const char *devices;    /* --container-devices, checked by the plugin */
	const char *cdi_dirs;   /* CdiSpecDirs */
	char **argv;
};

static const char launch_usage[] =
	"usage: berth launch --runtime R --cache-dir DIR (--digest sha256:HEX | --image FILE)\n"
	"                    [--ch-run PATH] [--singularity PATH]\n"
	"                    [--singularity-format auto|sif|sandbox]\n"
	"                    [--image-storage tree|squashfs|auto] [--squashfuse PATH]\n"
	"                    [--batch-script PATH] [--mount-home] [--writable]\n"
	"                    [--entrypoint [--entrypoint-log]] [--verbose] [--workdir DIR]\n"
	"                    [--env-keep NAME,...] [--remap-root] [--unshare net,ipc,uts]\n"
	"                    [--name NAME[:MODE] --name-scope job-ID|user [--readonly]]\n"
	"                    [--save PATH --name-scope job-ID|user]\n"
	"                    [--devices CDI-NAME,...] [--cdi-dirs DIR,...]\n"
	"                    [--mounts SRC:DST[:ro|rw],...] -- CMD [ARG...]\n";

static int parse_launch(int argc, char **argv, struct launch *l, struct berth_config *cfg)
{
	static const struct option opts[] = {
		{"runtime", required_argument, NULL, 'r'},
		{"cache-dir", required_argument, NULL, 'c'},
		{"ch-run", required_argument, NULL, 'x'},
		{"singularity", required_argument, NULL, 's'},
		{"digest", required_argument, NULL, 'd'},
		{"image", required_argument, NULL, 'i'},
		{"singularity-format", required_argument, NULL, 'f'},
		{"batch-script", required_argument, NULL, 'b'},
		{"mount-home", no_argument, NULL, 'h'},
		{"writable", no_argument, NULL, 'W'},
		{"entrypoint", no_argument, NULL, 'E'},
		{"entrypoint-log", no_argument, NULL, 'L'},
		{"workdir", required_argument, NULL, 'w'},
		{"env-keep", required_argument, NULL, 'k'},
		{"mounts", required_argument, NULL, 'm'},
		{"control-fd", required_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},
		{"remap-root", no_argument, NULL, 'R'},
		{"name", required_argument, NULL, 'N'},
		{"name-scope", required_argument, NULL, 'S'},
		{"readonly", no_argument, NULL, 'O'},
		{"save", required_argument, NULL, 'A'},
		{"unshare", required_argument, NULL, 'U'},
		{"devices", required_argument, NULL, 'D'},
		{"cdi-dirs", required_argument, NULL, 'I'},
		{"image-storage", required_argument, NULL, 'T'},
		{"squashfuse", required_argument, NULL, 'F'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'r': l->runtime = optarg; break;
		case 'c': l->cache_dir = optarg; break;
		case 'x': snprintf(cfg->chrun_path, sizeof(cfg->chrun_path), "%s", optarg); break;
		case 's': snprintf(cfg->singularity_path, sizeof(cfg->singularity_path), "%s", optarg); break;
		case 'd': l->digest = optarg; break;
		case 'i': l->raw_image = optarg; break;
		case 'f':
			if (berth_sing_format_parse(optarg, &cfg->sing_format) < 0)
				return -1;
			break;
		case 'T':
			if (berth_image_storage_parse(optarg, &cfg->image_storage) < 0)
				return -1;
			break;
		case 'F': snprintf(cfg->squashfuse_path, sizeof(cfg->squashfuse_path), "%s", optarg); break;
		case 'b': l->batch_script = optarg; break;
		case 'h': l->mount_home = true; break;
		case 'W': l->writable = true; break;
		case 'E': l->entrypoint = true; break;
		case 'L': l->entrypoint_log = true; break;
		case 'v': l->verbose = true; break;
		case 'R': l->remap_root = true; break;
		case 'N': l->name = optarg; break;
		case 'S': l->name_scope = optarg; break;
		case 'O': l->readonly = true; break;
		case 'A': l->save = optarg; break;
		case 'U':
			if (berth_unshare_parse(optarg, "--unshare", &l->unshare, NULL) < 0)
				return -1;
			break;
		case 'D': l->devices = optarg; break;
		case 'I': l->cdi_dirs = optarg; break;
		case 'w': l->workdir = optarg; break;
		case 'k': l->env_keep = optarg; break;
		case 'm': l->mounts = optarg; break;
		case 'C': l->control_fd = cli_parse_fd(optarg); break;
		default: return -1;
		}
	}
	l->argv = argv + optind; /* docker: the monitor has the command */
	if (l->runtime && !strcmp(l->runtime, "docker"))
		return l->control_fd > 2 ? 0 : -1;
	/* a named container that exists may come without an image */
	if (!l->runtime || !l->cache_dir || (l->digest && l->raw_image) ||
	    (!l->digest && !l->raw_image && !l->name) ||
	    ((l->name || l->save) && !l->name_scope) || (l->save && l->save[0] != '/') ||
	    optind >= argc)
		return -1;
	return 0;
}

/* What slurmstepd does after task_init, which we skipped by exec'ing. */
static void apply_slurm_task_setup(void)
{
	static const struct {
		const char *name;
		int resource;
	} limits[] = {
		{"SLURM_RLIMIT_CPU", RLIMIT_CPU},       {"SLURM_RLIMIT_FSIZE", RLIMIT_FSIZE},
		{"SLURM_RLIMIT_DATA", RLIMIT_DATA},     {"SLURM_RLIMIT_STACK", RLIMIT_STACK},
		{"SLURM_RLIMIT_CORE", RLIMIT_CORE},     {"SLURM_RLIMIT_RSS", RLIMIT_RSS},
		{"SLURM_RLIMIT_NPROC", RLIMIT_NPROC},   {"SLURM_RLIMIT_NOFILE", RLIMIT_NOFILE},
		{"SLURM_RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"SLURM_RLIMIT_AS", RLIMIT_AS},
	};
	const char *tmpdir = getenv("TMPDIR");

	/* Slurm creates TMPDIR and falls back to /tmp when it cannot. */
	if (tmpdir && *tmpdir && mkdir(tmpdir, 0700) < 0 && errno != EEXIST)
		setenv("TMPDIR", "/tmp", 1);
	for (size_t i = 0; i < sizeof(limits) / sizeof(*limits); i++) {
		const char *value = getenv(limits[i].name);
		struct rlimit rl;
		if (!value || getrlimit(limits[i].resource, &rl) < 0)
			continue;
		/* "U" is Slurm's unlimited; an unprivileged task cannot go above
		 * its hard limit, so the request is capped there. */
		rlim_t want = !strcmp(value, "U") ? RLIM_INFINITY
						  : (rlim_t)strtoull(value, NULL, 10);
		rl.rlim_cur = want > rl.rlim_max ? rl.rlim_max : want;
		setrlimit(limits[i].resource, &rl);
	}
}

/* "A,B,C" into a NULL-terminated vector of names (in place). */
static char **split_names(char *list)
{
	size_t n = 1;

	for (const char *p = list; *p; p++)
		n += *p == ',';
	char **names = calloc(n + 1, sizeof(char *));
	char *save = NULL;
	size_t i = 0;

	for (char *t = names ? strtok_r(list, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
		names[i++] = t;
	return names;
}

/* What the image's ENTRYPOINT does: hidden output needs the image's
 * /bin/sh; without one the plain chain runs and its output shows. */
static enum berth_entrypoint entrypoint_mode(const struct launch *l, struct berth_executor *ex)
{
	if (!l->entrypoint)
		return BERTH_EP_NONE;
	if (ex->img.n_entrypoint && !berth_executor_has_shell(ex))
		return BERTH_EP_BARE;
	if (l->entrypoint_log || !ex->img.n_entrypoint)
		return BERTH_EP_LOG;
	return BERTH_EP_QUIET;
}

/* stdio (SCM_RIGHTS), then the environment: a 32-bit length and the
 * NUL-separated "K=V" strings. */
static int send_task(int control)
{
	size_t len = 0;

	if (berth_send_fds(control, (const int[]){0, 1, 2}, 3) < 0)
		return -1;
	for (char **e = environ; *e; e++)
		len += strlen(*e) + 1;
	_cleanup_free_ char *blob = malloc(len + 1);
	uint32_t n = (uint32_t)len;
	if (!blob)
		return -1;
	len = 0;
	for (char **e = environ; *e; e++) {
		size_t l = strlen(*e) + 1;
		memcpy(blob + len, *e, l);
		len += l;
	}
	if (write(control, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return -1;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(control, blob + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

/* Docker: the container runs under the root-side monitor, which relays
 * its stdio to this task's.  The task passes on the signals Slurm sends it
 * and exits with the container's code, which comes back on the socket. */
static int relay_docker(int control)
{
	static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(*forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* Slurm wires the task's stdio and finishes its environment
	 * (SLURM_PROCID, ...) only after task_init_privileged, where the
	 * monitor was started: hand over the real ones now. */
	if (send_task(control) < 0) {
		fprintf(stderr, "berth: cannot pass the task to the Docker side: %s\n",
			strerror(errno));
		return CLI_EXIT_BERTH;
	}
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	struct pollfd pfd[2] = {{.fd = control, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				int sig = (int)si.ssi_signo;
				if (write(control, &sig, sizeof(sig)) < 0)
					break;
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int code;
			if (read(control, &code, sizeof(code)) == (ssize_t)sizeof(code))
				return code;
			break;
		}
	}
	fprintf(stderr, "berth: the Docker side of this task ended without an exit "
		"code; see the messages above\n");
	return CLI_EXIT_BERTH;
}

/* The step's GPUs and --container-devices (runtime/cdi.h). */
static int add_devices(const struct launch *l, struct berth_mount **binds, size_t *n_binds,
		       char ***env, struct berth_cdi_plan *plan, struct berth_err *err)
{
	/* the GPUs from the job's environment (Slurm's), the image's
	 * NVIDIA_* conventions from the container's */
	if (berth_cdi_plan(l->cdi_dirs, l->devices, environ, *env, plan, err) < 0)
		return -1;
	if (plan->warning[0])
		fprintf(stderr, "berth: warning: %s\n", plan->warning);
	struct berth_mount *more = realloc(*binds, (*n_binds + plan->edits.n_mounts + 1) *
					   sizeof(**binds));
	if (!more)
		return berth_fail(err, ENOMEM, "mounts");
	*binds = more;
	return cli_apply_devices(l->runtime, plan, *binds, n_binds,
				 *n_binds + plan->edits.n_mounts, env, err);
}

/* The staged image (by digest), or the user's own SIF/SquashFS file. */
static int use_image(struct berth_executor *ex, const struct launch *l, struct berth_err *err)
{
	struct berth_stage_result res;

	if (l->name && l->raw_image)
		return berth_fail(err, 0, "--container-name needs an image berth keeps (an "
				  "archive or a registry image), not a SIF or SquashFS file");
	if (l->digest)
		return berth_executor_use_image(ex, l->digest, err);
	if (berth_executor_load_image(ex, l->raw_image, &res, err) < 0)
		return -1;
	if (!ex->raw_image)
		return berth_fail(err, 0, "%s is not a SIF or SquashFS file", l->raw_image);
	return 0;
}

/* --container-name: take the container (named.h) and, when it exists,
 * run the image it was made from. */
static int take_named(struct berth_executor *ex, struct launch *l, struct berth_named *named,
		      struct berth_err *err)
{
	char name[BERTH_NAME_MAX];
	enum berth_name_mode mode;

	if (!l->name) { /* --container-save alone: a container of this step's */
		const char *step = getenv("SLURM_STEP_ID");
		snprintf(name, sizeof(name), "save.%s", step && *step ? step : "0");
		mode = BERTH_NAME_AUTO;
	} else if (berth_name_parse(l->name, name, &mode, err) < 0) {
		return -1;
	}
	if (
berth_named_take(&ex->cache, l->name_scope, name, mode, l->digest ? l->digest : "",
			     ex->ops->name, named, err) < 0)
		return -1;
	l->digest = named->digest;
	return 0;
}

/* run_named's child: the runtime, once the container is marked running. */
struct run_named_args {
	struct berth_executor *ex;
	struct berth_named *named;
};

static void exec_named(void *arg)
{
	const struct run_named_args *a = arg;
	struct berth_err cerr = {0};

	if (berth_named_mark_running(a->named, getpid(), &cerr) == 0)
		berth_executor_exec(a->ex, &cerr);
	cli_error(&cerr);
	_exit(cli_failed_status(a->ex));
}

/* The holder of a named container: this process keeps its lock while the
 * runtime runs in a child (a runtime may close what it inherits), and
 * passes on Slurm's signals; the task's exit status is the container's. */
static int run_named(struct berth_executor *ex, struct berth_named *named,
		     struct berth_err *err)
{
	struct run_named_args args = {ex, named};

	return berth_fork_forwarding(exec_named, &args, err);
}

/* As the job user, on the node: a missing source said in berth's words,
 * whatever the runtime would say. */
static int check_sources(const struct berth_mount *binds, size_t n, struct berth_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (berth_mount_check_source(&binds[i], false, err) < 0)
			return berth_wrap(err, "--container-mounts");
	return 0;
}

/* --container-name=JOBID.STEPID[:auto|exec]: a running step's container.
 * True for such a name (err set when its mode cannot join). */
static bool step_name(const struct launch *l, struct berth_err *err)
{
	char name[BERTH_NAME_MAX];
	enum berth_name_mode mode;

	if (berth_name_parse(l->name, name, &mode, err) < 0 || !berth_name_is_step(name)) {
		err->msg[0] = '\0';
		return false;
	}
	if (mode != BERTH_NAME_AUTO && mode != BERTH_NAME_EXEC)
		berth_fail(err, 0, "--container-name=%s: JOBID.STEPID names a running step, "
			   "which a step can only join (no mode, or :exec)", l->name);
	return true;
}

static int join_step(struct launch *l, struct berth_err *err)
{
	char name[BERTH_NAME_MAX], workdir[PATH_MAX];
	enum berth_name_mode mode;

	if (berth_name_parse(l->name, name, &mode, err) < 0 ||
	    (l->workdir && berth_workdir_resolve(l->workdir, workdir, sizeof(workdir), err) < 0))
		return -1;
	if (l->mounts)
		fprintf(stderr, "berth: --container-mounts is ignored: this step joins the "
			"running container %s, which keeps the mounts it started with\n", name);
	return berth_step_join(name, l->argv, l->workdir ? workdir : NULL, err);
}

int cmd_launch(int argc, char **argv)
{
	struct launch l = {0};
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_executor *ex = NULL;
	struct berth_mount *binds = NULL;
	size_t n_binds = 0;
	char script_dir[PATH_MAX], script_in[PATH_MAX], workdir[PATH_MAX];
	char **env = NULL, **keep = NULL, **cmd = NULL;
	struct berth_named named = {.lock_fd = -1};
	struct berth_cdi_plan plan = {0};
	int code = -1; /* the task's exit status once known; -1 an error in err */

	berth_config_defaults(&cfg);
	l.control_fd = -1;
	if (parse_launch(argc, argv, &l, &cfg) < 0) {
		fputs(launch_usage, stderr);
		return CLI_EXIT_BERTH;
	}
	/* Slurm 22.05 skipped this for us (docker too: the root-side monitor
	 * copies this task's limits into the container). */
	apply_slurm_task_setup();
	if (!strcmp(l.runtime, "docker")) {
		/* The monitor sits in the step's device cgroup, this task in its
		 * own (--gpus-per-task): which GPUs are this task's is told from
		 * here; the monitor still lets only what the step's allows. */
		_cleanup_free_ char *gpus = NULL;
		if (berth_cdi_task_gpus(l.cdi_dirs, environ, &gpus, &err) == 0 && gpus)
			setenv(BERTH_CDI_TASK_GPUS, gpus, 1);
		return relay_docker(l.control_fd);
	}
	if (l.name && step_name(&l, &err)) {
		code = err.msg[0] ? -1 : join_step(&l, &err);
		goto out;
	}
	if ((l.mounts && berth_mounts_parse_list(l.mounts, &binds, &n_binds, &err) < 0) ||
	    (l.workdir && berth_workdir_resolve(l.workdir, workdir, sizeof(workdir), &err) < 0) ||
	    berth_executor_new(l.runtime, &cfg, l.cache_dir, &ex, &err) < 0 ||
	    ((l.name || l.save) && take_named(ex, &l, &named, &err) < 0) ||
	    use_image(ex, &l, &err) < 0)
		goto fail;
	/* The job's environment (not its locale), under the image's own
	 * variables, except SLURM_*, TERM and what --container-env names. */
	keep = l.env_keep ? split_names(l.env_keep) : NULL;
	if (!(env = berth_task_env(environ, &ex->img, keep, &err)))
		goto fail;
	if (l.batch_script) {
		/* The spooled script's folder, read-only, at a fixed mount point. */
		struct berth_mount *more = realloc(binds, (n_binds + 1) * sizeof(*binds));
		if (!more)
			goto fail;
		binds = more;
		snprintf(script_dir, sizeof(script_dir), "%s", l.batch_script);
		binds[n_binds++] = (struct berth_mount){.src = strdup(dirname(script_dir)),
							.dst = strdup(BATCH_DIR),
							.read_only = true};
		snprintf(script_in, sizeof(script_in), BATCH_DIR "/%s",
			 basename(strdupa(l.batch_script)));
		l.argv[0] = script_in; /* the command, before any entry point wraps it */
	}
	if (add_devices(&l, &binds, &n_binds, &env, &plan, &err) < 0 ||
	    !(cmd = berth_task_argv_env(&ex->img, l.argv, entrypoint_mode(&l, ex), &env, keep,
						&err)))
		goto fail;
	if ((l.name || l.save) && !named.holder) { /* it runs: this task joins it */
		if (l.mounts)
			fprintf(stderr, "berth: --container-mounts is ignored: this step joins "
				"the running container %.*s, which keeps the mounts it started "
				"with\n", (int)strcspn(l.name ? l.name : "", ":"), l.name ? l.name : "");
		const char *dir = l.workdir ? workdir : ex->img.workdir ? ex->img.workdir : "/";
		code = berth_named_join(&named, cmd, env, dir, l.remap_root, &err);
		goto out;
	}
	if (check_sources(binds, n_binds, &err) < 0)
		goto fail;
	struct berth_container_spec spec = {
		.argv = cmd, .env = env, .workdir = l.workdir ? workdir : NULL,
		.binds = binds, .n_binds = n_binds,
		.mount_home = l.mount_home, .verbose = l.verbose,
		/* a named or saved container is writable unless asked otherwise
		 * (pyxis) */
		.writable = l.name || l.save ? !l.readonly : l.writable,
		.layer_dir = l.name || l.save ? named.dir : NULL,
		.remap_root = l.remap_root, .unshare = l.unshare,
		.hide_nodes = plan.hide,
		.uid = getuid(), .gid = getgid(),
		.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1,
	};
	if (berth_executor_create(ex, &spec, &err) < 0)
		goto fail;
	if (l.name || l.save) {
		code = run_named(ex, &named, &err);
		if (code >= 0 && l.save) {
			if (berth_save_container(ex, &named, l.save, &err) < 0) {
				cli_error(&err);
				code = code ? code : 1;
			} else {
				fprintf(stderr, "berth: container saved to %s\n", l.save);
			}
		}
		goto out;
	}
	berth_executor_exec(ex, &err); /* returns only on failure */
fail:
	code = -1;
out:
	if (code < 0) {
		if (!err.msg[0])
			berth_fail(&err, ENOMEM, "launch");
		cli_error(&err);
		code = cli_failed_status(ex);
	}
	berth_named_release(&named);
	berth_executor_destroy(ex);
	berth_cdi_plan_free(&plan);
	berth_strv_free(env);
	berth_mounts_free(binds, n_binds);
	free(keep);
	berth_strv_free(cmd);
	return code;
}
