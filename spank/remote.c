/* berth: the slurmstepd side (remote context): prepare the cache as root,
 * stage the image as the user in user_init, launch each task in task_init. */
#define _GNU_SOURCE
#include <errno.h>
#include <slurm/slurm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../executor/cache.h"
#include "../executor/process.h"
#include "berth_spank.h"

#define STAGE_OUTPUT_MAX (64 * 1024)

static void keep_error(const char *fmt, const char *detail)
{
	snprintf(berth.stage_error, sizeof(berth.stage_error), fmt, detail);
}

/* As root, before user_init drops the effective uid: the user's cache
 * folder must exist and be theirs. */
int berth_remote_post_opt(spank_t sp)
{
	struct berth_err err = {0};
	uid_t uid;
	gid_t gid;

	if (spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &gid) != ESPANK_SUCCESS) {
		keep_error("%s", "cannot get the job's uid/gid from Slurm");
		return 0;
	}
	if (berth_cache_prepare_user(berth.cfg.cache_dir, uid, gid, &err) < 0)
		keep_error("%s", err.msg);
	return 0;
}

/* Strip the trailing newline and keep only the last line of `out`. */
static char *last_line(char *out)
{
	size_t len = strlen(out);
	char *nl;

	while (len && out[len - 1] == '\n')
		out[--len] = '\0';
	nl = strrchr(out, '\n');
	return nl ? nl + 1 : out;
}

static int stage_as_user(spank_t sp, const struct berth_cred *cred)
{
	char cwd[PATH_MAX] = "/";
	char *argv[] = {berth.cfg.launcher_path, "pull", "--runtime",
			(char *)berth_runtime_name(berth.runtime), "--cache-dir",
			berth.cfg.cache_dir, "--singularity", berth.cfg.singularity_path,
			"--", berth.image, NULL};
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", NULL};
	_cleanup_free_ char *output = NULL;
	struct berth_err err = {0};
	int status;

	/* A relative image path means relative to where the job was submitted. */
	if (spank_getenv(sp, "PWD", cwd, sizeof(cwd)) != ESPANK_SUCCESS)
		snprintf(cwd, sizeof(cwd), "/");
	struct berth_spawn spawn = {
		.argv = argv, .envp = envp, .cred = cred, .cwd = cwd,
		.stdin_fd = -1, .stderr_fd = -1,
		.capture_stdout = &output, .capture_max = STAGE_OUTPUT_MAX,
		.stderr_to_capture = true,
	};
	if (berth_spawn_run(&spawn, &status, &err) < 0) {
		keep_error("cannot stage the image: %s", err.msg);
		return -1;
	}
	char *line = last_line(output);
	if (status != 0) {
		/* The command already said "berth: ...": say it once. */
		const char *msg = output;
		if (!strncmp(msg, PFX, strlen(PFX)))
			msg += strlen(PFX);
		keep_error("%s", *msg ? msg : "image staging failed");
		return -1;
	}
	if (strncmp(line, "sha256:", 7) != 0 || strlen(line) < 72 || line[71] != ' ') {
		keep_error("unexpected output from the image stager: %s", line);
		return -1;
	}
	snprintf(berth.digest, sizeof(berth.digest), "%.71s", line);
	slurm_verbose(PFX "image %s ready (%s)", berth.digest, line + 72 > line + strlen(line) ? "" : line + 72);
	return 0;
}

int berth_remote_user_init(spank_t sp)
{
	struct berth_cred cred = {0};
	gid_t *groups = NULL;
	int n_groups = 0;

	if (berth.stage_error[0])
		return 0; /* reported from task_init, where srun's user sees it */
	if (berth.runtime == BERTH_RT_DOCKER) {
		keep_error("runtime '%s' is not available yet in this berth version; "
			   "use --container-runtime=charliecloud",
			   berth_runtime_name(berth.runtime));
		return 0;
	}
	if (spank_get_item(sp, S_JOB_UID, &cred.uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &cred.gid) != ESPANK_SUCCESS) {
		keep_error("%s", "cannot get the job's uid/gid from Slurm");
		return 0;
	}
	if (spank_get_item(sp, S_JOB_SUPPLEMENTARY_GIDS, &groups, &n_groups) == ESPANK_SUCCESS &&
	    n_groups > 0) {
		cred.groups = groups;
		cred.n_groups = (size_t)n_groups;
	}
	if (stage_as_user(sp, &cred) == 0)
		berth.staged = true;
	return 0;
}

/* The launcher's command line: settings the user cannot change travel as
 * options (the launcher reads no configuration), then the task's argv. */
static char **launcher_argv(int job_argc, char **job_argv, bool batch)
{
	size_t cap = (size_t)job_argc + 32 + 2 * berth.n_mounts;
	char **argv = calloc(cap, sizeof(char *));
	size_t n = 0;

	if (!argv)
		return NULL;
	argv[n++] = berth.cfg.launcher_path;
	argv[n++] = "launch";
	argv[n++] = "--runtime";
	argv[n++] = (char *)berth_runtime_name(berth.runtime);
	argv[n++] = "--cache-dir";
	argv[n++] = berth.cfg.cache_dir;
	argv[n++] = "--ch-run";
	argv[n++] = berth.cfg.chrun_path;
	argv[n++] = "--singularity";
	argv[n++] = berth.cfg.singularity_path;
	argv[n++] = "--digest";
	argv[n++] = berth.digest;
	bool home = berth.mount_home == BERTH_UNSET ? berth.cfg.mount_home
						    : berth.mount_home == BERTH_YES;
	if (home)
		argv[n++] = "--mount-home";
	if (berth.writable == BERTH_YES)
		argv[n++] = "--writable";
	if (berth.entrypoint == BERTH_YES)
		argv[n++] = "--entrypoint";
	if (berth.workdir) {
		argv[n++] = "--workdir";
		argv[n++] = berth.workdir;
	}
	if (berth.env_names) {
		argv[n++] = "--env-keep";
		argv[n++] = berth.env_names;
	}
	if (berth.mounts) {
		argv[n++] = "--mounts";
		argv[n++] = berth.mounts;
	}
	if (batch && job_argc > 0) {
		argv[n++] = "--batch-script";
		argv[n++] = job_argv[0];
	}
	argv[n++] = "--";
	for (int i = 0; i < job_argc; i++)
		argv[n++] = job_argv[i];
	argv[n] = NULL;
	return argv;
}

int berth_remote_task_init(spank_t sp)
{
	char **job_argv, **job_env;
	int job_argc;
	uint32_t step_id = 0;

	if (!berth.staged) {
		fprintf(stderr, PFX "%s\n",
			berth.stage_error[0] ? berth.stage_error : "the image was not staged");
		return -1;
	}
	if (spank_get_item(sp, S_JOB_ARGV, &job_argc, &job_argv) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_ENV, &job_env) != ESPANK_SUCCESS) {
		fprintf(stderr, PFX "cannot get the task's argv/environment from Slurm\n");
		return -1;
	}
	spank_get_item(sp, S_JOB_STEPID, &step_id);
	char **argv = launcher_argv(job_argc, job_argv, step_id == SLURM_BATCH_SCRIPT);
	if (!argv)
		return -1;
	/* Slurm 22.05 has no spank_prepend_task_argv(): become the launcher. */
	execve(argv[0], argv, job_env);
	fprintf(stderr, PFX "cannot run the launcher %s (LauncherPath): %s\n",
		argv[0], strerror(errno));
	free(argv);
	return -1;
}
