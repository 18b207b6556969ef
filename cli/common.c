/* berth: what the commands share: error output, loading the site
 * configuration, opening the caller's cache, sizes, fd arguments and
 * download progress. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/cache/cache.h"
#include "executor/executor.h"
#include "executor/runtime/cdi.h"
#include "cli/cli.h"

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

/* Progress on stderr, at most a line a second (the fetcher throttles). */
void cli_show_progress(void *ctx, const char *what, uint64_t done, uint64_t total)
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

const char *cli_image_operand(bool from_stdin, int argc, char **argv, int first,
			      char *buf, size_t cap)
{
	if (!from_stdin)
		return first == argc - 1 ? argv[first] : NULL;
	if (first != argc)
		return NULL;
	if (!fgets(buf, (int)cap, stdin) || (!strchr(buf, '\n') && !feof(stdin))) {
		fprintf(stderr, "berth: --image-stdin: %s; give the image as one line of at "
			"most %zu bytes on stdin\n",
			ferror(stdin) ? "cannot read stdin" : feof(stdin) ? "stdin is empty"
								 : "the line is too long",
			cap - 2);
		return NULL;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0]) {
		fputs("berth: --image-stdin: the line on stdin is empty; give the image there\n",
		      stderr);
		return NULL;
	}
	return buf;
}

int cli_failed_status(const struct berth_executor *ex)
{
	int refused = berth_executor_refused(ex);

	return refused ? refused : CLI_EXIT_BERTH;
}

/* "K=V" into a malloc'd environment vector, replacing K's value. */
static int env_put(char ***env, const char *kv, struct berth_err *err)
{
	size_t klen = strcspn(kv, "="), n = 0;

	for (; (*env)[n]; n++) {
		if (!strncmp((*env)[n], kv, klen + 1)) {
			char *copy = strdup(kv);
			if (!copy)
				return berth_fail(err, ENOMEM, "environment");
			free((*env)[n]);
			(*env)[n] = copy;
			return 0;
		}
	}
	char **more = realloc(*env, (n + 2) * sizeof(char *));
	if (!more)
		return berth_fail(err, ENOMEM, "environment");
	*env = more;
	if (!(more[n] = strdup(kv)))
		return berth_fail(err, ENOMEM, "environment");
	more[n + 1] = NULL;
	return 0;
}

int cli_apply_devices(const char *runtime, const struct berth_cdi_plan *plan,
		      struct berth_mount *binds, size_t *n_binds, size_t cap, char ***env,
		      struct berth_err *err)
{
	bool host_dev = !strcmp(runtime, "charliecloud"), docker = !strcmp(runtime, "docker");

	for (size_t i = 0; i < plan->edits.n_env; i++)
		if (env_put(env, plan->edits.env[i], err) < 0)
			return -1;
	if (plan->ld_path) { /* update-ldcache's folders, after the image's own */
		const char *old = NULL;
		for (size_t i = 0; (*env)[i] && !old; i++)
			if (!strncmp((*env)[i], "LD_LIBRARY_PATH=", 16))
				old = (*env)[i] + 16;
		_cleanup_free_ char *kv = NULL;
		if (asprintf(&kv, "LD_LIBRARY_PATH=%s%s%s", old && *old ? old : "",
			     old && *old ? ":" : "", plan->ld_path) < 0 || env_put(env, kv, err) < 0)
			return berth_fail(err, ENOMEM, "environment");
	}
	for (size_t i = 0; i < plan->edits.n_mounts; i++) {
		const struct berth_mount *m = &plan->edits.mounts[i];
		bool node = false;
		for (size_t j = 0; j < plan->edits.n_nodes && !node; j++)
			node = !strcmp(plan->edits.nodes[j], m->dst);
		if (node && host_dev && !strcmp(m->src, m->dst) && !strncmp(m->dst, "/dev/", 5))
			continue;
		if (node && docker)
			continue; /* HostConfig.Devices (cli/docker.c) */
		if (*n_binds >= cap)
			return berth_fail(err, 0, "too many mounts with the devices' own");
		binds[*n_binds] = *m;
		/* docker: a spec's file is site configuration, opened by the
		 * root-side monitor itself, not as the user */
		binds[*n_binds].berth_own = docker || m->berth_own;
		/* Docker binds take no nosuid/nodev; its containers run with
		 * no-new-privileges and reach devices only through Devices */
		if (docker)
			binds[*n_binds].flags &= ~(unsigned)(BERTH_MNT_NOSUID | BERTH_MNT_NODEV);
		binds[*n_binds].src = strdup(m->src);
		binds[*n_binds].dst = strdup(m->dst);
		if (!binds[(*n_binds)++].dst || !binds[*n_binds - 1].src)
			return berth_fail(err, ENOMEM, "mounts");
	}
	return 0;
}
