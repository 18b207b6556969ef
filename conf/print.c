/* berth: printing (berth config): one printer per kind of value, each
 * writing one "Key=value" line that loads back unchanged (the conf_keys[]
 * rows in config.c name them). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>

#include "conf/config.h"
#include "conf/config_int.h"

/* ---- printing (berth config): each line loads back unchanged ------------ */

void conf_print_default_runtime(const struct berth_config *cfg,
				const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%s\n", key->name,
		berth_runtime_name(cfg->default_runtime));
}

/* "charliecloud,singularity" for a runtime bit mask. */
void conf_format_runtime_list(unsigned mask, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int rt = 0; rt < BERTH_RT_COUNT && used < size; rt++) {
		if (mask & (1u << rt)) {
			int n = snprintf(buf + used, size - used, "%s%s",
					 used ? "," : "", berth_runtime_name(rt));

			if (n < 0)
				return;
			used += (size_t)n;
		}
	}
}

void conf_print_allowed_runtimes(const struct berth_config *cfg,
				 const struct conf_key *key, FILE *out)
{
	char list[64];

	conf_format_runtime_list(cfg->allowed_runtimes, list, sizeof(list));
	fprintf(out, "%s=%s\n", key->name, list);
}

void conf_print_path(const struct berth_config *cfg,
		     const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, path_field_const(cfg, key));
}

/* The largest unit that divides the size exactly: 53687091200 -> 50G. */
void conf_print_cache_max_size(const struct berth_config *cfg,
			       const struct conf_key *key, FILE *out)
{
	static const char units[] = "TGMK";
	uint64_t bytes = cfg->cache_max_size;

	for (unsigned i = 0; bytes && i < sizeof(units) - 1; i++) {
		unsigned shift = 10u * (unsigned)(sizeof(units) - 1 - i);

		if ((bytes & ((UINT64_C(1) << shift) - 1)) == 0) {
			fprintf(out, "%s=%llu%c\n", key->name,
				(unsigned long long)(bytes >> shift), units[i]);
			return;
		}
	}
	fprintf(out, "%s=%llu\n", key->name, (unsigned long long)bytes);
}

/* An empty value is not valid input, so an empty list prints as a comment. */
void conf_print_docker_mounts(const struct berth_config *cfg,
			      const struct conf_key *key, FILE *out)
{
	if (cfg->n_docker_allowed_mounts == 0) {
		fprintf(out, "# %s is empty: docker containers get no binds\n",
			key->name);
		return;
	}
	fprintf(out, "%s=", key->name);
	for (unsigned i = 0; i < cfg->n_docker_allowed_mounts; i++)
		fprintf(out, "%s%s", i ? "," : "",
			cfg->docker_allowed_mounts[i]);
	fputc('\n', out);
}

void conf_print_seconds(const struct berth_config *cfg, const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%u\n", key->name, *(const unsigned *)((const char *)cfg + key->path_offset));
}

void conf_print_sing_format(const struct berth_config *cfg, const struct conf_key *key,
			    FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, berth_sing_format_name(cfg->sing_format));
}

void conf_print_image_storage(const struct berth_config *cfg, const struct conf_key *key,
			      FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, berth_image_storage_name(cfg->image_storage));
}

void conf_print_sqfs_comp(const struct berth_config *cfg, const struct conf_key *key,
			  FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, berth_sqfs_comp_name(cfg->sqfs_comp));
}

void conf_print_container_scope(const struct berth_config *cfg, const struct conf_key *key,
				FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, cfg->container_scope_user ? "user" : "job");
}

void conf_print_mount_home(const struct berth_config *cfg,
			   const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, cfg->mount_home ? "yes" : "no");
}

void conf_print_bool(const struct berth_config *cfg, const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%s\n", key->name,
		*(const bool *)((const char *)cfg + key->path_offset) ? "yes" : "no");
}

void conf_print_default_registry(const struct berth_config *cfg,
				 const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, cfg->default_registry);
}

void conf_print_registry_list(const struct berth_config *cfg,
			      const struct conf_key *key, FILE *out)
{
	const char *field = (const char *)cfg + key->path_offset;

	if (!field[0]) {
		fprintf(out, "# %s is empty\n", key->name);
		return;
	}
	fprintf(out, "%s=%s\n", key->name, field);
}

void conf_print_docker_pids_limit(const struct berth_config *cfg,
				  const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%u\n", key->name, cfg->docker_pids_limit);
}

void conf_print_pull_parallel(const struct berth_config *cfg,
			      const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%u\n", key->name, cfg->pull_parallel);
}
