/* berth inspect --cached and berth cache rm: one runtime's staged form of
 * an image (its artifact in the cache; docker: the image in dockerd),
 * through the executor interface's CheckImageIsLoaded and ImageRemove. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/executor.h"
#include "executor/base/hex.h"
#include "cli/cli.h"

/* What both commands take: --runtime R, --cache-dir DIR, IMAGE. */
struct image_args {
	const char *runtime, *cache_dir, *image;
};

static int parse_image_args(int argc, char **argv, struct image_args *a)
{
	static const struct option opts[] = {
		{"runtime", required_argument, NULL, 'r'},
		{"cache-dir", required_argument, NULL, 'c'},
		{"cached", no_argument, NULL, 'C'},
		{NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'r')
			a->runtime = optarg;
		else if (c == 'c')
			a->cache_dir = optarg;
		else if (c != 'C')
			return -1;
	}
	if (optind != argc - 1)
		return -1;
	a->image = argv[optind];
	return 0;
}

/* The image's digest without staging it: a sha256:HEX digest as given; a
 * registry image resolved (as berth inspect does); an archive
 * (PATH[#REPO:TAG]) read for its config digest, or remembered from the
 * last read while the file is unchanged. */
static int image_digest(struct berth_executor *ex, const char *text,
			char digest[BERTH_DIGEST_LEN + 1], struct berth_err *err)
{
	struct berth_image img;
	char pinned[72] = "";
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *tag = NULL;

	if (!strncmp(text, "sha256:", 7) && berth_is_hex(text + 7, 64) && !text[71]) {
		snprintf(digest, BERTH_DIGEST_LEN + 1, "%s", text);
		return 0;
	}
	int reg = cli_open_registry_image(text, &img, pinned, err);
	if (reg < 0)
		return -1;
	if (reg == 0) {
		snprintf(digest, BERTH_DIGEST_LEN + 1, "%s", img.digest);
		berth_image_close(&img);
		return 0;
	}
	if (berth_image_ref_split(text, &path, &tag, err) < 0)
		return -1;
	if (berth_cache_ref_lookup(&ex->cache, path, tag, digest))
		return 0;
	char work[] = "/tmp/berth-inspect.XXXXXX";
	if (!mkdtemp(work))
		return berth_fail(err, errno, "mkdtemp");
	int rc = berth_image_open(&img, path, tag, work, err);
	rmdir(work);
	if (rc < 0)
		return -1;
	snprintf(digest, BERTH_DIGEST_LEN + 1, "%s", img.digest);
	berth_image_close(&img);
	return 0;
}

static int open_image(const struct image_args *a, struct berth_config *cfg,
		      struct berth_executor **ex, char digest[BERTH_DIGEST_LEN + 1],
		      struct berth_err *err)
{
	enum berth_runtime rt = BERTH_RT_NONE;

	if (cli_load_config(cfg, err) < 0 ||
	    berth_config_pick_runtime(cfg, a->runtime, &rt, err) < 0 ||
	    berth_executor_new(berth_runtime_name(rt), cfg, a->cache_dir, ex, err) < 0)
		return -1;
	return image_digest(*ex, a->image, digest, err);
}

/* berth inspect --cached: 0 staged for this runtime, 1 not, 2 an error. */
int cli_inspect_cached(int argc, char **argv)
{
	struct image_args a = {0};
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_executor *ex = NULL;
	char digest[BERTH_DIGEST_LEN + 1];
	bool loaded = false;
	int rc = 2;

	if (parse_image_args(argc, argv, &a) < 0) {
		fputs("usage: berth inspect --cached [--runtime R] [--cache-dir DIR] IMAGE\n",
		      stderr);
		return 2;
	}
	berth_config_defaults(&cfg);
	if (open_image(&a, &cfg, &ex, digest, &err) == 0 &&
	    berth_executor_image_loaded(ex, digest, &loaded, &err) == 0) {
		printf("%s %s\n", digest, loaded ? "cached" : "not-cached");
		rc = loaded ? 0 : 1;
	} else {
		cli_error(&err);
	}
	berth_executor_destroy(ex);
	berth_config_free(&cfg);
	return rc;
}

/* berth cache rm: 0 removed, 1 an error (not there, in use, ...). */
int cli_cache_rm(int argc, char **argv)
{
	struct image_args a = {0};
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_executor *ex = NULL;
	char digest[BERTH_DIGEST_LEN + 1];
	int rc = 1;

	if (parse_image_args(argc, argv, &a) < 0) {
		fputs("usage: berth cache rm [--runtime R] [--cache-dir DIR] IMAGE\n", stderr);
		return 2;
	}
	berth_config_defaults(&cfg);
	if (open_image(&a, &cfg, &ex, digest, &err) == 0 &&
	    berth_executor_remove_image(ex, digest, &err) == 0) {
		printf("%s removed (%s)\n", digest, ex->ops->name);
		rc = 0;
	} else {
		cli_error(&err);
	}
	berth_executor_destroy(ex);
	berth_config_free(&cfg);
	return rc;
}
