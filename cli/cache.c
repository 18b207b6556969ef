/* berth cache ls|gc|verify|sweep|rm: the caller's cache of images (rm:
 * images.c). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor/cache/cache.h"
#include "cli/cli.h"

static int cache_ls(struct berth_cache *cache, struct berth_err *err)
{
	struct berth_cache_entry *list = NULL;
	size_t n = 0;
	char size[32], when[32];

	if (berth_cache_list(cache, &list, &n, err) < 0)
		return -1;
	printf("%-71s %8s  %-19s  %s\n", "DIGEST", "SIZE", "LAST USE", "SOURCE");
	for (size_t i = n; i-- > 0;) { /* most recent first */
		time_t t = (time_t)list[i].last_use;
		struct tm tm;
		berth_format_size(list[i].size, size, sizeof(size));
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		printf("%-71s %8s  %-19s  %s%s\n", list[i].digest, size, when,
		       list[i].source, list[i].in_use ? "  (in use)" : "");
	}
	free(list);
	return 0;
}

static int cache_gc(struct berth_cache *cache, const struct berth_config *cfg,
		    const char *max_text, struct berth_err *err)
{
	uint64_t max = cfg->cache_max_size;
	unsigned long long freed;
	size_t evicted;
	char size[32];

	if (max_text && berth_parse_size(max_text, &max) < 0)
		return berth_fail(err, 0, "--max-size '%s' is not a size (use e.g. "
				  "500M, 20G)", max_text);
	if (!max_text && max == 0)
		return berth_fail(err, 0, "no size limit: pass --max-size SIZE or set "
				  "CacheMaxSize in berth.conf");
	if (berth_cache_gc(cache, max, &freed, &evicted, err) < 0)
		return -1;
	berth_format_size(freed, size, sizeof(size));
	printf("evicted %zu image(s), freed %s\n", evicted, size);
	return 0;
}

static void print_verified(void *ctx, const struct berth_verify_result *r)
{
	(void)ctx;
	if (r->state == BERTH_VERIFY_OK)
		printf("%s ok\n", r->digest);
	else if (r->state == BERTH_VERIFY_NO_MANIFEST)
		printf("%s no manifest (%s was built by an older berth; not checked)\n",
		       r->digest, r->path);
	else
		printf("%s CORRUPT: %s (%s)%s\n", r->digest, r->path, r->how,
		       r->removed ? ", removed" : ", rebuilt at its next use");
}

/* 0 all whole, 1 an error, 3 a corrupt entry found. */
static int cache_verify(struct berth_cache *cache, bool repair, struct berth_err *err)
{
	size_t corrupt = 0;

	if (berth_cache_verify(cache, repair, print_verified, NULL, &corrupt, err) < 0)
		return -1;
	if (corrupt)
		fprintf(stderr, "berth: %zu cached image(s) corrupt; %s\n", corrupt,
			repair ? "removed unless in use, rebuilt at their next use"
			       : "no job runs them, each is rebuilt at its next use "
				 "(or now: berth cache verify --repair)");
	return corrupt ? 3 : 0;
}

static bool cache_sub_known(const char *sub)
{
	return !strcmp(sub, "ls") || !strcmp(sub, "gc") || !strcmp(sub, "verify") ||
	       !strcmp(sub, "sweep");
}

int cmd_cache(int argc, char **argv)
{
	static const struct option opts[] = {
		{"cache-dir", required_argument, NULL, 'c'},
		{"max-size", required_argument, NULL, 'm'},
		{"repair", no_argument, NULL, 'r'},
		{NULL, 0, NULL, 0},
	};
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_cache cache = {.dir_fd = -1};
	const char *cache_dir = NULL, *max = NULL;
	bool repair = false;
	int c, rc;

	if (argc >= 2 && !strcmp(argv[1], "rm"))
		return cli_cache_rm(argc - 1, argv + 1);
	if (argc < 2 || !cache_sub_known(argv[1])) {
		fputs("usage: berth cache ls|gc|verify|sweep [--cache-dir DIR] [--max-size SIZE] "
		      "[--repair]\n"
		      "       berth cache rm [--runtime R] [--cache-dir DIR] IMAGE\n", stderr);
		return 2;
	}
	const char *sub = argv[1];
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'c')
			cache_dir = optarg;
		else if (c == 'm' && !strcmp(sub, "gc"))
			max = optarg;
		else if (c == 'r' && !strcmp(sub, "verify"))
			repair = true;
		else
			return 2;
	}
	rc = cli_open_user_cache(cache_dir, &cfg, &cache, &err);
	if (rc == 0 && !strcmp(sub, "sweep"))
		berth_cache_sweep(&cache); /* leftovers of stopped stagers */
	else if (rc == 0)
		rc = !strcmp(sub, "ls")	    ? cache_ls(&cache, &err)
		     : !strcmp(sub, "gc") ? cache_gc(&cache, &cfg, max, &err)
					  : cache_verify(&cache, repair, &err);
	if (rc < 0)
		cli_error(&err);
	berth_cache_close(&cache);
	berth_config_free(&cfg);
	return rc < 0 ? 1 : rc;
}
