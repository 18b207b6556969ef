/* berth: SPANK entry points, option table and configuration.
 * Hooks that run in slurmstepd live in remote.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spank/berth_spank.h"
#include "spank/pin.h"

SPANK_PLUGIN(berth, 1);

struct berth_spank berth = {.runtime = BERTH_RT_NONE, .control_fd = -1};

static bool registers_options(spank_context_t ctx)
{
	return ctx == S_CTX_LOCAL || ctx == S_CTX_REMOTE || ctx == S_CTX_ALLOCATOR;
}

/* berth.conf, then the plugstack arguments.  Slurm calls slurm_spank_init
 * in every context but the job prolog/epilog one: those hooks load it. */
static int load_config(int ac, char **av)
{
	struct berth_err err = {0};

	berth_config_free(&berth.cfg);
	berth_config_defaults(&berth.cfg);
	if (berth_config_load_file(&berth.cfg, BERTH_DEFAULT_CONFIG_FILE, false, &err) < 0 ||
	    berth_config_load_args(&berth.cfg, ac, av, &err) < 0) {
		slurm_error(PFX "%s", err.msg);
		return -1;
	}
	return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();

	if (load_config(ac, av) < 0)
		return -1;
	return registers_options(ctx) ? berth_options_register(sp) : 0;
}

/* Decide the runtime and check it against the site's list.  Runs on the
 * submitting side too, so a bad value fails at submission. */
static int resolve_runtime(void)
{
	struct berth_err err = {0};

	if (berth_config_pick_runtime(&berth.cfg, berth.runtime_name, &berth.runtime,
				      &err) < 0) {
		slurm_error(PFX "%s", err.msg);
		return -1;
	}
	return 0;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	if (!registers_options(spank_context()))
		return 0;
	if (berth_options_from_env(sp) < 0 || berth_options_validate(sp) < 0)
		return -1;
	if (!berth_in_container())
		return 0; /* not a container job: stay out of the way */
	if (resolve_runtime() < 0 || berth_options_check_runtime() < 0)
		return -1;
	if (spank_context() == S_CTX_REMOTE)
		return berth_remote_post_opt(sp);
	return berth.image ? berth_pin_submit() : 0;
}

int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	return berth_in_container() ? berth_remote_user_init(sp) : 0;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	return berth_in_container() ? berth_remote_task_init(sp) : 0;
}

int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	return berth_in_container() ? berth_remote_task_privileged(sp) : 0;
}

/* The job epilog (root, job_script context): whatever a step's own clean-up
 * could not remove (slurmstepd itself killed), the job's end does. */
int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	if (load_config(ac, av) < 0)
		return -1;
	berth_named_sweep_job(sp);
	return berth_docker_sweep_job(sp);
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	if (spank_context() == S_CTX_REMOTE)
		berth_remote_exit(sp);
	berth_options_free();
	berth_config_free(&berth.cfg);
	return 0;
}
