/* berth launch: the per-task launcher.
 *
 * The plugin's task_init execs this as the job user (Slurm 22.05 has no
 * spank_prepend_task_argv).  It does what slurmstepd would still have done
 * after task_init (create TMPDIR, apply SLURM_RLIMIT_*), takes the image's
 * cache lock shared so gc cannot evict it while the task runs (the fd stays
 * open across exec), builds the container environment, and execs the
 * runtime in place: the task's pid, signals, stdio and exit code stay the
 * runtime's, which passes them on to the command. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../executor/cache.h"
#include "../executor/image.h"
#include "cli.h"

extern char **environ;

struct launch {
	const char *runtime;
	const char *cache_dir;
	const char *chrun;
	const char *digest;
	const char *batch_script;
	bool mount_home;
	char **argv;
};

static const char launch_usage[] =
	"usage: berth launch --runtime charliecloud --cache-dir DIR --ch-run PATH\n"
	"                    --digest sha256:HEX [--batch-script PATH] [--mount-home]\n"
	"                    -- CMD [ARG...]\n";

static int parse_launch(int argc, char **argv, struct launch *l)
{
	static const struct option opts[] = {
		{"runtime", required_argument, NULL, 'r'},
		{"cache-dir", required_argument, NULL, 'c'},
		{"ch-run", required_argument, NULL, 'x'},
		{"digest", required_argument, NULL, 'd'},
		{"batch-script", required_argument, NULL, 'b'},
		{"mount-home", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'r': l->runtime = optarg; break;
		case 'c': l->cache_dir = optarg; break;
		case 'x': l->chrun = optarg; break;
		case 'd': l->digest = optarg; break;
		case 'b': l->batch_script = optarg; break;
		case 'h': l->mount_home = true; break;
		default: return -1;
		}
	}
	if (!l->runtime || !l->cache_dir || !l->chrun || !l->digest || optind >= argc)
		return -1;
	l->argv = argv + optind;
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
		char *end;
		if (!value || getrlimit(limits[i].resource, &rl) < 0)
			continue;
		/* A leading 'U' marks an unlimited request in Slurm's encoding. */
		rlim_t want = !strcmp(value, "U") ? RLIM_INFINITY
						  : (rlim_t)strtoull(value, &end, 10);
		if (want > rl.rlim_max)
			want = rl.rlim_max; /* an unprivileged task cannot raise it */
		rl.rlim_cur = want;
		setrlimit(limits[i].resource, &rl);
	}
}

/* Image Env wins over the job's for the names it sets, except SLURM_*,
 * which always reach the task. */
static void apply_image_env(const struct berth_image *img)
{
	for (size_t i = 0; i < img->n_env; i++) {
		_cleanup_free_ char *pair = strdup(img->env[i]);
		char *eq = pair ? strchr(pair, '=') : NULL;
		if (!eq || eq == pair || !strncmp(pair, "SLURM_", 6))
			continue;
		*eq = '\0';
		setenv(pair, eq + 1, 1);
	}
}

static int exec_charliecloud(const struct launch *l, const struct berth_cache *cache,
			     const struct berth_image *img, struct berth_err *err)
{
	char rootfs[PATH_MAX], bind[PATH_MAX + 32], script_copy[PATH_MAX];
	const char *args[64];
	size_t n = 0, argc = 0;

	while (l->argv[argc])
		argc++;
	berth_cache_entry_path(cache, l->digest, "rootfs", rootfs);
	args[n++] = l->chrun;
	if (l->mount_home)
		args[n++] = "--home";
	args[n++] = "-c";
	args[n++] = img->workdir ? img->workdir : "/";
	if (l->batch_script) {
		/* ch-run can bind only onto a path the image has: the script's
		 * folder goes to the mount point every cached rootfs carries. */
		snprintf(script_copy, sizeof(script_copy), "%s", l->batch_script);
		snprintf(bind, sizeof(bind), "%s:/.berth/batch", dirname(script_copy));
		args[n++] = "-b";
		args[n++] = bind;
	}
	args[n++] = rootfs;
	args[n++] = "--";
	const char **full = calloc(n + argc + 1, sizeof(char *));
	if (!full)
		return berth_fail(err, ENOMEM, "argv");
	memcpy(full, args, n * sizeof(char *));
	for (size_t i = 0; i < argc; i++)
		full[n + i] = l->argv[i];
	if (l->batch_script) {
		static char script_in[PATH_MAX];
		snprintf(script_copy, sizeof(script_copy), "%s", l->batch_script);
		snprintf(script_in, sizeof(script_in), "/.berth/batch/%s",
			 basename(script_copy));
		full[n] = script_in;
	}
	execve(l->chrun, (char *const *)full, environ);
	int saved = errno;
	free(full);
	return berth_fail(err, saved, "cannot run %s (ChRunPath)", l->chrun);
}

int cmd_launch(int argc, char **argv)
{
	struct launch l = {0};
	struct berth_err err = {0};
	struct berth_cache cache = {.dir_fd = -1};
	struct berth_image img = {0};

	if (parse_launch(argc, argv, &l) < 0) {
		fputs(launch_usage, stderr);
		return 2;
	}
	if (strcmp(l.runtime, "charliecloud") != 0) {
		fprintf(stderr, "berth: runtime '%s' cannot launch tasks yet\n", l.runtime);
		return 1;
	}
	apply_slurm_task_setup();
	if (berth_cache_open(&cache, l.cache_dir, getuid(), &err) < 0)
		goto fail;
	int lock = berth_cache_use(&cache, l.digest, &err);
	if (lock < 0)
		goto fail;
	/* Keep the shared lock for the life of the container. */
	fcntl(lock, F_SETFD, 0);
	if (berth_cache_load_config(&cache, l.digest, &img, &err) < 0)
		goto fail;
	apply_image_env(&img);
	exec_charliecloud(&l, &cache, &img, &err);
fail:
	cli_error(&err);
	berth_image_close(&img);
	berth_cache_close(&cache);
	return 1;
}
