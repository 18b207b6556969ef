/* berth: SPANK entry points, option table and configuration.
 * Hooks that run in slurmstepd live in remote.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "berth_spank.h"

SPANK_PLUGIN(berth, 1);

struct berth_spank berth = {.runtime = BERTH_RT_NONE};

static int set_string(char **slot, const char *value, const char *option)
{
	if (!value || !*value) {
		slurm_error(PFX "--%s needs a value", option);
		return -1;
	}
	free(*slot);
	*slot = strdup(value);
	return *slot ? 0 : -1;
}

static int opt_image(int val, const char *optarg, int remote)
{
	(void)val;
	(void)remote;
	return set_string(&berth.image, optarg, "container-image");
}

static int opt_runtime(int val, const char *optarg, int remote)
{
	(void)val;
	(void)remote;
	return set_string(&berth.runtime_name, optarg, "container-runtime");
}

static struct spank_option options[] = {
	{"container-image", "IMAGE",
	 "[berth] run the step in a container made from IMAGE: a docker-save "
	 "archive PATH[#REPO:TAG]",
	 1, 0, opt_image},
	{"container-runtime", "NAME",
	 "[berth] container runtime: charliecloud, singularity, apptainer or "
	 "docker (default: the site's DefaultRuntime)",
	 1, 0, opt_runtime},
	SPANK_OPTIONS_TABLE_END,
};

static bool registers_options(spank_context_t ctx)
{
	return ctx == S_CTX_LOCAL || ctx == S_CTX_REMOTE || ctx == S_CTX_ALLOCATOR;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	struct berth_err err = {0};
	spank_context_t ctx = spank_context();

	berth_config_defaults(&berth.cfg);
	if (berth_config_load_file(&berth.cfg, BERTH_DEFAULT_CONFIG_FILE, false, &err) < 0 ||
	    berth_config_load_args(&berth.cfg, ac, av, &err) < 0) {
		slurm_error(PFX "%s", err.msg);
		return -1;
	}
	if (!registers_options(ctx))
		return 0;
	for (struct spank_option *opt = options; opt->name; opt++) {
		if (spank_option_register(sp, opt) != ESPANK_SUCCESS) {
			slurm_error(PFX "cannot register --%s", opt->name);
			return -1;
		}
	}
	return 0;
}

/* Decide the runtime and check it against the site's list.  Runs on the
 * submitting side too, so a bad value fails at submission. */
static int resolve_runtime(void)
{
	if (!berth.runtime_name) {
		berth.runtime = berth.cfg.default_runtime;
		return 0;
	}
	berth.runtime = berth_runtime_from_name(berth.runtime_name);
	if (berth.runtime == BERTH_RT_NONE) {
		slurm_error(PFX "unknown --container-runtime '%s'; use one of: "
			    "charliecloud, singularity, apptainer, docker",
			    berth.runtime_name);
		return -1;
	}
	if (!(berth.cfg.allowed_runtimes & (1u << berth.runtime))) {
		slurm_error(PFX "--container-runtime=%s is not enabled on this "
			    "cluster (AllowedRuntimes in berth.conf); ask your "
			    "administrator or pick another runtime",
			    berth.runtime_name);
		return -1;
	}
	return 0;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	if (!berth.image)
		return 0; /* not a container job: stay out of the way */
	if (resolve_runtime() < 0)
		return -1;
	if (spank_context() == S_CTX_REMOTE)
		return berth_remote_post_opt(sp);
	return 0;
}

int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	return berth.image ? berth_remote_user_init(sp) : 0;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	return berth.image ? berth_remote_task_init(sp) : 0;
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	(void)sp;
	(void)ac;
	(void)av;
	free(berth.image);
	free(berth.runtime_name);
	berth.image = berth.runtime_name = NULL;
	berth_config_free(&berth.cfg);
	return 0;
}
