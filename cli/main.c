/* berth: pull, inspect and run container images; also the per-task
 * launcher the Slurm plugin execs (`berth launch`, see launch.c).
 *
 * This file is the command table (as crun's src/crun.c): each command's
 * name, the function that runs it (cli/<command>.c) and its lines in the
 * usage; what the commands share is in common.c. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "executor/cache/cache.h"
#include "executor/dockerd/api.h"

/* dockerd:// images: the cache may not include the Docker client (the
 * layers), so the command wires it in. */
static const struct berth_cache_dockerd dockerd_client = {
	.image_id = berth_docker_id_at,
	.save = berth_docker_save_at,
};

struct command {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the name */
	const char *help;                  /* its lines in the usage; NULL: unlisted */
};

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

/* In the order the usage lists them; the unlisted ones last. */
static const struct command commands[] = {
	{"pull", cmd_pull,
	 "  pull [--runtime R] [--cache-dir DIR] IMAGE\n"
	 "                                   stage IMAGE (a docker-save archive\n"
	 "                                   PATH[#REPO:TAG], a URL of one, or a\n"
	 "                                   registry image: ubuntu:22.04,\n"
	 "                                   docker://REG/REPO:TAG, REG#REPO:TAG)\n"
	 "                                   into your cache; --image-stdin instead\n"
	 "                                   of IMAGE reads it from stdin (a URL with\n"
	 "                                   a password or a signature: command lines\n"
	 "                                   are public)\n"},
	{"resolve", cmd_resolve,
	 "  resolve IMAGE | --image-stdin    the registry image pinned to its digest\n"},
	{"login", cmd_login,
	 "  login [--username U] REGISTRY    store credentials (password on stdin)\n"},
	{"inspect", cmd_inspect,
	 "  inspect [--json] IMAGE           show digest, layers and config\n"
	 "  inspect --cached [--runtime R] [--cache-dir DIR] IMAGE\n"
	 "                                   is R's form of IMAGE staged? exit 0 yes,\n"
	 "                                   1 no, 2 an error\n"},
	{"run", cmd_run,
	 "  run --runtime R --image IMAGE [--bind SRC:DST[:ro|rw]] [--workdir D]\n"
	 "      [--env K=V] [--env-pass NAME] [--writable] [--mount-home] -- CMD...\n"
	 "                                   run CMD in a container; exit status: CMD's,\n"
	 "                                   127 not found, 126 not executable, 125\n"
	 "                                   berth's own failure\n"},
	{"cache", cmd_cache,
	 "  cache ls [--cache-dir DIR]       list cached images: digest, size, last use,\n"
	 "                                   source\n"
	 "  cache gc [--cache-dir DIR] [--max-size SIZE]\n"
	 "                                   evict least recently used images above SIZE\n"
	 "                                   (default CacheMaxSize); never one in use\n"
	 "  cache verify [--cache-dir DIR] [--repair]\n"
	 "                                   re-hash cached images against their\n"
	 "                                   manifests; a corrupt one is rebuilt at its\n"
	 "                                   next use (--repair: removed now)\n"
	 "  cache rm [--runtime R] [--cache-dir DIR] IMAGE\n"
	 "                                   remove R's form of IMAGE (docker: the image\n"
	 "                                   in dockerd); never one in use\n"},
	{"ps", cmd_ps,
	 "  ps [--cache-dir DIR]             list your named containers (--container-name)\n"},
	{"rm", cmd_rm,
	 "  rm [--scope job-ID|user] NAME... remove named containers (not while running)\n"
	 "  rm --scope SCOPE --all           remove every container of a scope\n"},
	{"config", cmd_config,
	 "  config                           print the effective configuration\n"},
	{"version", cmd_version,
	 "  version                          print the version\n"},
	{"launch", cmd_launch,
	 "  launch ...                       per-task launcher used by the Slurm\n"
	 "                                   plugin (see spank_berth(8))\n"},
	/* the plugin's: fetch as the job user, docker as root */
	{"fetch", cmd_fetch, NULL},
	{"docker", cmd_docker, NULL},
	{"--version", cmd_version, NULL},
	{"help", cmd_help, NULL},
	{"--help", cmd_help, NULL},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *out)
{
	fputs("usage: berth COMMAND [ARGS]\n\n", out);
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (commands[i].help)
			fputs(commands[i].help, out);
}

static int cmd_version(int argc, char **argv)
{
	(void)argc, (void)argv;
	printf("berth %s\n", BERTH_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	(void)argc, (void)argv;
	print_usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	berth_cache_dockerd = &dockerd_client;
	if (argc < 2) {
		print_usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "berth: unknown command '%s'\n", argv[1]);
	print_usage(stderr);
	return 2;
}
