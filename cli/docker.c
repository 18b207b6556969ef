/* berth docker: the root side of the Docker runtime in a Slurm job.
 *
 * The job user never holds a connection to the Docker socket.  The plugin
 * runs these as root:
 *   load     reads the archive from stdin (opened by the plugin with the
 *            job user's credentials), verifies it, loads it into dockerd;
 *   monitor  one per task: creates the container from vetted fields,
 *            relays its stdio to the task's, passes on the signals the
 *            user-side launcher forwards over the control socket, and sends
 *            back the exit code; when the task goes away, the container is
 *            killed and removed;
 *   sweep    removes every container labelled with a job (and step): the
 *            plugin's step exit and the job epilog call it, so a container
 *            survives neither scancel nor SIGKILL. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/dockerd/bindstage.h"
#include "executor/dockerd/api.h"
#include "executor/dockerd/sweep.h"
#include "executor/executor.h"
#include "executor/runtime/cdi.h"
#include "executor/base/cpus.h"
#include "executor/base/process.h"
#include "cli/cli.h"

/* The node's name for the berth.node label: its host name, which is the
 * Slurm node's own (and the UTS namespace's, in the multi-node test
 * cluster).  Empty when unknown: no label, and the sweep takes every node's. */
static void node_label(char *buf, size_t size)
{
	if (gethostname(buf, size) < 0)
		buf[0] = '\0';
	buf[size - 1] = '\0';
}

#define MAX_GROUPS 256
#define ENV_MAX (4u << 20)

struct docker_args {
	const char *socket, *cache_dir, *digest, *tag, *user, *groups, *job, *step;
	const char *mounts, *workdir, *env_keep, *cgroup_parent;
	int control_fd;
	const char *allowed_mounts, *batch_script;
	const char *cdi_dirs, *devices; /* CdiSpecDirs, --container-devices */
	const char *name; /* the archive as the user named it, for messages */
	bool entrypoint, entrypoint_log, writable;
	unsigned unshare;
	unsigned long long memory, pids_limit;
	unsigned cpus;
	char **argv;
};

static int parse_docker(int argc, char **argv, struct docker_args *a)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"cache-dir", required_argument, NULL, 'c'},
		{"digest", required_argument, NULL, 'd'},
		{"tag", required_argument, NULL, 't'},
		{"user", required_argument, NULL, 'u'},
		{"groups", required_argument, NULL, 'G'},
		{"job", required_argument, NULL, 'j'},
		{"step", required_argument, NULL, 'S'},
		{"mounts", required_argument, NULL, 'm'},
		{"workdir", required_argument, NULL, 'w'},
		{"env-keep", required_argument, NULL, 'k'},
		{"cgroup-parent", required_argument, NULL, 'p'},
		{"control-fd", required_argument, NULL, 'C'},
		{"allowed-mounts", required_argument, NULL, 'A'},
		{"cdi-dirs", required_argument, NULL, 'I'},
		{"devices", required_argument, NULL, 'D'},
		{"batch-script", required_argument, NULL, 'B'},
		{"name", required_argument, NULL, 'N'},
		{"entrypoint", no_argument, NULL, 'e'},
		{"entrypoint-log", no_argument, NULL, 'L'},
		{"unshare", required_argument, NULL, 'n'},
		{"writable", no_argument, NULL, 'W'},
		{"memory", required_argument, NULL, 'M'},
		{"cpus", required_argument, NULL, 'P'},
		{"pids-limit", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0},
	};
	int c;

	a->control_fd = -1;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 's': a->socket = optarg; break;
		case 'c': a->cache_dir = optarg; break;
		case 'd': a->digest = optarg; break;
		case 't': a->tag = optarg; break;
		case 'u': a->user = optarg; break;
		case 'G': a->groups = optarg; break;
		case 'j': a->job = optarg; break;
		case 'S': a->step = optarg; break;
		case 'm': a->mounts = optarg; break;
		case 'w': a->workdir = optarg; break;
		case 'k': a->env_keep = optarg; break;
		case 'p': a->cgroup_parent = optarg; break;
		case 'C': a->control_fd = cli_parse_fd(optarg); break;
		case 'A': a->allowed_mounts = optarg; break;
		case 'I': a->cdi_dirs = optarg; break;
		case 'D': a->devices = optarg; break;
		case 'B': a->batch_script = optarg; break;
		case 'N': a->name = optarg; break;
		case 'e': a->entrypoint = true; break;
		case 'L': a->entrypoint_log = true; break;
		case 'n':
			if (berth_unshare_parse(optarg, "--unshare", &a->unshare, NULL) < 0)
				return -1;
			break;
		case 'W': a->writable = true; break;
		case 'M': a->memory = strtoull(optarg, NULL, 10); break;
		case 'P': a->cpus = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'l': a->pids_limit = strtoull(optarg, NULL, 10); break;
		default: return -1;
		}
	}
	a->argv = argv + optind;
	return 0;
}

/* The site configuration, with the socket and cache the plugin passed. */
static int docker_config(const struct docker_args *a, struct berth_config *cfg,
			 struct berth_err *err)
{
	berth_config_defaults(cfg);
	if (getuid() != 0 || geteuid() != 0)
		return berth_fail(err, EPERM, "berth docker is the root side of the "
				  "Docker runtime; it runs from the Slurm plugin");
	if (a->socket)
		snprintf(cfg->docker_socket, sizeof(cfg->docker_socket), "%s", a->socket);
	if (a->cache_dir)
		snprintf(cfg->cache_dir, sizeof(cfg->cache_dir), "%s", a->cache_dir);
	/* The site's list, as the plugin read it (this process reads no file). */
	if (a->allowed_mounts) {
		char arg[PATH_MAX + 32];
		char *args[] = {arg};
		snprintf(arg, sizeof(arg), "DockerAllowedMounts=%s", a->allowed_mounts);
		return berth_config_load_args(cfg, 1, args, err);
	}
	return 0;
}

/* A message about the archive on stdin names it as the user did: the
 * loader knows it only as /proc/self/fd/0. */
static void name_stdin(struct berth_err *err, const char *name)
{
	static const char fd0[] = "/proc/self/fd/0";
	char *at = strstr(err->msg, fd0);
	char msg[sizeof(err->msg)];

	if (!name || !at)
		return;
	snprintf(msg, sizeof(msg), "%.*s%s%s", (int)(at - err->msg), err->msg, name,
		 at + sizeof(fd0) - 1);
	memcpy(err->msg, msg, sizeof(msg));
}

/* berth docker load: the archive on stdin. */
static int docker_load_cmd(const struct docker_args *a, struct berth_err *err)
{
	struct berth_config cfg;
	struct berth_executor *ex = NULL;
	struct berth_stage_result res;
	char ref[64];
	int rc;

	if (docker_config(a, &cfg, err) < 0)
		return -1;
	snprintf(ref, sizeof(ref), "/proc/self/fd/0%s%s", a->tag ? "#" : "", a->tag ? a->tag : "");
	rc = berth_executor_new("docker", &cfg, NULL, &ex, err);
	if (rc == 0) {
		ex->cache.plain_archives_only = true; /* a job user's archive, as root */
		rc = berth_executor_load_image(ex, ref, &res, err);
	}
	if (rc == 0)
		printf("%s %s\n", res.digest, res.converted ? "loaded" : "present");
	else
		name_stdin(err, a->name);
	berth_executor_destroy(ex);
	berth_config_free(&cfg);
	return rc;
}

/* The task's environment from the launcher: a 32-bit length, then
 * NUL-separated "K=V" strings.  It is data for the container, never this
 * root process's own environment (no LD_PRELOAD & co. from a job). */
static char **read_env(int fd, struct berth_err *err)
{
	struct berth_strv env = {0};
	uint32_t len = 0;
	size_t have = 0;

	if (read(fd, &len, sizeof(len)) != (ssize_t)sizeof(len) || len > ENV_MAX)
		return berth_fail(err, EPROTO, "no environment from the task"), NULL;
	_cleanup_free_ char *buf = malloc((size_t)len + 1);
	if (!buf)
		return berth_fail(err, ENOMEM, "environment"), NULL;
	while (have < len) {
		ssize_t n = read(fd, buf + have, len - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return berth_fail(err, EPROTO, "environment cut short"), NULL;
		have += (size_t)n;
	}
	buf[len] = '\0';
	for (size_t at = 0; at < len; at += strlen(buf + at) + 1)
		if (buf[at] && berth_strv_add(&env, buf + at, err) < 0) {
			berth_strv_free(env.v);
			return NULL;
		}
	if (!env.v && !(env.v = calloc(1, sizeof(char *))))
		berth_fail(err, ENOMEM, "environment");
	return env.v;
}

static int parse_ids(const char *text, unsigned long *first, unsigned long *second)
{
	char *end;

	errno = 0;
	*first = strtoul(text, &end, 10);
	if (errno || end == text || *end != ':')
		return -1;
	text = end + 1;
	*second = strtoul(text, &end, 10);
	return errno || end == text || *end ? -1 : 0;
}

/* "unlimited" or a number, from /proc/PID/limits; -2 if neither. */
static int64_t limit_value(const char *word)
{
	char *end;

	if (!strcmp(word, "unlimited"))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(word, &end, 10);
	return errno || end == word || *end || v > INT64_MAX ? -2 : (int64_t)v;
}

/* The task at the other end of the control socket: the process that made
 * the socket pair in task_init_privileged and became the launcher, alive
 * while it waits for the exit code.  0 when unknown. */
static pid_t task_pid(int control)
{
	struct ucred peer;
	socklen_t len = sizeof(peer);

	if (getsockopt(control, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 || peer.pid <= 0)
		return 0;
	return peer.pid;
}

/* The task's resource limits, which Slurm set from the submitting shell's
 * (SLURM_RLIMIT_*), read from the kernel's view of the task: the launcher
 * at the other end of the control socket, alive while it waits for us.
 * Not from the launcher's word: the user could claim any hard limit.
 * Not with prlimit(): root without CAP_SYS_RESOURCE may not read another
 * user's limits that way, but /proc/PID/limits is world-readable. */
static size_t task_ulimits(int control, struct berth_ulimit out[], size_t max)
{
	static const struct {
		const char *proc, *docker;
	} names[] = {
		{"Max cpu time", "cpu"},         {"Max file size", "fsize"},
		{"Max data size", "data"},       {"Max stack size", "stack"},
		{"Max core file size", "core"},  {"Max processes", "nproc"},
		{"Max open files", "nofile"},    {"Max locked memory", "memlock"},
	};
	char path[64], line[256], soft[32], hard[32];
	size_t n = 0;
	pid_t pid = task_pid(control);

	if (!pid)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && n < max && fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
			size_t l = strlen(names[i].proc);
			if (strncmp(line, names[i].proc, l) != 0 || line[l] != ' ' ||
			    sscanf(line + l, "%31s %31s", soft, hard) != 2)
				continue;
			struct berth_ulimit u = {names[i].docker, limit_value(soft), limit_value(hard)};
			if (u.soft >= -1 && u.hard >= -1)
				out[n++] = u;
			break;
		}
	}
	return n;
}

/* The CPUs of the task's container: the task's binding as the kernel
 * holds it for the launcher (Slurm's task/affinity set it before the
 * launcher ran), never the launcher's word.  The job user can change that
 * binding (sched_setaffinity on its own process), but only within the
 * cpuset cgroup Slurm confined the step to (ConstrainCores); it is also
 * cut to this monitor's own binding, which it took from the task's process
 * as root before the user ran anything there (with cgroup v1 the monitor
 * is in the step's cpuset cgroup, slurm_<node>/uid_U/job_J/step_S, and
 * bound to its CPUs; under cgroup v2 Slurm's cpuset controller bounds
 * both the same way).  dockerd with the cgroupfs driver puts the
 * container in /docker/<id>, outside the step: this CPU set is what
 * keeps it on the step's CPUs. */
static int task_cpus(int control, char *buf, size_t size, struct berth_err *err)
{
	pid_t pid = task_pid(control);

	if (!pid)
		return berth_fail(err, errno, "cannot tell which process the task is "
				  "(SO_PEERCRED on the control socket)");
	if (berth_cpus_of_task(pid, buf, size, err) < 0)
		return berth_wrap(err, "the task's CPUs");
	return 0;
}

/* Relay stdio, forward signals from the control socket, return the code. */
static int monitor_loop(struct berth_executor *ex, int control, bool *forwarded,
			struct berth_err *err)
{
	struct pollfd pfd[2] = {{.fd = control, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
	sigset_t chld;

	/* Wake when the relay (our child) ends, not on the next tick. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	_cleanup_close_ int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	pfd[1].fd = sfd;

	for (;;) {
		int done = berth_executor_poll(ex, err);
		if (done < 0)
			return -1;
		if (done)
			return berth_executor_exit_code(ex);
		if (poll(pfd, 2, 1000) <= 0)
			continue;
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(pfd[1].fd, &si, sizeof(si)) > 0)
				;
		}
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		int sig = 0;
		ssize_t n = read(control, &sig, sizeof(sig));
		if (n == (ssize_t)sizeof(sig) && sig > 0 && sig < 65) {
			*forwarded = true;
			berth_executor_kill(ex, sig, NULL);
			continue;
		}
		/* The task is gone (or spoke nonsense): so is its container. */
		berth_executor_kill(ex, SIGKILL, NULL);
		return berth_fail(err, 0, "the task ended; container killed");
	}
}

/* The container's environment from the task's, by pyxis's rules. */
/* The --container-env names, as a NULL-terminated vector. */
static int env_keep(const struct docker_args *a, struct berth_strv *keep, struct berth_err *err)
{
	for (char *save = NULL, *t = a->env_keep ? strtok_r(strdupa(a->env_keep), ",", &save) : NULL;
	     t; t = strtok_r(NULL, ",", &save))
		if (berth_strv_add(keep, t, err) < 0)
			return -1;
	return 0;
}

/* dockerd stopped or restarted under the task: its container was stopped
 * by dockerd (or its end was not seen), and it may outlive the task.  Say
 * so on the task's stderr, where srun's user reads it; the launcher only
 * knows that no exit code came. */
static void tell_docker_trouble(struct berth_executor *ex, int code, bool forwarded,
				int task_stderr)
{
	struct berth_err err = {0};

	if (task_stderr < 0)
		return;
	/* dockerd stopping sends the container SIGTERM (then SIGKILL) */
	if (!forwarded && (code == 128 + SIGTERM || code == 128 + SIGKILL))
		dprintf(task_stderr, "berth: the container was ended by signal %d that the job "
			"did not send (dockerd stopping or restarting, `docker stop` or "
			"`docker kill`, or the out-of-memory killer)\n", code - 128);
	/* (when code < 0, the monitor's own error says why it was not seen) */
	if (berth_executor_finish(ex, &err) < 0)
		dprintf(task_stderr, "berth: Docker stopped or restarted while this task ran, "
			"and the task ended with it; its container is removed by the job's "
			"clean-up once Docker answers again\n");
}

/* The step's GPUs and --container-devices (runtime/cdi.h).  dockerd puts
 * the container in its own cgroups, outside the step's device rules, and
 * the task's environment (its GPU list) comes from the job: so each device
 * node must be one this monitor, root in the task's own device cgroup,
 * may open (ConstrainDevices: only the step's GPUs), and becomes a
 * HostConfig.Devices entry; the driver files are read-only binds. */
static int docker_devices(const struct docker_args *a, char *const *task_env, char ***env,
			  struct berth_mount **binds, size_t *n_binds, struct berth_strv *devices,
			  struct berth_cdi_plan *plan, struct berth_err *err)
{
	/* the task's GPUs as its own device cgroup numbers them, from the
	 * launcher, else Slurm's list; never in the container */
	const char *task_gpus = NULL;
	size_t n = 0;
	for (; task_env[n]; n++)
		if (!strncmp(task_env[n], BERTH_CDI_TASK_GPUS "=", strlen(BERTH_CDI_TASK_GPUS) + 1))
			task_gpus = task_env[n] + strlen(BERTH_CDI_TASK_GPUS) + 1;
	_cleanup_free_ char **plan_env = calloc(n + 2, sizeof(char *));
	char kv[1100];
	if (!plan_env)
		return berth_fail(err, ENOMEM, "environment");
	/* the first SLURM_STEP_GPUS is the one read */
	snprintf(kv, sizeof(kv), "SLURM_STEP_GPUS=%.1000s", task_gpus ? task_gpus : "");
	plan_env[0] = kv;
	memcpy(plan_env + (task_gpus ? 1 : 0), task_env, n * sizeof(char *));
	if (berth_cdi_plan(a->cdi_dirs, a->devices, plan_env, *env, plan, err) < 0)
		return -1;
	for (size_t i = 0; (*env)[i]; i++) {
		if (!strncmp((*env)[i], BERTH_CDI_TASK_GPUS "=", strlen(BERTH_CDI_TASK_GPUS) + 1)) {
			free((*env)[i]);
			do
				(*env)[i] = (*env)[i + 1];
			while ((*env)[++i]);
			break;
		}
	}
	for (size_t i = 0; i < plan->edits.n_mounts; i++) {
		const struct berth_mount *m = &plan->edits.mounts[i];
		bool node = false;
		for (size_t j = 0; j < plan->edits.n_nodes && !node; j++)
			node = !strcmp(plan->edits.nodes[j], m->dst);
		if (!node)
			continue;
		if (!berth_cdi_node_allowed(m->src))
			return berth_fail(err, 0, "device %s is not one this step was given (its "
					  "device cgroup denies it); ask Slurm for it (--gres=gpu:N) "
					  "instead of naming it", m->src);
		if (berth_strv_addf(devices, err, "%s:%s", m->src, m->dst) < 0)
			return -1;
	}
	struct berth_mount *more = realloc(*binds, (*n_binds + plan->edits.n_mounts + 1) *
					   sizeof(**binds));
	if (!more)
		return berth_fail(err, ENOMEM, "mounts");
	*binds = more;
	return cli_apply_devices("docker", plan, *binds, n_binds,
				 *n_binds + plan->edits.n_mounts, env, err);
}

static int docker_monitor_cmd(struct docker_args *a, struct berth_err *err)
{
	struct berth_config cfg;
	struct berth_executor *ex = NULL;
	struct berth_mount *binds = NULL;
	size_t n_binds = 0;
	gid_t groups[MAX_GROUPS];
	size_t n_groups = 0;
	unsigned long uid, gid;
	char **env = NULL, **merged = NULL, **cmd = NULL;
	struct berth_strv keep = {0}, devices = {0};
	struct berth_cdi_plan plan = {0};
	char workdir[PATH_MAX];
	int stdio[3] = {-1, -1, -1};
	int code = -1;

	signal(SIGPIPE, SIG_IGN);
	if (docker_config(a, &cfg, err) < 0)
		return -1;
	if (!a->digest || !a->user || parse_ids(a->user, &uid, &gid) < 0 || a->control_fd < 0 ||
	    !a->argv[0]) {
		berth_fail(err, 0, "berth docker monitor: missing or bad arguments");
		goto out;
	}
	for (char *save = NULL, *g = a->groups ? strtok_r(strdupa(a->groups), ",", &save) : NULL;
	     g && n_groups < MAX_GROUPS; g = strtok_r(NULL, ",", &save))
		groups[n_groups++] = (gid_t)strtoul(g, NULL, 10);
	/* The task's stdio and final environment, from the launcher (Slurm
	 * sets them up after the hook that started us). */
	if (berth_recv_fds(a->control_fd, stdio, 3) < 0) {
		berth_fail(err, errno, "no stdio from the task");
		goto out;
	}
	char cpus[1024];
	if (task_cpus(a->control_fd, cpus, sizeof(cpus), err) < 0)
		goto out;
	if ((a->mounts && berth_mounts_parse_list(a->mounts, &binds, &n_binds, err) < 0) ||
	    (a->workdir && berth_workdir_resolve(a->workdir, workdir, sizeof(workdir), err) < 0) ||
	    !(env = read_env(a->control_fd, err)) ||
	    berth_executor_new("docker", &cfg, NULL, &ex, err) < 0 ||
	    berth_executor_use_image(ex, a->digest, err) < 0)
		goto out;
	if (env_keep(a, &keep, err) < 0 || !(merged = berth_task_env(env, &ex->img, keep.v, err)))
		goto out;
	char step_label[64];
	snprintf(step_label, sizeof(step_label), "%s.%s", a->job ? a->job : "", a->step ? a->step : "");
	char node[HOST_NAME_MAX + 1];
	node_label(node, sizeof(node));
	char script_in[PATH_MAX];
	if (a->batch_script) {
		/* The spooled script's folder, read-only, at berth's mount point. */
		struct berth_mount *more = realloc(binds, (n_binds + 1) * sizeof(*binds));
		if (!more) {
			berth_fail(err, ENOMEM, "mounts");
			goto out;
		}
		binds = more;
		char *dir = strdupa(a->batch_script);
		binds[n_binds++] = (struct berth_mount){.src = strdup(dirname(dir)),
							.dst = strdup("/.berth/batch"),
							.read_only = true, .berth_own = true};
		snprintf(script_in, sizeof(script_in), "/.berth/batch/%s",
			 basename(strdupa(a->batch_script)));
		a->argv[0] = script_in; /* the command, before any entry point wraps it */
	}
	/* Docker's image is not on disk here: its /bin/sh is taken as there
	 * (--container-entrypoint-log runs the plain chain for one without). */
	enum berth_entrypoint ep = !a->entrypoint ? BERTH_EP_NONE
				   : a->entrypoint_log ? BERTH_EP_LOG : BERTH_EP_QUIET;
	if (docker_devices(a, env, &merged, &binds, &n_binds, &devices, &plan, err) < 0 ||
	    !(cmd = berth_task_argv_env(&ex->img, a->argv, ep, &merged, keep.v, err)))
		goto out;
	if (plan.warning[0] && stdio[2] >= 0)
		dprintf(stdio[2], "berth: warning: %s\n", plan.warning);
	struct berth_ulimit ulimits[8];
	size_t n_ulimits = task_ulimits(a->control_fd, ulimits, 8);
	struct berth_container_spec spec = {
		.ulimits = ulimits, .n_ulimits = n_ulimits,
		.argv = cmd, .env = merged, .workdir = a->workdir ? workdir : NULL,
		.binds = binds, .n_binds = n_binds, .devices = devices.v,
		.uid = (uid_t)uid, .gid = (gid_t)gid, .groups = groups, .n_groups = n_groups,
		.memory_bytes = a->memory, .cpus = a->cpus, .unshare = a->unshare,
		.cpuset_cpus = cpus, .pids_limit = a->pids_limit,
		.writable = a->writable,
		.cgroup_parent = a->cgroup_parent, .label_job = a->job, .label_step = step_label,
		.label_node = node[0] ? node : NULL,
		.stdin_fd = stdio[0], .stdout_fd = stdio[1], .stderr_fd = stdio[2],
	};
	if (berth_executor_create(ex, &spec, err) == 0 && berth_executor_start(ex, err) == 0) {
		bool forwarded = false;
		code = monitor_loop(ex, a->control_fd, &forwarded, err);
		tell_docker_trouble(ex, code, forwarded, stdio[2]);
	}
out:
	if (code < 0 && stdio[2] >= 0) {
		/* The task is there to tell: the reason on its stderr, and a
		 * status of berth's own (or 126/127) instead of none. */
		dprintf(stdio[2], "berth: %s\n", err->msg);
		code = cli_failed_status(ex);
	}
	for (int i = 0; i < 3; i++)
		if (stdio[i] >= 0)
			close(stdio[i]);
	if (code >= 0 && write(a->control_fd, &code, sizeof(code)) != (ssize_t)sizeof(code))
		code = -1;
	berth_executor_destroy(ex); /* removes the container */
	berth_strv_free(env);
	berth_strv_free(merged);
	berth_strv_free(keep.v);
	berth_strv_free(devices.v);
	berth_cdi_plan_free(&plan);
	berth_strv_free(cmd);
	berth_mounts_free(binds, n_binds);
	berth_config_free(&cfg);
	return code < 0 ? -1 : 0;
}

/* The containers of jobs whose sweep found dockerd down, now it answers. */
static void sweep_deferred(struct berth_docker *d, const char *cache_dir,
			   const char *node_label)
{
	struct berth_err err = {0};
	size_t removed = 0, jobs = 0;

	if (berth_docker_sweep_deferred(d, cache_dir, node_label, &removed, &jobs, &err) < 0)
		fprintf(stderr, "berth: %s\n", err.msg);
	else if (jobs)
		printf("removed %zu container(s) of %zu earlier job(s) that Docker was "
		       "down for\n", removed, jobs);
}

static int docker_sweep_cmd(const struct docker_args *a, struct berth_err *err)
{
	struct berth_config cfg;
	struct berth_docker *d = NULL;
	char label[96];
	size_t n = 0;
	int rc = -1;

	if (docker_config(a, &cfg, err) < 0)
		return -1;
	if (!a->job) {
		berth_config_free(&cfg);
		return berth_fail(err, 0, "berth docker sweep: --job N is required");
	}
	/* berth.step is "JOB.STEP", so one label picks a step's containers. */
	if (a->step)
		snprintf(label, sizeof(label), "berth.step=%s.%s", a->job, a->step);
	else
		snprintf(label, sizeof(label), "berth.job=%s", a->job);
	/* A step's sweep takes this node's containers only: one dockerd may
	 * serve several nodes (a test cluster of network namespaces) whose
	 * tasks of the same step end at different times.  The job's sweep (the
	 * epilog) takes them all, labelled with a node or not: the job is over
	 * everywhere. */
	char node[HOST_NAME_MAX + 1], node_filter[HOST_NAME_MAX + 16];
	node_label(node, sizeof(node));
	snprintf(node_filter, sizeof(node_filter), "berth.node=%s", node);
	const char *also = a->step && node[0] ? node_filter : NULL;
	if (berth_docker_open(&d, cfg.docker_socket, err) == 0 &&
	    berth_docker_sweep_label(d, label, also, &n, err) == 0) {
		rc = 0;
		printf("removed %zu container(s) of job %s\n", n, a->job);
		sweep_deferred(d, cfg.cache_dir, node[0] ? node_filter : NULL);
	} else {
		/* dockerd down: a later sweep, once it is back, removes them */
		struct berth_err deferred = {0};
		if (berth_docker_sweep_defer(cfg.cache_dir, a->job, a->step, &deferred) == 0) {
			char cause[BERTH_ERR_MSG_MAX];
			snprintf(cause, sizeof(cause), "%s", err->msg);
			berth_fail(err, 0, "%s (job %s's containers are removed by the next "
				   "sweep on this node once Docker answers)", cause, a->job);
		} else {
			berth_wrap(err, "%s; also", deferred.msg);
		}
	}
	/* after the containers: the binds they used, staged for dockerd */
	if (berth_bind_stage_sweep(cfg.cache_dir, a->job, a->step, err) < 0)
		rc = -1;
	berth_docker_close(d);
	berth_config_free(&cfg);
	return rc;
}

int cmd_docker(int argc, char **argv)
{
	struct docker_args a = {0};
	struct berth_err err = {0};
	int rc;

	if (argc < 2) {
		fputs("usage: berth docker load|monitor|sweep [options] (run by the Slurm plugin)\n",
		      stderr);
		return 2;
	}
	const char *sub = argv[1];
	if (parse_docker(argc - 1, argv + 1, &a) < 0)
		return 2;
	if (!strcmp(sub, "load"))
		rc = docker_load_cmd(&a, &err);
	else if (!strcmp(sub, "monitor"))
		rc = docker_monitor_cmd(&a, &err);
	else if (!strcmp(sub, "sweep"))
		rc = docker_sweep_cmd(&a, &err);
	else
		return fprintf(stderr, "berth docker: unknown command '%s'\n", sub), 2;
	if (rc < 0)
		cli_error(&err);
	return rc < 0 ? 1 : 0;
}
