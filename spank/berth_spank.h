/* berth: state shared by the plugin's per-context files. */
#ifndef BERTH_SPANK_H
#define BERTH_SPANK_H

#include <slurm/spank.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conf/config.h"
#include "conf/mounts.h"

#define PFX "berth: "

/* A yes/no option: unset, or the user's choice. */
enum berth_tristate { BERTH_UNSET = 0, BERTH_NO, BERTH_YES };

struct berth_spank {
	struct berth_config cfg;
	/* The options (or their BERTH_CONTAINER_* environment defaults). */
	char *image;                 /* --container-image */
	char *runtime_name;          /* --container-runtime */
	char *mounts;                /* --container-mounts */
	char *workdir;               /* --container-workdir */
	char *env_names;             /* --container-env */
	char *container_name;        /* --container-name=NAME[:MODE] */
	char *save;                  /* --container-save=PATH, made absolute */
	char *unshare;               /* --container-unshare=net,ipc,uts, canonical */
	char *devices;               /* --container-devices=CDI-NAME,... */
	enum berth_tristate mount_home, writable, entrypoint, verbose, entrypoint_log, remap_root;
	/* Derived in init_post_opt. */
	enum berth_runtime runtime;
	unsigned unshare_mask;       /* BERTH_UNSHARE_* of --container-unshare */
	struct berth_mount *mount_list;
	size_t n_mounts;
	/* Remote context: result of staging, kept for task_init. */
	bool staged;
	char digest[80];
	char *raw_image;             /* a user's SIF/SquashFS file (absolute), or NULL */
	char stage_error[2048];
	int control_fd;              /* docker: the task's end of the monitor socket */
};

extern struct berth_spank berth;

/* A container job: an image, or a named container that has one. */
static inline bool berth_in_container(void)
{
	return berth.image || berth.container_name;
}

/* options.c */
int berth_options_register(spank_t sp);
int berth_options_from_env(spank_t sp);  /* fill unset options from BERTH_CONTAINER_* */
int berth_options_validate(spank_t sp);  /* the submitting side: fail early */
int berth_options_check_runtime(void); /* after the runtime is decided */
void berth_options_free(void);
/* Where the job was submitted from: the shell's PWD, else the folder Slurm
 * records (SLURM_SUBMIT_DIR), else "/".  Relative paths start there. */
void berth_job_cwd(spank_t sp, char *cwd, size_t len);

struct berth_cred;

/* watch.c: a stager's should_stop (base/process.h) while a step stages. */
struct berth_stage_watch {
	uint32_t job;                  /* 0: nothing to watch */
	const struct berth_cred *cred; /* squeue runs as the job user */
	time_t next;                   /* when to ask slurmctld again */
	char reason[96];
};
const char *berth_stage_watch_check(void *ctx);

/* remote.c */
int berth_remote_post_opt(spank_t sp);
int berth_remote_user_init(spank_t sp);
int berth_remote_task_init(spank_t sp);
int berth_remote_task_privileged(spank_t sp);
int berth_remote_exit(spank_t sp);
int berth_docker_sweep_job(spank_t sp);
int berth_named_sweep_job(spank_t sp);

#endif
