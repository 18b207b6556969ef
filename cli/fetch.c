/* berth fetch: a URL image downloaded into the caller's cache, for the
 * plugin. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "executor/cache/cache.h"
#include "cli/cli.h"

/* berth fetch: download a URL image into the cache (a path is printed as
 * it is, a compressed archive as its uncompressed copy in the cache); the
 * plugin uses it so the job user fetches and decompresses, not root. */
int cmd_fetch(int argc, char **argv)
{
	static const struct option opts[] = {
		{"cache-dir", required_argument, NULL, 'c'},
		{"pin", required_argument, NULL, 'p'},
		{"image-stdin", no_argument, NULL, 'i'},
		{NULL, 0, NULL, 0},
	};
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_cache cache = {.dir_fd = -1};
	const char *cache_dir = NULL, *pin = NULL;
	char *path = NULL, *tag = NULL;
	char image_buf[BERTH_IMAGE_MAX + 2];
	bool image_stdin = false;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'c')
			cache_dir = optarg;
		else if (c == 'p')
			pin = optarg;
		else if (c == 'i')
			image_stdin = true; /* the plugin's: the URL is no one else's business */
		else
			return 2;
	}
	const char *image = cli_image_operand(image_stdin, argc, argv, optind, image_buf,
					      sizeof(image_buf));
	if (!image) {
		fputs("usage: berth fetch [--cache-dir DIR] [--pin PIN] IMAGE | --image-stdin\n",
		      stderr);
		return 2;
	}
	if (cli_open_user_cache(cache_dir, &cfg, &cache, &err) == 0) {
		berth_cache_configure(&cache, &cfg);
		cache.url_pin = pin;
		cache.progress = cli_show_progress;
		/* Docker's root-side loader takes the archive uncompressed:
		 * the job user decompresses it here, into their own cache. */
		if (berth_cache_resolve(&cache, image, &path, &tag, &err) == 0 &&
		    berth_cache_plain_archive(&cache, &path, &err) == 0) {
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
