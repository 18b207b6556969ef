/* berth: a user+mount namespace of berth's own, entered just before a
 * runtime is exec'd, for the mounts that runtime cannot make itself
 * (read-only or flagged binds on ch-run 0.31, tmpfs, noexec).  They are
 * made on a tmpfs at CacheDir/<uid>/layer, at layer/mnt/N, and the
 * runtime binds them in; the kernel locks their flags in the container.
 * Everything vanishes with the namespace: nothing to clean up, nothing
 * written to the cache. */
#ifndef BERTH_MOUNTNS_H
#define BERTH_MOUNTNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/error.h"
#include "conf/mounts.h"

#define BERTH_LAYER_DIR "layer"

/* Unshare a user and a mount namespace; the caller's uid and gid map to
 * themselves (no other id exists there); every mount becomes private. */
int berth_ns_enter(struct berth_err *err);

/* Namespaces of the container's own (what: BERTH_UNSHARE_* bits): network,
 * its loopback brought up and a sysfs of its own on /sys (the host's
 * mounts below /sys kept), IPC, UTS.  They belong to berth's user and mount
 * namespace: entered already (in_userns) or entered here (berth_ns_enter).
 * A runtime exec'd afterwards (ch-run) nests its own user namespace
 * inside and shares them. */
int berth_ns_unshare(unsigned what, bool in_userns, struct berth_err *err);

/* Mount the private tmpfs on `dir` (CacheDir/<uid>/layer) and make its
 * mnt/ folder. */
int berth_ns_layer(const char *dir, struct berth_err *err);

/* Can this process mount a SquashFS image with `squashfuse` (squashfuse_ll
 * of libfuse 3: it serves a /dev/fuse descriptor berth mounted)?  The
 * program must be executable and /dev/fuse open for reading and writing.
 * When not, `why` says which is missing. */
bool berth_ns_squashfs_usable(const char *squashfuse, char *why, size_t len);

/* ...and can it show a SIF's files (all root's) as the user's (-o uid=N,
 * gid=N, which berth_ns_squashfs_detached passes), so that a runtime or
 * berth's overlay over the mount can make mount points and write there? */
bool berth_ns_squashfs_owned_usable(const char *squashfuse, char *why, size_t len);

/* Mount the SquashFS file `image` read-only at DIR/image, in berth's
 * namespace (entered, its layer mounted): berth mounts FUSE on a /dev/fuse
 * descriptor and hands it to `squashfuse -f IMAGE /dev/fd/N`, which ends
 * when the process that becomes the container does (nothing outlives the
 * step; the mount goes with the namespace). */
int berth_ns_squashfs(const char *dir, const char *image, const char *squashfuse,
		      struct berth_err *err);

/* The same for a SquashFS that starts `offset` bytes into `image` (a
 * SIF's partition), for a runtime that execs from a thread other than its
 * first (Apptainer, in Go): the kernel sends a death signal when the
 * thread that started squashfuse ends, which such an exec does, so
 * squashfuse has none here.  It runs in the namespace berth_ns_enter made,
 * which never holds the mount: berth moves to a copy of it and mounts
 * there (setns, back and forth).  The files are shown as the user's
 * (-o uid,gid: berth_ns_squashfs_owned_usable).  When the container's last process ends
 * the mount goes, squashfuse's connection with it, and squashfuse ends. */
int berth_ns_squashfs_detached(const char *dir, const char *image, uint64_t offset,
			       const char *squashfuse, struct berth_err *err);

/* berth_ns_squashfs for a container other tasks may join (a named one, a
 * step's tasks sharing one, JOBID.STEPID): squashfuse runs detached as
 * above, so it serves the image until the container's last process ends,
 * not only while the task that mounted it lives.  The files are shown as
 * they are stored (charliecloud's: the user's). */
int berth_ns_squashfs_shared(const char *dir, const char *image, const char *squashfuse,
			     struct berth_err *err);

/* Hide each host device node of `paths` (NULL-terminated) that exists:
 * an empty file nobody may open (DIR/hidden) is bound over it. */
int berth_ns_hide(const char *dir, char *const *paths, struct berth_err *err);
/* Does any of `paths` name a device node on the host? */
bool berth_ns_any_node(char *const *paths);

/* Mount b at DIR/mnt/I with its flags: a bind of its source, or a tmpfs. */
int berth_ns_stage(const char *dir, size_t i, const struct berth_mount *b,
		   struct berth_err *err);

/* An overlay at DIR/root over the tree `lower` (never written).  Its upper
 * and work halves are DIR/upper and DIR/work on the layer's tmpfs (gone
 * with the namespace), or `keep`/upper and `keep`/work on disk (a named
 * container's).  Returns an O_PATH fd of the overlay's root. */
int berth_ns_overlay(const char *dir, const char *lower, const char *keep,
		     struct berth_err *err);

/* A read-only view at DIR/root of `upper` (a named container's changes)
 * over `lower`, for saving it. */
int berth_ns_overlay_view(const char *dir, const char *upper, const char *lower,
			  struct berth_err *err);

/* Does the tree at root_fd have `dst`?  Looked up beneath it without
 * following symlinks: a target behind one counts as missing. */
bool berth_ns_has(int root_fd, const char *dst);

/* Does the tree at root_fd lack `path`, following its symlinks as the
 * container will (inside the tree)?  Only a missing path counts. */
bool berth_ns_lacks(int root_fd, const char *path);

/* Make the mount targets the tree lacks (folders, or empty files for a
 * source that is not a folder) in the overlay at root_fd.  A mount inside
 * another mount is skipped: its point is in that mount (make_nested). */
int berth_ns_make_targets(int root_fd, const struct berth_mount *m, size_t n,
			  struct berth_err *err);

/* Make container path `path` (a folder, or an empty file) where it lands
 * when it lies inside one of m[0..n): in the host folder of a bind (as
 * Docker and Apptainer make a nested mount point: the user sees an empty
 * folder appear in it), or in a tmpfs berth made at DIR/mnt/J (DIR NULL: none
 * made).  Returns 1 when it lies in a mount, 0 when in none (the caller
 * makes it in the container's own layer), -1 on failure. */
int berth_ns_make_inside(const char *dir, const struct berth_mount *m, size_t n,
			 const char *path, bool is_dir, struct berth_err *err);

/* For each mount of m (sorted parents first) inside an earlier one, make
 * its mount point there (make_inside). */
int berth_ns_make_nested(const char *dir, const struct berth_mount *m, size_t n,
			 struct berth_err *err);

#endif
