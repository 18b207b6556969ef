/* berth: the executor interface, one implementation per runtime.
 *
 * It mirrors the ContainerExecuter of the original request: is an image
 * loaded, load one (from a docker-save archive), remove it, create a
 * container from one spec, start it, kill it, its stdio, wait, exit code,
 * destroy.  One more operation, `exec`, replaces the calling process with
 * the container: the Slurm launch path uses it so that the task's pid,
 * signals, stdio and exit code are the container's own.
 *
 * Adding a runtime is adding one file with a `struct berth_executor_ops`
 * and one row in the registry (executor.c). */
#ifndef BERTH_EXECUTOR_H
#define BERTH_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/config.h"
#include "conf/error.h"
#include "conf/mounts.h"
#include "conf/unshare.h"
#include "executor/cache/cache.h"
#include "executor/base/process.h"
#include "executor/base/strv.h"
#include "executor/source/image.h"
#include "executor/task.h"


/* Everything a container is made from.  Runtimes use only vetted fields. */
struct berth_container_spec {
	char *const *argv;           /* the command, argv[0] looked up in the image */
	char *const *env;            /* the command's exact environment, "K=V" */
	const char *workdir;         /* NULL: the image's WorkingDir, else "/" */
	const struct berth_mount *binds;
	size_t n_binds;
	bool writable;               /* writable root (where the runtime can) */
	const char *layer_dir;       /* a named container's folder (named.h):
				      * its layer persists there; NULL: none */
	bool remap_root;             /* uid 0 inside, mapped to the user; chown
				      * and set*id faked (fakeroot.h) */
	bool mount_home;             /* the user's home at its path */
	bool no_passwd;              /* umount:/etc/passwd or /etc/group: the
				      * runtime's binds of both left out (set by
				      * berth_executor_create; charliecloud only) */
	bool verbose;                /* the runtime's own notices too (else errors only) */
	unsigned unshare;            /* BERTH_UNSHARE_* (conf/unshare.h): namespaces
				      * of its own beyond the runtime's default */
	/* device nodes of the host's /dev the container must not see (CDI
	 * devices not chosen; runtime/cdi.h), NULL-terminated; charliecloud,
	 * which shows the host's /dev, hides them */
	char *const *hide_nodes;
	/* Docker: device nodes "HOST-PATH:CONTAINER-PATH" (HostConfig.Devices,
	 * which dockerd's device cgroup allows), NULL-terminated; the other
	 * runtimes bind them */
	char *const *devices;
	/* Docker only (the others run as the calling user, unprivileged): */
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t n_groups;
	uint64_t memory_bytes;       /* 0 = no limit; no swap beyond it */
	unsigned cpus;               /* 0 = no limit */
	const char *cpuset_cpus;     /* the CPUs it may run on ("0,2-3"), NULL = all */
	uint64_t pids_limit;         /* processes and threads, 0 = no limit */
	const struct berth_ulimit *ulimits; /* the task's own limits */
	size_t n_ulimits;
	const char *cgroup_parent;
	const char *label_job, *label_step;
	/* the node that made it: one dockerd may serve several Slurm nodes
	 * (a test cluster), whose sweeps must not take each other's */
	const char *label_node;
	/* stdio of the container; -1 = the caller's own */
	int stdin_fd, stdout_fd, stderr_fd;
};

enum berth_state { BERTH_STATE_NONE, BERTH_STATE_CREATED, BERTH_STATE_RUNNING,
		   BERTH_STATE_EXITED };

struct berth_executor;

struct berth_executor_ops {
	const char *name;
	/* the cached form of an image this runtime runs from */
	const struct berth_artifact *(*artifact)(struct berth_executor *ex);
	int (*prepare)(struct berth_executor *ex, struct berth_err *err);
	/* build the runtime's argv/env from the spec; nothing runs yet */
	int (*create)(struct berth_executor *ex, const struct berth_container_spec *spec,
		      struct berth_err *err);
	/* called in the process that is about to execve the runtime */
	int (*before_exec)(struct berth_executor *ex, struct berth_err *err);
	void (*release)(struct berth_executor *ex);
	bool runs_raw_images;        /* a .sif / squashfs file runs as it is */
	/* Runtimes driven through an API instead of an exec'd program (docker)
	 * replace these; NULL means the generic fork/exec/waitpid code. */
	int (*load)(struct berth_executor *ex, const char *ref,
		    struct berth_stage_result *res, struct berth_err *err);
	int (*use)(struct berth_executor *ex, const char *digest, struct berth_err *err);
	int (*start)(struct berth_executor *ex, struct berth_err *err);
	int (*kill)(struct berth_executor *ex, int sig, struct berth_err *err);
	int (*poll)(struct berth_executor *ex, struct berth_err *err);
	int (*remove_image)(struct berth_executor *ex, const char *digest,
			    struct berth_err *err);
	int (*image_loaded)(struct berth_executor *ex, const char *digest, bool *loaded,
			    struct berth_err *err);
	/* remove what the run left (docker: the container) and say when that
	 * failed; release still tries again, silently */
	int (*finish)(struct berth_executor *ex, struct berth_err *err);
};

struct berth_executor {
	const struct berth_executor_ops *ops;
	const struct berth_config *cfg;
	struct berth_cache cache;
	bool cache_open;
	enum berth_state state;
	char digest[BERTH_DIGEST_LEN + 1];
	const char *raw_image;       /* a runnable file used as is (.sif, squashfs) */
	char *imported;              /* what the site's Importer= handed back */
	struct berth_image img;      /* the loaded image's config (Env, WorkingDir...) */
	bool img_loaded;
	int lock_fd;                 /* shared cache lock while a container uses it */
	/* what create() built: the runtime's command line and environment */
	char **argv;
	char **envp;
	const struct berth_container_spec *spec;
	/* the caller's spec with its binds sorted parents first (the strings
	 * stay the caller's): what spec points at after create() */
	struct berth_container_spec own_spec;
	struct berth_mount *own_binds;
	pid_t pid;
	int exit_code;
	/* 127 (not found) or 126 (not executable) when the command cannot
	 * run in the container; 0 otherwise (berth_executor_refused) */
	int refused;
	void *priv;                  /* the runtime's own state */
};

/* ---- the interface ---- */

/* A new executor for runtime `name` ("charliecloud", "singularity",
 * "apptainer", "docker"), using cfg's paths and the caller's cache under
 * `cache_dir` (NULL: cfg->cache_dir). */
int berth_executor_new(const char *name, const struct berth_config *cfg,
		       const char *cache_dir, struct berth_executor **out,
		       struct berth_err *err);

/* For a runtime whose image is seen only once mounted (charliecloud's
 * ImageStorage=squashfs, singularity's SIF mounted by berth; from
 * before_exec): is the command there, in the
 * tree at root_fd, as the container will look it up?  -1 with err and
 * berth_executor_refused() 127 or 126 when not. */
int berth_executor_check_command_at(struct berth_executor *ex, int root_fd,
				    struct berth_err *err);

/* CheckImageIsLoaded: is this runtime's artifact of the digest staged (in
 * the cache; docker: in dockerd)? */
int berth_executor_image_loaded(struct berth_executor *ex, const char *digest,
				bool *loaded, struct berth_err *err);
/* LoadImage: stage a docker-save archive (PATH[#REPO:TAG] or a URL of
 * one).  res->digest gets its digest ("" for a .sif/squashfs run as it is),
 * res->converted and res->stats what the staging did. */
int berth_executor_load_image(struct berth_executor *ex, const char *ref,
			      struct berth_stage_result *res, struct berth_err *err);
/* Use an image already loaded (by digest) for the next container. */
int berth_executor_use_image(struct berth_executor *ex, const char *digest,
			     struct berth_err *err);
/* ImageRemove: this runtime's artifact of the image (docker: the image in
 * dockerd), never while a container uses it. */
int berth_executor_remove_image(struct berth_executor *ex, const char *digest,
				struct berth_err *err);
/* CreateContainer: the spec must outlive the container. */
int berth_executor_create(struct berth_executor *ex,
			  const struct berth_container_spec *spec,
			  struct berth_err *err);
/* StartContainer: runs it as a child in its own process group. */
int berth_executor_start(struct berth_executor *ex, struct berth_err *err);
/* Replace this process with the container (returns only on failure). */
int berth_executor_exec(struct berth_executor *ex, struct berth_err *err);
/* Kill: deliver `sig` to every process of the container. */
int berth_executor_kill(struct berth_executor *ex, int sig, struct berth_err *err);
/* Wait; then ExitCode gives the command's status (128+N after signal N). */
int berth_executor_wait(struct berth_executor *ex, struct berth_err *err);
/* Has it exited?  1 yes (exit code set), 0 still running, -1 error. */
int berth_executor_poll(struct berth_executor *ex, struct berth_err *err);
int berth_executor_exit_code(const struct berth_executor *ex);
/* After create or start failed: 127 when the command is not found in the
 * container, 126 when it is found but cannot be executed (as a shell and
 * Docker say); 0 when the failure was berth's or the runtime's own. */
int berth_executor_refused(const struct berth_executor *ex);
enum berth_state berth_executor_state(const struct berth_executor *ex);
/* After the run: remove what it left in the runtime (a Docker container),
 * reporting a failure (dockerd gone) that destroy would keep quiet. */
int berth_executor_finish(struct berth_executor *ex, struct berth_err *err);
/* Destroy: kill what still runs, release locks and memory. */
void berth_executor_destroy(struct berth_executor *ex);

/* Has the loaded image an executable /bin/sh?  Known for a tree in the
 * cache (charliecloud's rootfs, singularity's sandbox); true where it
 * cannot be told (a SIF, a SquashFS file, an image inside Docker). */
bool berth_executor_has_shell(struct berth_executor *ex);

/* ---- for the runtime files ---- */


/* The end of every create(): append the spec's command to the runtime's
 * argv and hand both vectors to the executor.  On failure both are freed. */
int berth_executor_set_command(struct berth_executor *ex, struct berth_strv *argv,
			       struct berth_strv *envp, struct berth_err *err);

/* The working directory the command starts in. */
const char *berth_spec_workdir(const struct berth_executor *ex);

/* --container-mount-home, as pyxis: the home the job's $HOME names, else
 * the passwd entry's (getpwuid) into buf; NULL when neither is an
 * absolute path.  It is bound at the same path, or at /root under
 * --container-remap-root (berth_spec_home_dst). */
const char *berth_spec_home(const struct berth_executor *ex, char *buf, size_t len);
const char *berth_spec_home_dst(const struct berth_executor *ex, const char *home);

extern const struct berth_executor_ops berth_charliecloud_ops;
extern const struct berth_executor_ops berth_singularity_ops;
extern const struct berth_executor_ops berth_docker_ops;

#endif
