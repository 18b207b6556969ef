/* berth: --container-save: a container's root (its image and its changes,
 * seen through a read-only overlay) written as an image that berth, Docker
 * and the other runtimes can run. */
#ifndef BERTH_SAVE_H
#define BERTH_SAVE_H

#include "conf/error.h"

struct berth_executor;
struct berth_named;

/* --container-save, by the task that ran the container, once it ended:
 * the named container's layer over its image (ex's artifact of
 * named->digest), seen read-only in a user and mount namespace of a
 * child's own (mountns.h), written to `path` as a docker-save archive with
 * the image's config.  The child says why it failed on stderr. */
int berth_save_container(struct berth_executor *ex, const struct berth_named *named,
			 const char *path, struct berth_err *err);

/* A docker-save archive (legacy layout, one layer) of the tree at `root`,
 * with the base image's config (its Env, Entrypoint, WorkingDir...) and
 * the new layer's digest.  Every file is root's, as in an image; setuid
 * and setgid bits, sockets and device nodes are left out, and so is
 * berth's own /.berth/running-* mark.  Written to a temporary file beside
 * `out_path` and renamed into place: a failure leaves nothing. */
int berth_save_docker_archive(const char *root, const char *base_config, size_t config_len,
			      const char *out_path, struct berth_err *err);

#endif
