/* berth pull: stage an image (an archive, a URL of one or a registry
 * image) into the caller's cache, through the executor interface. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "executor/executor.h"
#include "cli/cli.h"

int cmd_pull(int argc, char **argv)
{
	static const struct option opts[] = {
		{"cache-dir", required_argument, NULL, 'c'},
		{"runtime", required_argument, NULL, 'r'},
		{"singularity", required_argument, NULL, 's'},
		{"singularity-format", required_argument, NULL, 'f'},
		{"pin", required_argument, NULL, 'p'},
		{"image-stdin", no_argument, NULL, 'i'},
		{NULL, 0, NULL, 0},
	};
	static const char pull_usage[] =
		"usage: berth pull [--runtime R] [--cache-dir DIR] [--singularity PATH]\n"
		"                  [--singularity-format auto|sif|sandbox] IMAGE | --image-stdin\n";
	const char *singularity = NULL, *sing_format = NULL, *pin = NULL;
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_executor *ex = NULL;
	const char *cache_dir = NULL, *runtime = NULL;
	struct berth_stage_result res;
	char image_buf[BERTH_IMAGE_MAX + 2];
	bool image_stdin = false;
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
		else if (c == 'i')
			image_stdin = true;
		else {
			fputs(pull_usage, stderr);
			return 2;
		}
	}
	const char *image = cli_image_operand(image_stdin, argc, argv, optind, image_buf,
					      sizeof(image_buf));
	if (!image) {
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
	    (ex->cache.progress = cli_show_progress, ex->cache.url_pin = pin, true) &&
	    berth_executor_load_image(ex, image, &res, &err) == 0) {
		/* One line for machines (the plugin reads it), details on stderr. */
		if (res.damaged[0])
			fprintf(stderr, "berth: the cached copy of %s was damaged (%s); %s\n",
				image, res.damaged, res.converted ? "rebuilt it" : "another "
				"job rebuilt it");
		printf("%s %s\n", res.digest[0] ? res.digest : ex->raw_image ? ex->raw_image : image,
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
