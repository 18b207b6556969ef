/* berth: what the configuration's three files share, for conf/ only:
 * config.c (the key table, defaults, applying and loading), values.c (one
 * parser per kind of value) and print.c (one printer per kind of value).
 * The public API is config.h. */
#ifndef BERTH_CONFIG_INT_H
#define BERTH_CONFIG_INT_H

#include <stdio.h>
#include <string.h>

#include "conf/config.h"
#include "conf/error.h"

/* berth_fail() and berth_wrap() always return -1.  Spelling that out lets
 * a static analyzer, which does not see error.c, follow the error paths. */
#define FAIL(...) (berth_fail(__VA_ARGS__), -1)
#define WRAP(...) (berth_wrap(__VA_ARGS__), -1)

/* Messages quote user text up to QUOTE_MAX bytes, so the problem and the fix
 * still fit in BERTH_ERR_MSG_MAX: printf("'%.*s%s'", QUOTED(text)). */
#define QUOTE_MAX 160
#define QUOTED(text) QUOTE_MAX, (text), strlen(text) > QUOTE_MAX ? "..." : ""

/* ---- one row of the key table (conf_keys[] in config.c) ---- */

struct conf_key;
typedef int conf_parse_fn(struct berth_config *cfg, const struct conf_key *key, char *value,
			  struct berth_err *err);
typedef void conf_print_fn(const struct berth_config *cfg, const struct conf_key *key,
			   FILE *out);

struct conf_key {
	const char *name; /* canonical spelling, matched case-insensitively */
	conf_parse_fn *parse; /* value text -> cfg; message says what to fix */
	conf_print_fn *print; /* cfg -> one "Name=value" line */
	size_t path_offset;  /* keys of a shared kind (paths, lists, seconds):
			      * offsetof their field */
};

static inline char *path_field(struct berth_config *cfg, const struct conf_key *key)
{
	return (char *)cfg + key->path_offset;
}

static inline unsigned *seconds_field(struct berth_config *cfg, const struct conf_key *key)
{
	return (unsigned *)((char *)cfg + key->path_offset);
}

static inline bool *bool_field(struct berth_config *cfg, const struct conf_key *key)
{
	return (bool *)((char *)cfg + key->path_offset);
}

static inline const char *path_field_const(const struct berth_config *cfg,
					   const struct conf_key *key)
{
	return (const char *)cfg + key->path_offset;
}

/* ---- values.c ---- */

/* Cut leading and trailing whitespace in place; returns the new start. */
char *conf_trim(char *text);
int conf_check_absolute_path(const char *path, struct berth_err *err);
void conf_mount_list_clear(char **paths, unsigned *count);

conf_parse_fn conf_parse_default_runtime, conf_parse_allowed_runtimes, conf_parse_path,
	conf_parse_sing_format, conf_parse_sqfs_comp, conf_parse_cache_max_size, conf_parse_docker_mounts,
	conf_parse_seconds, conf_parse_mount_home, conf_parse_default_registry,
	conf_parse_registry_list, conf_parse_pull_parallel, conf_parse_container_scope,
	conf_parse_docker_pids_limit;
/* a yes/no key: the bool at path_offset */
conf_parse_fn conf_parse_bool;
conf_parse_fn conf_parse_image_storage;

/* ---- devices.c ---- */

conf_parse_fn conf_parse_cdi_dirs, conf_parse_allowed_devices;

/* ---- print.c ---- */

/* "charliecloud,singularity" for a runtime bit mask. */
void conf_format_runtime_list(unsigned mask, char *buf, size_t size);

conf_print_fn conf_print_default_runtime, conf_print_allowed_runtimes, conf_print_path,
	conf_print_sing_format, conf_print_sqfs_comp, conf_print_cache_max_size, conf_print_docker_mounts,
	conf_print_seconds, conf_print_mount_home, conf_print_default_registry,
	conf_print_registry_list, conf_print_pull_parallel, conf_print_container_scope,
	conf_print_docker_pids_limit;
conf_print_fn conf_print_bool;
conf_print_fn conf_print_image_storage;

#endif
