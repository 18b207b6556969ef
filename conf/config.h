/* berth: the site configuration model.
 *
 * One parser serves both sources: /etc/slurm/berth.conf (`Key=Value` lines,
 * `#` comments, case-insensitive keys, like slurm.conf) and the plugstack
 * arguments (`required spank_berth.so DefaultRuntime=singularity`).
 *
 * Precedence: defaults < berth.conf < plugstack arguments.  A key given twice
 * in the SAME source is an error (it is almost always an editing mistake that
 * would otherwise silently pick one of two values); a plugstack argument
 * overriding a berth.conf key is allowed, that is what arguments are for.
 *
 * libc only: this layer never includes Slurm or library headers. */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <limits.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/error.h"

#ifndef BERTH_DEFAULT_CONFIG_FILE
#define BERTH_DEFAULT_CONFIG_FILE "/etc/slurm/berth.conf"
#endif
#ifndef BERTH_DEFAULT_LAUNCHER
#define BERTH_DEFAULT_LAUNCHER "/usr/bin/berth"
#endif

#define BERTH_CONF_LINE_MAX 4096 /* longer lines are rejected, not truncated */
#define BERTH_MOUNTS_MAX 32
/* Processes (threads count) in one task's Docker container: a fork bomb
 * stops there, not at the node's pid_max.  Room for a few hundred
 * threads per CPU of a large node. */
#define BERTH_DEFAULT_DOCKER_PIDS_LIMIT 4096
#define BERTH_MAX_DOCKER_PIDS_LIMIT 4194304 /* the kernel's pid_max ceiling */

/* The runtimes berth knows.  The executor registry has one row per entry. */
enum berth_runtime {
	BERTH_RT_CHARLIECLOUD = 0,
	BERTH_RT_SINGULARITY,
	BERTH_RT_DOCKER,
	BERTH_RT_COUNT,
	BERTH_RT_NONE = -1,
};

/* Name <-> enum; "apptainer" is accepted as an alias of singularity.
 * Returns BERTH_RT_NONE for an unknown name. */
enum berth_runtime berth_runtime_from_name(const char *name);
const char *berth_runtime_name(enum berth_runtime rt);

/* How the singularity runtime keeps an image: decided per site. */
enum berth_sing_format {
	BERTH_SING_AUTO = 0,   /* from the installation: see executor/runtime/singularity.c */
	BERTH_SING_SIF,        /* one SIF file per image (SquashFS inside) */
	BERTH_SING_SANDBOX,    /* the flattened folder, run directly */
};

const char *berth_sing_format_name(enum berth_sing_format f);
/* "auto", "sif" or "sandbox" (any case) into *out; -1 for anything else. */
int berth_sing_format_parse(const char *name, enum berth_sing_format *out);

/* The SquashFS compression of the SIFs berth writes: auto picks one the
 * runtime reads (executor/runtime/sing_runtime.h), the others are forced. */
enum berth_sqfs_comp {
	BERTH_SQFS_AUTO = 0,
	BERTH_SQFS_GZIP,
	BERTH_SQFS_LZ4,
	BERTH_SQFS_XZ,
	BERTH_SQFS_ZSTD,
};

/* "auto", "gzip", "lz4", "xz", "zstd": libsquashfs's names too. */
const char *berth_sqfs_comp_name(enum berth_sqfs_comp c);
/* Any case into *out; -1 for anything else. */
int berth_sqfs_comp_parse(const char *name, enum berth_sqfs_comp *out);

/* How the charliecloud runtime keeps an image in the cache (ImageStorage). */
enum berth_image_storage {
	BERTH_STORE_TREE = 0, /* the flattened folder, run directly */
	BERTH_STORE_SQUASHFS, /* one SquashFS file, mounted with squashfuse per step */
	BERTH_STORE_AUTO,     /* squashfs where FUSE works, else tree (said once) */
};

const char *berth_image_storage_name(enum berth_image_storage s);
/* "tree", "squashfs" or "auto" (any case) into *out; -1 for anything else. */
int berth_image_storage_parse(const char *name, enum berth_image_storage *out);

struct berth_config {
	enum berth_runtime default_runtime;  /* DefaultRuntime=charliecloud */
	unsigned allowed_runtimes;           /* AllowedRuntimes, bit (1u << rt) */
	char singularity_path[PATH_MAX];     /* SingularityPath=/usr/bin/singularity */
	enum berth_sing_format sing_format;  /* SingularityImageFormat=auto */
	enum berth_sqfs_comp sqfs_comp;      /* SquashfsCompression=auto */
	char chrun_path[PATH_MAX];           /* ChRunPath=/usr/bin/ch-run */
	enum berth_image_storage image_storage; /* ImageStorage=auto */
	char squashfuse_path[PATH_MAX];      /* SquashfusePath=/usr/bin/squashfuse_ll */
	char docker_socket[PATH_MAX];        /* DockerSocket=/var/run/docker.sock */
	char cache_dir[PATH_MAX];            /* CacheDir=/var/cache/berth */
	uint64_t cache_max_size;             /* CacheMaxSize=50G, bytes, 0 = no cap */
	char launcher_path[PATH_MAX];        /* LauncherPath=<prefix>/bin/berth */
	/* DockerAllowedMounts=/data,/scratch: absolute folder prefixes */
	char *docker_allowed_mounts[BERTH_MOUNTS_MAX];
	unsigned n_docker_allowed_mounts;
	unsigned fetch_timeout;              /* FetchTimeout=300 seconds */
	unsigned stage_timeout;              /* StageTimeout=3600 seconds: a step's staging */
	bool mount_home;                     /* MountHome=yes */
	bool container_writable;             /* ContainerWritable=no: a writable root
					      * unless the job says --container-readonly */
	char default_registry[256];          /* DefaultRegistry=registry-1.docker.io */
	char insecure_registries[1024];      /* InsecureRegistries=host:port,... (plain HTTP) */
	char registry_mirrors[1024];         /* RegistryMirrors=host:port,... (Docker Hub images) */
	char registry_certs_dir[PATH_MAX];   /* RegistryCertsDir=/etc/docker/certs.d */
	char importer[PATH_MAX];             /* Importer=/path/cmd, "" = none: asked
					      * first about every image not a local file */
	unsigned pull_parallel;              /* PullParallel=4 blobs at once */
	bool container_scope_user;           /* ContainerScope=job: named containers
					      * end with the job; user: kept */
	unsigned docker_pids_limit;          /* DockerPidsLimit=4096 per container,
					      * 0 = no limit */
	bool pyxis_env_compat;               /* PyxisEnvCompat=no: also read
					      * PYXIS_CONTAINER_* as the options */
	/* Devices (CDI, conf/devices.c): */
	char cdi_spec_dirs[1024];            /* CdiSpecDirs=/etc/cdi,/var/run/cdi */
	char allowed_devices[1024];          /* AllowedDevices=: what --container-devices
					      * may name (patterns); empty = nothing */
};

/* Is `name` ("KIND=NAME") well formed and within AllowedDevices?  The
 * message says what to write instead. */
int berth_device_check(const struct berth_config *cfg, const char *name, struct berth_err *err);

/* Fill *cfg with the built-in defaults. */
void berth_config_defaults(struct berth_config *cfg);

/* Release what the config owns (mount list).  Safe on a defaulted config. */
void berth_config_free(struct berth_config *cfg);

/* Parse one berth.conf.  When `must_exist` is false, a missing file leaves
 * the config unchanged and returns 0 (the default path is optional: a site
 * may configure everything with plugstack arguments).  Errors name the
 * file, the line and the key. */
int berth_config_load_file(struct berth_config *cfg, const char *path,
			   bool must_exist, struct berth_err *err);

/* The same from text (berth_config_to_text's output): how the plugin hands
 * its effective settings, plugstack arguments included, to the commands it
 * spawns (BERTH_CONFIG_TEXT). */
int berth_config_load_text(struct berth_config *cfg, const char *name, const char *text,
			   struct berth_err *err);

/* berth_config_print into a malloc'd string (NULL when out of memory). */
char *berth_config_to_text(const struct berth_config *cfg);

/* Apply plugstack arguments (each "Key=Value"), then check the keys against
 * each other (DefaultRuntime in AllowedRuntimes): every caller ends with
 * this, with argc 0 when there are no arguments.  `Config=/path` loads that
 * file (which must exist) before the other arguments are applied, whatever
 * its position.  Errors name the argument. */
int berth_config_load_args(struct berth_config *cfg, int argc,
			   char *const argv[], struct berth_err *err);

/* Parse "10G", "512M", "1024" (bytes); suffixes K/M/G/T, powers of 1024,
 * case-insensitive, optional trailing "B".  Returns -1 on a bad value. */
int berth_parse_size(const char *text, uint64_t *out);
/* "1.5G": bytes for people (B, K, M, G, T; one decimal). */
void berth_format_size(unsigned long long bytes, char *out, size_t cap);

/* The runtime a job gets: `name` (NULL: DefaultRuntime), which must be
 * known and in AllowedRuntimes.  The error says which names work or which
 * key to change. */
int berth_config_pick_runtime(const struct berth_config *cfg, const char *name,
			      enum berth_runtime *out, struct berth_err *err);

/* Write the effective configuration as berth.conf lines (for `berth config`). */
void berth_config_print(const struct berth_config *cfg, FILE *out);

#endif
