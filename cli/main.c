#define _GNU_SOURCE
/* berth: pull, inspect and run container images; also the per-task
 * launcher the Slurm plugin execs (`berth launch`, see launch.c). */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "executor/cache/cache.h"
#include "executor/executor.h"
#include "executor/source/image.h"
#include "cli/cli.h"

static const char usage[] =
	"usage: berth COMMAND [ARGS]\n"
	"\n"
	"  pull [--runtime R] [--cache-dir DIR] IMAGE\n"
	"                                   stage IMAGE (a docker-save archive\n"
	"                                   PATH[#REPO:TAG], a URL of one, or a\n"
	"                                   registry image: ubuntu:22.04,\n"
	"                                   docker://REG/REPO:TAG, REG#REPO:TAG)\n"
	"                                   into your cache\n"
	"  resolve IMAGE                    the registry image pinned to its digest\n"
	"  login [--username U] REGISTRY    store credentials (password on stdin)\n"
	"  inspect [--json] IMAGE           show digest, layers and config\n"
	"  run --runtime R --image IMAGE [--bind SRC:DST[:ro|rw]] [--workdir D]\n"
	"      [--env K=V] [--env-pass NAME] [--writable] [--mount-home] -- CMD...\n"
	"                                   run CMD in a container\n"
	"  cache ls [--cache-dir DIR]       list cached images: digest, size, last use,\n"
	"                                   source\n"
	"  cache gc [--cache-dir DIR] [--max-size SIZE]\n"
	"                                   evict least recently used images above SIZE\n"
	"                                   (default CacheMaxSize); never one in use\n"
	"  cache verify [--cache-dir DIR] [--repair]\n"
	"                                   re-hash cached images against their\n"
	"                                   manifests; a corrupt one is rebuilt at its\n"
	"                                   next use (--repair: removed now)\n"
	"  ps [--cache-dir DIR]             list your named containers (--container-name)\n"
	"  rm [--scope job-ID|user] NAME... remove named containers (not while running)\n"
	"  rm --scope SCOPE --all           remove every container of a scope\n"
	"  config                           print the effective configuration\n"
	"  version                          print the version\n"
	"  launch ...                       per-task launcher used by the Slurm\n"
	"                                   plugin (see spank_berth(8))\n";

int cli_parse_fd(const char *text)
{
	char *end;

	errno = 0;
	long fd = strtol(text, &end, 10);
	if (errno || end == text || *end || fd < 3 || fd > 65535)
		return -1;
	return (int)fd;
}

void cli_error(const struct berth_err *err)
{
	fprintf(stderr, "berth: %s\n", err->msg);
}

int cli_load_config(struct berth_config *cfg, struct berth_err *err)
{
	const char *path = getenv("BERTH_CONFIG");
	const char *text = getenv("BERTH_CONFIG_TEXT");

	berth_config_defaults(cfg);
	/* Set by the plugin: the site's settings, plugstack arguments included. */
	if (text)
		return berth_config_load_text(cfg, "the plugin's settings", text, err) < 0 ? -1 : 0;
	if (berth_config_load_file(cfg, path ? path : BERTH_DEFAULT_CONFIG_FILE,
				   path != NULL, err) < 0)
		return -1;
	return berth_config_load_args(cfg, 0, NULL, err);
}

static void print_list(const char *label, char **items, size_t n)
{
	printf("%-12s", label);
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? " " : "", items[i]);
	printf("\n");
}

static struct json_object *json_strings(char **items, size_t n)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(items[i]));
	return arr;
}

/* {"digest", "tags", "layers": [{"member", "digest"}], "config": {...}} */
static void print_json(const struct berth_image *img)
{
	struct json_object *out = json_object_new_object();
	struct json_object *layers = json_object_new_array();
	struct json_object *config = json_tokener_parse(img->config_json);

	for (size_t i = 0; i < img->n_layers; i++) {
		struct json_object *layer = json_object_new_object();
		json_object_object_add(layer, "member",
				       json_object_new_string(img->layers[i].entry));
		json_object_object_add(layer, "digest",
				       json_object_new_string(img->layers[i].digest));
		json_object_array_add(layers, layer);
	}
	json_object_object_add(out, "digest", json_object_new_string(img->digest));
	json_object_object_add(out, "tags", json_strings(img->tags, img->n_tags));
	json_object_object_add(out, "layers", layers);
	json_object_object_add(out, "config", config);
	puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(out);
}

static int cmd_inspect(int argc, char **argv)
{
	struct berth_err err = {0};
	struct berth_image img;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *tag = NULL;
	int json = argc > 2 && !strcmp(argv[1], "--json");
	const char *ref = argv[argc - 1];

	if (argc < 2 || argc > 3 || (argc == 3 && !json)) {
		fputs("usage: berth inspect [--json] IMAGE\n", stderr);
		return 2;
	}
	char work[] = "/tmp/berth-inspect.XXXXXX";
	if (!mkdtemp(work)) {
		berth_fail(&err, errno, "mkdtemp");
		cli_error(&err);
		return 1;
	}
	char pinned[72] = "";
	int reg = cli_open_registry_image(ref, &img, pinned, &err);
	int rc = reg < 0 || (reg == 1 && (berth_image_ref_split(ref, &path, &tag, &err) < 0 ||
					  berth_image_open(&img, path, tag, work, &err) < 0));
	rmdir(work);
	if (rc) {
		cli_error(&err);
		return 1;
	}
	if (json) {
		print_json(&img);
	} else {
		printf("%-12s%s\n", "digest", img.digest);
		if (pinned[0])
			printf("%-12s%s\n", "pinned", pinned);
		print_list("tags", img.tags, img.n_tags);
		for (size_t i = 0; i < img.n_layers; i++)
			printf("%-12s%s\n", i ? "" : "layers", img.layers[i].entry);
		print_list("env", img.env, img.n_env);
		printf("%-12s%s\n", "workdir", img.workdir ? img.workdir : "");
		print_list("entrypoint", img.entrypoint, img.n_entrypoint);
		print_list("cmd", img.cmd, img.n_cmd);
		printf("%-12s%s\n", "user", img.user ? img.user : "");
		print_list("labels", img.labels, img.n_labels);
	}
	berth_image_close(&img);
	return 0;
}

/* Progress on stderr, at most a line a second (the fetcher throttles). */
static void show_progress(void *ctx, const char *what, uint64_t done, uint64_t total)
{
	(void)ctx;
	if (total && total < 1048576)
		fprintf(stderr, "berth: %s: %.0f of %.0f KiB (%d%%)\n", what,
			(double)done / 1024, (double)total / 1024, (int)(done * 100 / total));
	else if (total)
		fprintf(stderr, "berth: %s: %.1f of %.1f MiB (%d%%)\n", what,
			(double)done / 1048576, (double)total / 1048576,
			(int)(done * 100 / total));
	else
		fprintf(stderr, "berth: %s: %.1f MiB\n", what, (double)done / 1048576);
}

static int cmd_pull(int argc, char **argv)
{
	static const struct option opts[] = {
		{"cache-dir", required_argument, NULL, 'c'},
		{"runtime", required_argument, NULL, 'r'},
		{"singularity", required_argument, NULL, 's'},
		{"singularity-format", required_argument, NULL, 'f'},
		{"pin", required_argument, NULL, 'p'},
		{NULL, 0, NULL, 0},
	};
	static const char pull_usage[] =
		"usage: berth pull [--runtime R] [--cache-dir DIR] [--singularity PATH]\n"
		"                  [--singularity-format auto|sif|sandbox] IMAGE\n";
	const char *singularity = NULL, *sing_format = NULL, *pin = NULL;
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_executor *ex = NULL;
	const char *cache_dir = NULL, *runtime = NULL;
	struct berth_stage_result res;
	int c, rc = 1;

	berth_config_defaults(&cfg);
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'c')
			cache_dir = optarg;
		else if (c == 'r')
			runtime = optarg;
		else if (c == 's')
			singularity = optarg;
		else if (c == 'f')
			sing_format = optarg;
		else if (c == 'p')
			pin = optarg; /* the plugin's: a URL pinned at submission */
		else {
			fputs(pull_usage, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(pull_usage, stderr);
		return 2;
	}
	int loaded = cli_load_config(&cfg, &err);
	if (singularity) /* the plugin passes the site's values */
		snprintf(cfg.singularity_path, sizeof(cfg.singularity_path), "%s", singularity);
	if (sing_format && berth_sing_format_parse(sing_format, &cfg.sing_format) < 0) {
		fprintf(stderr, "berth: --singularity-format must be auto, sif or sandbox\n");
		berth_config_free(&cfg);
		return 2;
	}
	enum berth_runtime rt = BERTH_RT_NONE;
	if (loaded == 0 &&
	    berth_config_pick_runtime(&cfg, runtime, &rt, &err) == 0 &&
	    berth_executor_new(berth_runtime_name(rt), &cfg, cache_dir, &ex, &err) == 0 &&
	    (ex->cache.progress = show_progress, ex->cache.url_pin = pin, true) &&
	    berth_executor_load_image(ex, argv[optind], &res, &err) == 0) {
		/* One line for machines (the plugin reads it), details on stderr. */
		printf("%s %s\n", res.digest[0] ? res.digest : argv[optind],
		       res.converted ? "converted" : res.digest[0] ? "cached" : "as-is");
		if (res.converted && res.stats.skipped_devices)
			fprintf(stderr, "berth: skipped %llu device nodes/fifos\n",
				(unsigned long long)res.stats.skipped_devices);
		rc = 0;
	} else {
		cli_error(&err);
	}
	berth_executor_destroy(ex);
	berth_config_free(&cfg);
	return rc;
}

/* Shared by the cache subcommands: config + the caller's cache. */
int cli_open_user_cache(const char *cache_dir, struct berth_config *cfg,
			struct berth_cache *cache, struct berth_err *err)
{
	cache->dir_fd = -1;
	if (cli_load_config(cfg, err) < 0)
		return -1;
	return berth_cache_open(cache, cache_dir ? cache_dir : cfg->cache_dir,
				getuid(), err);
}

void cli_print_size(unsigned long long bytes, char *out, size_t cap)
{
	static const char units[] = "BKMGT";
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, cap, u ? "%.1f%c" : "%.0f%c", v, units[u]);
}

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
		cli_print_size(list[i].size, size, sizeof(size));
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
	cli_print_size(freed, size, sizeof(size));
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
	return !strcmp(sub, "ls") || !strcmp(sub, "gc") || !strcmp(sub, "verify");
}

static int cmd_cache(int argc, char **argv)
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

	if (argc < 2 || !cache_sub_known(argv[1])) {
		fputs("usage: berth cache ls|gc|verify [--cache-dir DIR] [--max-size SIZE] "
		      "[--repair]\n", stderr);
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
	if (rc == 0)
		rc = !strcmp(sub, "ls")	    ? cache_ls(&cache, &err)
		     : !strcmp(sub, "gc") ? cache_gc(&cache, &cfg, max, &err)
					  : cache_verify(&cache, repair, &err);
	if (rc < 0)
		cli_error(&err);
	berth_cache_close(&cache);
	berth_config_free(&cfg);
	return rc < 0 ? 1 : rc;
}

/* berth fetch: download a URL image into the cache (a path is printed as
 * it is); the plugin uses it so the job user fetches, not root. */
static int cmd_fetch(int argc, char **argv)
{
	static const struct option opts[] = {
		{"cache-dir", required_argument, NULL, 'c'},
		{"pin", required_argument, NULL, 'p'},
		{NULL, 0, NULL, 0},
	};
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_cache cache = {.dir_fd = -1};
	const char *cache_dir = NULL, *pin = NULL;
	char *path = NULL, *tag = NULL;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'c')
			cache_dir = optarg;
		else if (c == 'p')
			pin = optarg;
		else
			return 2;
	}
	if (optind != argc - 1) {
		fputs("usage: berth fetch [--cache-dir DIR] IMAGE\n", stderr);
		return 2;
	}
	if (cli_open_user_cache(cache_dir, &cfg, &cache, &err) == 0) {
		berth_cache_configure(&cache, &cfg);
		cache.url_pin = pin;
		cache.progress = show_progress;
		if (berth_cache_resolve(&cache, argv[optind], &path, &tag, &err) == 0) {
			printf("%s%s%s\n", path, tag ? "#" : "", tag ? tag : "");
			rc = 0;
		}
	}
	if (rc)
		cli_error(&err);
	free(path);
	free(tag);
	berth_cache_close(&cache);
	berth_config_free(&cfg);
	return rc;
}

static int cmd_config(void)
{
	struct berth_err err = {0};
	struct berth_config cfg;

	if (cli_load_config(&cfg, &err) < 0) {
		cli_error(&err);
		return 1;
	}
	berth_config_print(&cfg, stdout);
	/* What auto means on this machine, as a comment: the output stays a
	 * valid berth.conf. */
	char why[PATH_MAX + 256];
	enum berth_sing_format f = berth_singularity_choose_format(&cfg, why, sizeof(why));
	printf("# singularity images here: %s (%s)\n", berth_sing_format_name(f), why);
	berth_config_free(&cfg);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	argc--;
	argv++;
	if (!strcmp(cmd, "pull"))
		return cmd_pull(argc, argv);
	if (!strcmp(cmd, "inspect"))
		return cmd_inspect(argc, argv);
	if (!strcmp(cmd, "run"))
		return cmd_run(argc, argv);
	if (!strcmp(cmd, "launch"))
		return cmd_launch(argc, argv);
	if (!strcmp(cmd, "fetch"))
		return cmd_fetch(argc, argv);
	if (!strcmp(cmd, "resolve"))
		return cmd_resolve(argc, argv);
	if (!strcmp(cmd, "login"))
		return cmd_login(argc, argv);
	if (!strcmp(cmd, "docker"))
		return cmd_docker(argc, argv);
	if (!strcmp(cmd, "cache"))
		return cmd_cache(argc, argv);
	if (!strcmp(cmd, "config"))
		return cmd_config();
	if (!strcmp(cmd, "ps"))
		return cmd_ps(argc, argv);
	if (!strcmp(cmd, "rm"))
		return cmd_rm(argc, argv);
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("berth %s\n", BERTH_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help")) {
		fputs(usage, stdout);
		return 0;
	}
	fprintf(stderr, "berth: unknown command '%s'\n%s", cmd, usage);
	return 2;
}
