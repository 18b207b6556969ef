/* libFuzzer target: the parsers of what users and sites write.
 *   byte 0 picks one:
 *   0  --container-mounts with a submission folder: what parses must be
 *      absolute, clean, and come back the same from its canonical text
 *      (what the nodes get) read with no folder at all;
 *   1  --container-name: a parsed name is a safe file name;
 *   2  berth.conf text: what loads must print and load again to the same
 *      text (the plugin hands its settings to its commands that way);
 *   3  plugstack arguments, split on spaces as Slurm does.
 * Pure parsing: no file system, so millions of runs a minute. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "conf/mounts.h"
#include "conf/names.h"
#include "text.h"

static bool same_mount(const struct berth_mount *a, const struct berth_mount *b)
{
	return a->kind == b->kind && !strcmp(a->src, b->src) && !strcmp(a->dst, b->dst) &&
	       a->read_only == b->read_only && a->flags == b->flags &&
	       a->propagation == b->propagation && a->tmpfs_size == b->tmpfs_size &&
	       a->tmpfs_mode == b->tmpfs_mode && a->tmpfs_mode_set == b->tmpfs_mode_set &&
	       !strcmp(a->tmpfs_extra, b->tmpfs_extra);
}

static bool ends_with(const char *p, const char *tail)
{
	size_t n = strlen(p), t = strlen(tail);

	return n >= t && !strcmp(p + n - t, tail);
}

static bool clean_abs(const char *p)
{
	if (p[0] != '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../") ||
	    strchr(p, ':') || strchr(p, ','))
		return false;
	return !strcmp(p, "/") || (!ends_with(p, "/") && !ends_with(p, "/.") && !ends_with(p, "/.."));
}

static void mounts(const char *text)
{
	struct berth_err err = {0};
	struct berth_mount *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;

	if (berth_mounts_parse_list_at(text, "/submit/dir", &a, &na, &err) < 0)
		return;
	for (size_t i = 0; i < na; i++) {
		if (!clean_abs(a[i].dst) || strcmp(a[i].dst, "/") == 0)
			abort();
		if (a[i].kind == BERTH_MOUNT_BIND && !clean_abs(a[i].src))
			abort();
	}
	char *canonical = berth_mounts_format(a, na);
	if (!canonical || berth_mounts_parse_list(canonical, &b, &nb, &err) < 0 || na != nb)
		abort();
	for (size_t i = 0; i < na; i++)
		if (!same_mount(&a[i], &b[i]))
			abort();
	free(canonical);
	berth_mounts_free(a, na);
	berth_mounts_free(b, nb);
}

static void name(const char *text)
{
	struct berth_err err = {0};
	char out[BERTH_NAME_MAX];
	enum berth_name_mode mode;

	if (berth_name_parse(text, out, &mode, &err) < 0)
		return;
	if (!out[0] || strchr(out, '/') || out[0] == '.' || out[0] == '-' ||
	    strlen(out) >= BERTH_NAME_MAX || mode > BERTH_NAME_NO_EXEC)
		abort();
}

static void conf_text(const char *text)
{
	struct berth_err err = {0};
	struct berth_config a, b;

	berth_config_defaults(&a);
	berth_config_defaults(&b);
	if (berth_config_load_text(&a, "fuzz", text, &err) == 0) {
		char *t1 = berth_config_to_text(&a);
		if (!t1 || berth_config_load_text(&b, "again", t1, &err) < 0)
			abort();
		char *t2 = berth_config_to_text(&b);
		if (!t2 || strcmp(t1, t2) != 0)
			abort();
		free(t1);
		free(t2);
	}
	berth_config_free(&a);
	berth_config_free(&b);
}

static void plugstack_args(char *text)
{
	struct berth_err err = {0};
	struct berth_config cfg;
	char *argv[32];
	int argc = 0;

	for (char *tok = strtok(text, " \t\n"); tok && argc < 32; tok = strtok(NULL, " \t\n"))
		if (strncmp(tok, "Config=", 7) != 0) /* no file system here */
			argv[argc++] = tok;
	berth_config_defaults(&cfg);
	berth_config_load_args(&cfg, argc, argv, &err);
	berth_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned pick;
	char *text = fuzz_text(data, size, 8192, &pick);
	if (!text)
		return 0;
	switch (pick % 4) {
	case 0: mounts(text); break;
	case 1: name(text); break;
	case 2: conf_text(text); break;
	default: plugstack_args(text); break;
	}
	free(text);
	return 0;
}
