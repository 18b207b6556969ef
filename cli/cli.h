/* berth: the command.  What its commands share (common.c) and the
 * commands that main.c's table dispatches to, one file each. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "conf/error.h"

/* ---- shared by the commands (common.c) ---- */

/* The exit status of `berth run` and of a task (`berth launch`, the Docker
 * monitor) when berth itself or the runtime failed before the command
 * could start (bad image, cache, runtime, mounts; conf/error.h). */
#define CLI_EXIT_BERTH BERTH_EXIT_BERTH

/* The status for a run that failed before the command started: 126/127
 * when the command cannot run in the container, else CLI_EXIT_BERTH. */
struct berth_executor;
int cli_failed_status(const struct berth_executor *ex);

/* Print "berth: MSG" on stderr. */
void cli_error(const struct berth_err *err);

/* Load the site configuration the way every subcommand does:
 * defaults, then BERTH_CONFIG or /etc/slurm/berth.conf (optional). */
int cli_load_config(struct berth_config *cfg, struct berth_err *err);

/* A file descriptor number given on the command line (> 2), or -1. */
int cli_parse_fd(const char *text);

struct berth_cache;
/* Open the calling user's cache under cache_dir (NULL: the site's). */
int cli_open_user_cache(const char *cache_dir, struct berth_config *cfg,
			struct berth_cache *cache, struct berth_err *err);
/* 1536 -> "1.5K" */

/* Progress on stderr, at most a line a second (the fetcher throttles):
 * the cache's progress callback for berth pull and berth fetch. */
void cli_show_progress(void *ctx, const char *what, uint64_t done, uint64_t total);

/* The IMAGE operand: argv[first], the last argument; or, from_stdin
 * (--image-stdin), one line read from stdin into buf, when no operand is
 * given.  The plugin passes images that way, so that a URL's password or
 * signature is never on a command line (every user on the node can read
 * /proc/PID/cmdline).  NULL on a usage error (a stdin error is reported). */
const char *cli_image_operand(bool from_stdin, int argc, char **argv, int first,
			      char *buf, size_t cap);

struct berth_image;
/* A registry reference pulled into the user's cache and opened (berth
 * inspect; registry.c); 1 when `text` is not one. */
int cli_open_registry_image(const char *text, struct berth_image *img, char pinned[72],
			    struct berth_err *err);

struct berth_cdi_plan;
struct berth_mount;
/* The devices' edits (runtime/cdi.h) into a container's binds (room for
 * `cap`) and environment (a malloc'd vector; their values win).  A device
 * node charliecloud already shows (it binds the host's /dev) is not bound
 * again; the specs' other nodes are hidden there (spec.hide_nodes). */
int cli_apply_devices(const char *runtime, const struct berth_cdi_plan *plan,
		      struct berth_mount *binds, size_t *n_binds, size_t cap, char ***env,
		      struct berth_err *err);

/* ---- the commands: argv[0] is the command's name ---- */

int cmd_pull(int argc, char **argv);      /* pull.c */
int cmd_inspect(int argc, char **argv);   /* inspect.c */
int cmd_run(int argc, char **argv);       /* run.c */
int cmd_launch(int argc, char **argv);    /* launch.c */
int cmd_fetch(int argc, char **argv);     /* fetch.c */
int cmd_resolve(int argc, char **argv);   /* registry.c */
int cmd_login(int argc, char **argv);     /* registry.c */
int cmd_docker(int argc, char **argv);    /* docker.c */
int cmd_cache(int argc, char **argv);     /* cache.c */
int cmd_config(int argc, char **argv);    /* config.c */
int cmd_ps(int argc, char **argv);        /* containers.c */
/* inspect --cached and cache rm (images.c); argv[0] is the command's name */
int cli_inspect_cached(int argc, char **argv);
int cli_cache_rm(int argc, char **argv);
int cmd_rm(int argc, char **argv);        /* containers.c */

#endif
