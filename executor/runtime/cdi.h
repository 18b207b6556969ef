/* berth: CDI (Container Device Interface) specs, and the container edits
 * of the devices a step gets.
 *
 * A spec (JSON, or YAML as `nvidia-ctk cdi generate` writes it; CDI 0.5.0
 * to 0.8.0) names a kind ("nvidia.com/gpu") and its devices ("0", "all",
 * "GPU-<uuid>"); each device, and the spec as a whole, carries container
 * edits: device nodes, mounts, environment, hooks, additional groups.
 * Specs are site configuration: a spec file or folder that is not
 * root-owned, or that others may write, is refused.  Reading specs and
 * choosing devices runs nothing; the launcher turns the edits into binds
 * and environment that every runtime already knows (executor.h). */
#ifndef BERTH_CDI_H
#define BERTH_CDI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf/error.h"
#include "conf/mounts.h"

/* The folders read when CdiSpecDirs is not set; a later folder's device
 * replaces an earlier one's of the same name (CDI's own priority). */
#define BERTH_CDI_DEFAULT_DIRS "/etc/cdi,/var/run/cdi"

struct berth_cdi_hook {
	char *hook_name;  /* createContainer, startContainer, ... */
	char *path;
	char *file;       /* the spec it came from, for messages */
	char **args;      /* NULL-terminated (may be NULL) */
};

/* What a container gets from a set of devices. */
struct berth_cdi_edits {
	struct berth_mount *mounts;  /* device nodes and mounts, as binds */
	size_t n_mounts;
	char **env;                  /* "K=V", NULL-terminated (may be NULL) */
	size_t n_env;
	struct berth_cdi_hook *hooks;
	size_t n_hooks;
	gid_t *gids;                 /* additionalGids (0.7+) */
	size_t n_gids;
	char **nodes;                /* the container paths of the device nodes */
	size_t n_nodes;
};

struct berth_cdi_device {
	char *name;                  /* "nvidia.com/gpu=0" */
	size_t spec;                 /* index in registry.specs */
	struct berth_cdi_edits edits;
};

struct berth_cdi_spec {
	char *file;
	char *kind;
	struct berth_cdi_edits edits; /* applied once with any of its devices */
};

struct berth_cdi_registry {
	uid_t owner;                 /* who must own spec files: 0 (tests: others) */
	struct berth_cdi_spec *specs;
	size_t n_specs;
	struct berth_cdi_device *devices;
	size_t n_devices;
	size_t dir_start;            /* first device of the folder being read */
};

/* Read one spec file into reg.  Errors name the file and the field. */
int berth_cdi_load_file(struct berth_cdi_registry *reg, const char *path,
			struct berth_err *err);
/* Read every *.json, *.yaml and *.yml of each folder in `dirs` (comma
 * separated, in order; a missing folder is skipped). */
int berth_cdi_load_dirs(struct berth_cdi_registry *reg, const char *dirs,
			struct berth_err *err);
void berth_cdi_free(struct berth_cdi_registry *reg);

/* The edits of the devices `names` ("KIND=NAME", NULL-terminated) into
 * *out (zeroed by the caller): each spec's own edits once, then each
 * device's.  A name no spec defines is an error naming `dirs`. */
int berth_cdi_edits_of(const struct berth_cdi_registry *reg, char *const *names,
		       const char *dirs, struct berth_cdi_edits *out, struct berth_err *err);
void berth_cdi_edits_free(struct berth_cdi_edits *e);

/* The GPUs Slurm gave the step, from its environment (SLURM_STEP_GPUS,
 * else SLURM_JOB_GPUS, else GPU_DEVICE_ORDINAL, else CUDA_VISIBLE_DEVICES),
 * as CDI names "nvidia.com/gpu=N" (an index or a GPU-<uuid>), appended to
 * *names.  None allocated appends nothing. */
int berth_cdi_step_gpus(char *const *env, char ***names, size_t *n, struct berth_err *err);

/* What a container gets: the edits of its devices, and the device nodes
 * of the specs' other devices, which a runtime that shows the host's /dev
 * (charliecloud) hides. */
struct berth_cdi_plan {
	struct berth_cdi_edits edits;
	char **hide;                 /* NULL-terminated (may be NULL) */
	size_t n_hide;
	char warning[512];           /* GPUs no spec describes: said, not fatal */
	char *ld_path;               /* folders update-ldcache hooks named, for
				      * LD_LIBRARY_PATH (after the image's), or NULL */
};

/* The step's GPUs (berth_cdi_step_gpus of `env`) and the devices of
 * `list` (comma separated, may be NULL), from the specs in `dirs`.
 * `ctr_env` (may be NULL: no conventions) is the container's environment
 * before the edits, whose NVIDIA_* variables are honoured as enroot's
 * hook and libnvidia-container honour them: NVIDIA_VISIBLE_DEVICES=void
 * gives the container none of the step's GPUs (`list`'s still), =none the
 * driver without the step's GPU nodes; NVIDIA_DRIVER_CAPABILITIES
 * (default utility,compute) picks the driver files
 * (berth_cdi_filter_caps).  A
 * hook or an additional group the job cannot take is refused, naming the
 * spec.  No device and no spec: an empty plan, nothing read but folders;
 * no device asked for and a bad spec: an empty plan and a warning. */
int berth_cdi_plan(const char *dirs, const char *list, char *const *env,
		   char *const *ctr_env, struct berth_cdi_plan *out, struct berth_err *err);
void berth_cdi_plan_free(struct berth_cdi_plan *p);

/* What nvidia-ctk's hooks do, done as edits (the runtimes berth drives
 * run no OCI hooks): `create-symlinks --link T::L` binds the file T names
 * at L, `update-ldcache --folder F` puts F on plan->ld_path, `chmod` of
 * device nodes is the host's already.  Any other hook is refused, naming
 * it and its spec.  Called by berth_cdi_plan; here for the unit tests. */
int berth_cdi_do_hooks(struct berth_cdi_plan *plan, struct berth_err *err);

/* Drop the driver files that `caps` (NVIDIA_DRIVER_CAPABILITIES: comma
 * separated; NULL or "" is "utility,compute") does not ask for, by
 * libnvidia-container's lists; device nodes and files no list names stay.
 * An unknown capability is an error naming it. */
int berth_cdi_filter_caps(struct berth_cdi_edits *e, const char *caps, struct berth_err *err);
/* Drop the mount (and device node) at container path `dst`, if any. */
void berth_cdi_drop_mount(struct berth_cdi_edits *e, const char *dst);

/* The step's GPUs `gpus` ("nvidia.com/gpu=N", from berth_cdi_step_gpus)
 * as this process's device cgroup has them: when a listed GPU's node
 * cannot be opened (EPERM: ConstrainDevices), Slurm numbered the task's
 * GPUs among those the cgroup allows, and N becomes the N-th of the spec's
 * GPUs, in index order, whose nodes open.  Names replaced in place. */
int berth_cdi_cgroup_gpus(const struct berth_cdi_registry *reg, char **gpus, size_t n_gpus,
			  struct berth_err *err);

/* The step's GPUs as this process's device cgroup has them
 * (berth_cdi_cgroup_gpus), for a process in another cgroup: *out gets
 * "N,GPU-uuid,..." (malloc'd), or NULL when the step has none. */
#define BERTH_CDI_TASK_GPUS "BERTH_TASK_GPUS"
int berth_cdi_task_gpus(const char *dirs, char *const *env, char **out, struct berth_err *err);

/* May this process open device node `path`?  Only EPERM (the device
 * cgroup: ConstrainDevices) says no. */
bool berth_cdi_node_allowed(const char *path);

/* Is "KIND=NAME" a well-formed CDI device name? */
bool berth_cdi_name_valid(const char *name);

#endif
