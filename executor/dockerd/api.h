/* berth: a small Docker Engine API client (uhttp.c over the unix socket).
 *
 * Root-side only: Docker is root-equivalent (DESIGN.md, "Privilege model").
 * No docker CLI. The API version is negotiated from GET /_ping: the
 * daemon's Api-Version header, capped at BERTH_DOCKER_API_MAX; every later
 * path is "/v<version>/...".
 *
 * Errors follow conf/error.h: a daemon that does not answer gives
 * "cannot reach Docker at <socket>: <reason>"; a daemon error answer gives
 * the daemon's "message" field and the HTTP status.
 *
 * Container creation takes only the vetted fields of struct
 * berth_docker_create; the request always carries Privileged=false,
 * CapDrop=[ALL], SecurityOpt=[no-new-privileges], Init=true, Tty=false and
 * AutoRemove=false (berth removes containers explicitly). */
#ifndef BERTH_DOCKER_API_H
#define BERTH_DOCKER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/error.h"
#include "executor/base/process.h"

#define BERTH_DOCKER_SOCKET "/var/run/docker.sock"
#define BERTH_DOCKER_API_MAX_MAJOR 1
#define BERTH_DOCKER_API_MAX_MINOR 41 /* Docker 20.10 */
#define BERTH_DOCKER_API_MIN_MAJOR 1
#define BERTH_DOCKER_API_MIN_MINOR 40 /* Docker 19.03 */
/* "sha256:" + 64 hex + NUL for images; 64 hex + NUL for containers. */
#define BERTH_DOCKER_ID_MAX 72

struct berth_docker; /* socket path, api version, one kept-alive connection */

/* Connect, ask GET /_ping (its Api-Version header) and pick the API version. */
int berth_docker_open(struct berth_docker **d, const char *socket_path,
		      struct berth_err *err);
void berth_docker_close(struct berth_docker *d);
/* "1.41" */
const char *berth_docker_api_version(const struct berth_docker *d);

/* ---- images ------------------------------------------------------------ */

/* GET /images/{ref}/json. *present is false (and 0 returned) on 404;
 * otherwise id gets the image ID "sha256:..." (== config digest). */
int berth_docker_image_inspect(struct berth_docker *d, const char *ref,
			       bool *present, char id[BERTH_DOCKER_ID_MAX],
			       struct berth_err *err);

/* The image's Config (Env, WorkingDir, Entrypoint, ...) as an image-config
 * document {"config": {...}} for berth_image_parse_config; malloc'd. */
int berth_docker_image_config(struct berth_docker *d, const char *ref, char **config,
			      struct berth_err *err);

/* POST /images/load?quiet=1, the archive streamed from archive_fd (with its
 * size when it is a regular file, chunked otherwise; never copied to disk).
 * An error inside the 200 message stream is a failure with that message.
 * id gets the first loaded image's ID: from "Loaded image ID: sha256:..."
 * or, for "Loaded image: name:tag", from an inspect of that name (a
 * concurrent load of the same tag could move it in between; callers that
 * know the config digest should compare). */
int berth_docker_image_load(struct berth_docker *d, int archive_fd,
			    char id[BERTH_DOCKER_ID_MAX], struct berth_err *err);

/* GET /images/{ref}/get: the image as `docker save` writes it, streamed
 * to out_fd as it comes (never held in memory), at most max_bytes (0: no
 * cap).  For dockerd:// images, run as the job user: the socket's own
 * permissions decide who may export. */
int berth_docker_image_save(struct berth_docker *d, const char *ref, int out_fd,
			    uint64_t max_bytes, struct berth_err *err);

/* The two above on a connection of their own (berth_docker_open, the
 * call, close): dockerd:// images, wired into the cache by cli/main.c. */
int berth_docker_id_at(const char *socket_path, const char *name, bool *present,
		       char id[BERTH_DOCKER_ID_MAX], struct berth_err *err);
int berth_docker_save_at(const char *socket_path, const char *ref, int out_fd,
			 uint64_t max_bytes, struct berth_err *err);

/* DELETE /images/{ref}?noprune=0 (not forced: an image in use stays and is
 * an error). Given a tag, only that tag goes unless it was the last one.
 * A missing image is success. */
int berth_docker_image_remove(struct berth_docker *d, const char *ref,
			      struct berth_err *err);

/* ---- containers -------------------------------------------------------- */

struct berth_docker_bind {
	const char *src; /* absolute host path, no ':' or ','; NULL for a tmpfs */
	const char *dst; /* absolute container path, no ':' or ',' */
	bool read_only;
	const char *propagation;   /* NULL, private, rprivate, slave or rslave */
	const char *tmpfs_options; /* a tmpfs (HostConfig.Tmpfs) with these
				    * options, [a-z0-9=,] only; else a bind */
};

/* Only vetted fields exist here; nothing else can be set. */

struct berth_docker_create {
	const char *image;    /* image ID (or name) */
	char *const *argv;    /* NULL-terminated; NULL or empty = image default */
	char *const *env;     /* NULL-terminated "K=V"; may be NULL */
	const char *workdir;  /* NULL = image default */
	uid_t uid;            /* -> "User": "uid:gid" */
	gid_t gid;
	const gid_t *groups;  /* -> HostConfig.GroupAdd */
	size_t n_groups;
	const struct berth_docker_bind *binds; /* -> HostConfig.Binds */
	char *const *devices; /* "HOST:CONTAINER" -> HostConfig.Devices, rwm */
	size_t n_binds;
	bool network_none;    /* NetworkMode "none", else "host" */
	const char *hostname; /* Hostname (only with network_none: host
			       * networking has the node's already), NULL:
			       * Docker's (the container's id) */
	bool ipc_private;     /* IpcMode "private", else the daemon's default
			       * (private or shareable: the container's own
			       * either way, but for containers that join it) */
	bool writable;        /* HostConfig.ReadonlyRootfs = !writable */
	uint64_t memory_bytes; /* HostConfig.Memory and MemorySwap (no swap
				* beyond it), 0 = no limit */
	unsigned cpus;        /* HostConfig.NanoCpus = cpus * 1e9, 0 = none */
	const char *cpuset_cpus; /* HostConfig.CpusetCpus ("0-3,8"), NULL = all */
	uint64_t pids_limit;  /* HostConfig.PidsLimit, 0 = none */
	const struct berth_ulimit *ulimits; /* HostConfig.Ulimits */
	size_t n_ulimits;
	const char *cgroup_parent; /* HostConfig.CgroupParent or NULL */
	const char *label_job, *label_step, *label_uid; /* berth.job/.step/.uid */
	const char *label_node;                         /* berth.node */
	bool open_stdin;      /* OpenStdin + StdinOnce + AttachStdin */
};

/* Validates every field first (before any API call), then
 * POST /containers/create. id gets the container ID (64 hex). */
int berth_docker_container_create(struct berth_docker *d,
				  const struct berth_docker_create *c,
				  char id[BERTH_DOCKER_ID_MAX],
				  struct berth_err *err);

/* POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1 with
 * Upgrade: tcp on a fresh AF_UNIX connection; *sock_fd gets the raw stream
 * (close-on-exec, blocking). Attach before start so no output is lost. */
int berth_docker_attach(struct berth_docker *d, const char *id, int *sock_fd,
			struct berth_err *err);

/* Copy in_fd -> sock_fd (raw; at EOF of in_fd shut the socket's write side,
 * which closes the container's stdin; in_fd < 0 means no input) and
 * demultiplex sock_fd's frames to out_fd (streams 0, 1) and err_fd (2).
 * Returns 0 when the daemon closes the stream. Leaves sock_fd open. */
int berth_docker_relay(int sock_fd, int in_fd, int out_fd, int err_fd,
		       struct berth_err *err);

int berth_docker_container_start(struct berth_docker *d, const char *id,
				 struct berth_err *err);

/* POST /containers/{id}/wait (condition not-running: call it after start).
 * *status gets StatusCode: the exit code, 128+N after signal N. */
int berth_docker_container_wait(struct berth_docker *d, const char *id,
				int *status, struct berth_err *err);

/* POST /containers/{id}/kill?signal=SIGxxx. A container that is not running
 * (HTTP 409) is success: the goal, a stopped container, holds. */
int berth_docker_container_kill(struct berth_docker *d, const char *id,
				int signo, struct berth_err *err);

struct berth_docker_state {
	char status[16]; /* created, running, paused, restarting, removing,
			    exited, dead */
	int exit_code;
	pid_t pid;       /* host pid of the init process, 0 when not running */
};

/* GET /containers/{id}/json -> State. *present false on 404. */
int berth_docker_container_inspect(struct berth_docker *d, const char *id,
				   bool *present, struct berth_docker_state *st,
				   struct berth_err *err);

/* DELETE /containers/{id}?force=1&v=1. A missing container is success. */
int berth_docker_container_remove(struct berth_docker *d, const char *id,
				  struct berth_err *err);

/* GET /containers/json?all=1&filters={"label":["<label>"(,"<also>")]},
 * each "key=value" or "key"; `also` (may be NULL) narrows the list further.
 * *ids gets a NULL-terminated array (free with berth_docker_ids_free), *n its
 * length. */
int berth_docker_container_list(struct berth_docker *d, const char *label,
				const char *also, char ***ids, size_t *n,
				struct berth_err *err);
void berth_docker_ids_free(char **ids);

#endif
