/* berth: state shared by the plugin's per-context files. */
#ifndef BERTH_SPANK_H
#define BERTH_SPANK_H

#include <slurm/spank.h>
#include <stdbool.h>

#include "../conf/config.h"

#define PFX "berth: "

struct berth_spank {
	struct berth_config cfg;
	char *image;                 /* --container-image */
	char *runtime_name;          /* --container-runtime */
	enum berth_runtime runtime;
	/* Remote context: result of staging, kept for task_init. */
	bool staged;
	char digest[80];
	char stage_error[2048];
};

extern struct berth_spank berth;

/* remote.c */
int berth_remote_post_opt(spank_t sp);
int berth_remote_user_init(spank_t sp);
int berth_remote_task_init(spank_t sp);

#endif
