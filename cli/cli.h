/* berth: the command.  Shared by its subcommands. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include "conf/config.h"
#include "conf/error.h"

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
void cli_print_size(unsigned long long bytes, char *out, size_t cap);

int cmd_launch(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_docker(int argc, char **argv);
int cmd_resolve(int argc, char **argv);
int cmd_login(int argc, char **argv);

struct berth_image;
/* A registry reference pulled into the user's cache and opened (berth
 * inspect); 1 when `text` is not one. */
int cli_open_registry_image(const char *text, struct berth_image *img, char pinned[72],
			    struct berth_err *err);

#endif
