/* berth: --container-save: a container's root (its image and its changes,
 * seen through a read-only overlay) written as an image that berth, Docker
 * and the other runtimes can run. */
#ifndef BERTH_SAVE_H
#define BERTH_SAVE_H

#include "conf/error.h"

/* A docker-save archive (legacy layout, one layer) of the tree at `root`,
 * with the base image's config (its Env, Entrypoint, WorkingDir...) and
 * the new layer's digest.  Every file is root's, as in an image; setuid
 * and setgid bits, sockets and device nodes are left out, and so is
 * berth's own /.berth/running-* mark.  Written to a temporary file beside
 * `out_path` and renamed into place: a failure leaves nothing. */
int berth_save_docker_archive(const char *root, const char *base_config, size_t config_len,
			      const char *out_path, struct berth_err *err);

#endif
