/* berth ps / berth rm: the user's named containers (--container-name). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "executor/cache/cache.h"
#include "executor/runtime/named.h"
#include "cli/cli.h"

static void print_one(void *ctx, const char *scope, const char *name, const char *digest,
		      const char *runtime, bool running, unsigned long long bytes)
{
	char size[32];

	(void)ctx;
	berth_format_size(bytes, size, sizeof(size));
	printf("%-24s %-12s %-12s %-8s %-8s %.19s\n", name, scope, runtime,
	       running ? "running" : "stopped", size, digest);
}

static int parse_common(int argc, char **argv, const char **cache_dir, const char **scope,
			bool *all)
{
	static const struct option opts[] = {
		{"cache-dir", required_argument, NULL, 'c'},
		{"scope", required_argument, NULL, 's'},
		{"all", no_argument, NULL, 'a'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'c': *cache_dir = optarg; break;
		case 's': *scope = optarg; break;
		case 'a': if (all) { *all = true; break; } return -1;
		default: return -1;
		}
	}
	return 0;
}

int cmd_ps(int argc, char **argv)
{
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_cache cache = {.dir_fd = -1};
	const char *cache_dir = NULL, *scope = NULL;

	if (parse_common(argc, argv, &cache_dir, &scope, NULL) < 0 || optind != argc) {
		fputs("usage: berth ps [--cache-dir DIR]\n", stderr);
		return 2;
	}
	int rc = cli_open_user_cache(cache_dir, &cfg, &cache, &err);
	if (rc == 0) {
		printf("%-24s %-12s %-12s %-8s %-8s %s\n", "NAME", "SCOPE", "RUNTIME", "STATE",
		       "CHANGES", "IMAGE");
		rc = berth_named_list(&cache, print_one, NULL, &err);
	}
	if (rc < 0)
		cli_error(&err);
	berth_cache_close(&cache);
	berth_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}

/* The scope a name lives in when none is given: the only one that has it. */
struct find_ctx {
	const char *name;
	char scope[64];
	int found;
};

static void find_scope(void *ctx, const char *scope, const char *name, const char *digest,
		       const char *runtime, bool running, unsigned long long bytes)
{
	struct find_ctx *f = ctx;

	(void)digest, (void)runtime, (void)running, (void)bytes;
	if (strcmp(name, f->name) != 0)
		return;
	snprintf(f->scope, sizeof(f->scope), "%s", scope);
	f->found++;
}

static int remove_one(struct berth_cache *cache, const char *scope, const char *name,
		      struct berth_err *err)
{
	struct find_ctx f = {.name = name};

	if (!scope) {
		if (berth_named_list(cache, find_scope, &f, err) < 0)
			return -1;
		if (f.found == 0)
			return berth_fail(err, 0, "no container named %s (berth ps lists them)", name);
		if (f.found > 1)
			return berth_fail(err, 0, "%s exists in %d scopes; say which with --scope",
					  name, f.found);
		scope = f.scope;
	}
	return berth_named_remove(cache, scope, name, err);
}

int cmd_rm(int argc, char **argv)
{
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_cache cache = {.dir_fd = -1};
	const char *cache_dir = NULL, *scope = NULL;
	bool all = false;

	if (parse_common(argc, argv, &cache_dir, &scope, &all) < 0 ||
	    (all ? !scope || optind != argc : optind == argc)) {
		fputs("usage: berth rm [--cache-dir DIR] [--scope job-ID|user] NAME...\n"
		      "       berth rm [--cache-dir DIR] --scope SCOPE --all\n", stderr);
		return 2;
	}
	if (scope && (strchr(scope, '/') || scope[0] == '.' || !scope[0])) {
		fprintf(stderr, "berth: --scope %s: write job-ID or user\n", scope);
		return 2;
	}
	int rc = cli_open_user_cache(cache_dir, &cfg, &cache, &err);
	if (rc == 0 && all)
		rc = berth_named_remove_scope(&cache, scope, &err);
	for (int i = optind; rc == 0 && !all && i < argc; i++)
		rc = remove_one(&cache, scope, argv[i], &err);
	if (rc < 0)
		cli_error(&err);
	berth_cache_close(&cache);
	berth_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}
