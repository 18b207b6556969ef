/* berth run: load an image and run one command in a container, through
 * the executor interface; the terminal way to do what the plugin does. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "executor/executor.h"
#include "executor/runtime/cdi.h"
#include "cli/cli.h"

#define MAX_ITEMS 256
#define KILL_GRACE_SECONDS 2

extern char **environ;

static const char run_usage[] =
	"usage: berth run --runtime R --image IMAGE [--cache-dir DIR]\n"
	"                 [--bind SRC:DST[:ro|rw]]... [--workdir DIR]\n"
	"                 [--env K=V]... [--env-pass NAME]... [--writable]\n"
	"                 [--mount-home] [--unshare net,ipc,uts] [--verbose]\n"
	"                 [--user UID:GID (root only)] [--device CDI-NAME]...\n"
	"                 -- CMD [ARG...]\n"
	"exit status: CMD's (128+N after signal N); 127 CMD not found in the\n"
	"container, 126 not executable; 125 berth's own failure (reason on stderr)\n";

struct run_args {
	const char *runtime, *image, *cache_dir, *workdir;
	struct berth_mount binds[MAX_ITEMS];
	size_t n_binds;
	const char *env[MAX_ITEMS];  /* --env K=V and --env-pass results, in order */
	size_t n_env;
	bool writable, mount_home, verbose;
	unsigned unshare;            /* --unshare (and --network-none: net) */
	const char *user;            /* root only: run the container as UID:GID */
	char devices[1024];          /* --device, comma separated */
	char **argv;
};

/* A bind for `berth run`: the shared mount syntax, and a source that exists. */
static int parse_bind(const char *text, struct berth_mount *m, struct berth_err *err)
{
	if (berth_mount_parse(text, m, err) < 0)
		return -1;
	if (m->kind == BERTH_MOUNT_BIND && berth_mount_check_source(m, false, err) < 0)
		return -1;
	if (m->kind == BERTH_MOUNT_BIND && access(m->src, F_OK) < 0)
		return berth_fail(err, errno, "bind source %s", m->src);
	return 0;
}

static int parse_run(int argc, char **argv, struct run_args *a, struct berth_err *err)
{
	static const struct option opts[] = {
		{"runtime", required_argument, NULL, 'r'},
		{"image", required_argument, NULL, 'i'},
		{"cache-dir", required_argument, NULL, 'c'},
		{"bind", required_argument, NULL, 'b'},
		{"workdir", required_argument, NULL, 'w'},
		{"env", required_argument, NULL, 'e'},
		{"env-pass", required_argument, NULL, 'p'},
		{"writable", no_argument, NULL, 'W'},
		{"mount-home", no_argument, NULL, 'H'},
		{"user", required_argument, NULL, 'u'},
		{"unshare", required_argument, NULL, 'U'},
		/* the older spelling of --unshare=net */
		{"network-none", no_argument, NULL, 'N'},
		{"verbose", no_argument, NULL, 'v'},
		{"device", required_argument, NULL, 'D'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if ((c == 'b' && a->n_binds >= MAX_ITEMS) || (strchr("ep", c) && a->n_env >= MAX_ITEMS))
			return berth_fail(err, 0, "too many --bind/--env options");
		switch (c) {
		case 'r': a->runtime = optarg; break;
		case 'i': a->image = optarg; break;
		case 'c': a->cache_dir = optarg; break;
		case 'w': a->workdir = optarg; break;
		case 'W': a->writable = true; break;
		case 'H': a->mount_home = true; break;
		case 'u': a->user = optarg; break;
		case 'N': a->unshare |= BERTH_UNSHARE_NET; break;
		case 'U': {
			unsigned more;
			if (berth_unshare_parse(optarg, "--unshare", &more, err) < 0)
				return -1;
			a->unshare |= more;
			break;
		}
		case 'v': a->verbose = true; break;
		case 'D': {
			size_t used = strlen(a->devices);
			if (!berth_cdi_name_valid(optarg) ||
			    snprintf(a->devices + used, sizeof(a->devices) - used, "%s%s",
				     used ? "," : "", optarg) >= (int)(sizeof(a->devices) - used))
				return berth_fail(err, 0, "--device '%s': write a CDI name "
						  "KIND=NAME, as nvidia.com/gpu=0", optarg);
			break;
		}
		case 'b':
			if (parse_bind(optarg, &a->binds[a->n_binds++], err) < 0)
				return -1;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return berth_fail(err, 0, "--env '%s': write NAME=VALUE", optarg);
			a->env[a->n_env++] = optarg;
			break;
		case 'p': {
			const char *value = getenv(optarg);
			char *pair = NULL;
			if (!value)
				continue; /* not set here: nothing to pass */
			if (asprintf(&pair, "%s=%s", optarg, value) < 0)
				return berth_fail(err, ENOMEM, "--env-pass");
			a->env[a->n_env++] = pair; /* lives until exit */
			break;
		}
		default:
			return berth_fail(err, 0, "unknown option; see the usage");
		}
	}
	if (!a->runtime || !a->image || optind >= argc)
		return berth_fail(err, 0, "--runtime, --image and a command are required");
	if (a->workdir && a->workdir[0] != '/')
		return berth_fail(err, 0, "--workdir '%s' must be an absolute path", a->workdir);
	a->argv = argv + optind;
	return 0;
}

/* Wait for the container, passing on SIGTERM/SIGINT/SIGHUP; a container
 * that ignores them is killed after a grace period.  The signals are
 * blocked (berth_run_block_signals) before the container starts and taken
 * here with sigtimedwait, so none is lost between checks. */
static int supervise(struct berth_executor *ex, const sigset_t *set,
		     struct berth_err *err)
{
	struct timespec tick = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
	struct timespec deadline = {0}, now;
	siginfo_t info;

	for (;;) {
		int sig = sigtimedwait(set, &info, &tick);
		if (sig > 0 && sig != SIGCHLD) {
			berth_executor_kill(ex, sig, NULL);
			clock_gettime(CLOCK_MONOTONIC, &deadline);
			deadline.tv_sec += KILL_GRACE_SECONDS;
		}
		int done = berth_executor_poll(ex, err);
		if (done < 0)
			return -1;
		if (done)
			return berth_executor_exit_code(ex);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (deadline.tv_sec && now.tv_sec >= deadline.tv_sec)
			berth_executor_kill(ex, SIGKILL, NULL);
	}
}

/* Who the container runs as: the caller, or (root only) --user UID:GID
 * with that user's groups, the way the plugin runs a job user's container. */
static int run_identity(const struct run_args *a, uid_t *uid, gid_t *gid, gid_t *groups,
			int *n_groups, struct berth_err *err)
{
	*uid = getuid();
	*gid = getgid();
	*n_groups = getgroups(64, groups);
	if (*n_groups < 0)
		*n_groups = 0;
	if (!a->user)
		return 0;
	if (getuid() != 0)
		return berth_fail(err, 0, "--user is for root (the container runs as you)");
	char *colon = (char *)a->user, *end = colon;
	errno = 0;
	unsigned long u = strtoul(a->user, &colon, 10);
	unsigned long g = 0;
	if (*colon == ':')
		g = strtoul(colon + 1, &end, 10);
	if (errno || colon == a->user || *colon != ':' || end == colon + 1 || *end)
		return berth_fail(err, 0, "--user '%s': write UID:GID", a->user);
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	struct passwd *pw = getpwuid(u);
	*n_groups = 64;
	if (!pw || getgrouplist(pw->pw_name, g, groups, n_groups) < 0)
		*n_groups = 0;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct run_args a = {0};
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_executor *ex = NULL;
	struct berth_stage_result staged;
	struct berth_cdi_plan plan = {0};
	char **env = NULL;
	int code = -1; /* the container's status once known; -1 an error in err */
	uid_t uid;
	gid_t gid, groups[64];
	int n_groups = 0;

	berth_config_defaults(&cfg);
	if (parse_run(argc, argv, &a, &err) < 0) {
		cli_error(&err);
		fputs(run_usage, stderr);
		return CLI_EXIT_BERTH;
	}
	if (run_identity(&a, &uid, &gid, groups, &n_groups, &err) < 0 ||
	    cli_load_config(&cfg, &err) < 0 ||
	    berth_config_pick_runtime(&cfg, a.runtime, &(enum berth_runtime){0}, &err) < 0 ||
	    berth_executor_new(a.runtime, &cfg, a.cache_dir, &ex, &err) < 0 ||
	    berth_executor_load_image(ex, a.image, &staged, &err) < 0)
		goto out;
	if (staged.damaged[0])
		fprintf(stderr, "berth: the cached copy of %s was damaged (%s); rebuilt it\n",
			a.image, staged.damaged);
	if (staged.digest[0] && berth_executor_use_image(ex, staged.digest, &err) < 0)
		goto out;
	/* The environment is exactly: the image's Env, --env, --env-pass. */
	char *none[] = {NULL};
	if (!(env = berth_env_merge(none, ex->img_loaded ? &ex->img : NULL, NULL, &err)))
		goto out;
	for (size_t i = 0; i < a.n_env; i++) {
		char *one[] = {(char *)a.env[i], NULL};
		struct berth_image over = {.env = one, .n_env = 1};
		char **next = berth_env_merge(env, &over, NULL, &err);
		berth_strv_free(env);
		if (!(env = next))
			goto out;
	}
	/* --device, and the GPUs of the Slurm step it runs in (not docker's
	 * yet: a bound node is not a device its cgroup allows) */
	bool docker = !strcmp(ex->ops->name, "docker");
	if (docker && a.devices[0]) {
		berth_fail(&err, 0, "--device is not supported with docker yet; use "
			   "--runtime charliecloud or singularity");
		goto out;
	}
	if ((!docker &&
	     berth_cdi_plan(cfg.cdi_spec_dirs, a.devices[0] ? a.devices : NULL, environ, env,
			    &plan, &err) < 0) ||
	    cli_apply_devices(ex->ops->name, &plan, a.binds, &a.n_binds, MAX_ITEMS, &env,
			      &err) < 0)
		goto out;
	if (plan.warning[0])
		fprintf(stderr, "berth: warning: %s\n", plan.warning);
	struct berth_container_spec spec = {
		.hide_nodes = plan.hide,
		.argv = a.argv, .env = env, .workdir = a.workdir,
		.binds = a.binds, .n_binds = a.n_binds,
		.writable = a.writable, .mount_home = a.mount_home,
		.unshare = a.unshare, .verbose = a.verbose,
		.uid = uid, .gid = gid, .groups = groups, .n_groups = (size_t)n_groups,
		.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1,
	};
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL); /* the container's child unblocks */
	if (berth_executor_create(ex, &spec, &err) < 0 ||
	    berth_executor_start(ex, &err) < 0)
		goto out;
	code = supervise(ex, &set, &err);
out:
	if (code < 0) {
		cli_error(&err);
		code = cli_failed_status(ex);
	}
	berth_executor_destroy(ex);
	berth_strv_free(env);
	berth_cdi_plan_free(&plan);
	berth_config_free(&cfg);
	for (size_t i = 0; i < a.n_binds; i++) {
		free(a.binds[i].src);
		free(a.binds[i].dst);
	}
	return code;
}
