/* berth inspect: an image's digest, tags, layers and config, as text or
 * JSON; a registry image is pulled into the caller's cache first. */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/executor.h"
#include "cli/cli.h"

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

int cmd_inspect(int argc, char **argv)
{
	struct berth_err err = {0};
	struct berth_image img;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *tag = NULL;
	int json = argc > 2 && !strcmp(argv[1], "--json");
	const char *ref = argv[argc - 1];

	for (int i = 1; i < argc - 1; i++)
		if (!strcmp(argv[i], "--cached"))
			return cli_inspect_cached(argc, argv);
	if (argc < 2 || argc > 3 || (argc == 3 && !json)) {
		fputs("usage: berth inspect [--json] IMAGE\n"
		      "       berth inspect --cached [--runtime R] [--cache-dir DIR] IMAGE\n",
		      stderr);
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
