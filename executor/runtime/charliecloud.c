/* berth: the Charliecloud runtime (ch-run on the cached flattened rootfs,
 * or with ImageStorage=squashfs on one SquashFS file per image, mounted
 * with squashfuse in berth's namespace under an overlay at every start).
 *
 * ch-run 0.31 binds only onto paths that exist in the image, has no
 * read-only bind, no mount flags and no tmpfs.  The cached image is never
 * written to, so berth prepares what ch-run lacks in a user+mount namespace
 * of its own, entered just before exec, on a tmpfs mounted at
 * CacheDir/<uid>/layer (private to that namespace; it vanishes with it):
 *  - an overlay over the cached tree (upper half on that tmpfs) when the
 *    container is writable or a mount target is missing from the image:
 *    the missing targets and working folder are made in the overlay, never
 *    in the cache;
 *  - a mount inside another (binds are sorted parents first) gets its
 *    mount point in the outer one's host folder, as Docker and Apptainer
 *    make it (ch-run 0.31 refuses to mkdir under a bind);
 *  - each mount ch-run cannot make itself (read-only, nosuid, nodev,
 *    noexec, tmpfs) made there first, with its flags, at layer/mnt/N;
 *  - the host's device nodes of CDI devices the step was not given
 *    (spec->hide_nodes), covered by an empty file nobody may open: ch-run
 *    binds the host's /dev, recursively, so the cover reaches it;
 *    ch-run's recursive bind carries it into the container, where the
 *    kernel locks the flags.
 * A job with only plain read-write binds onto existing targets needs none
 * of it: ch-run runs straight on the cached tree.
 * --container-unshare: ch-run 0.31 makes only user and mount namespaces;
 * berth makes the network, IPC and UTS ones in its own user namespace
 * (mountns.h) and ch-run nests its own inside, sharing them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "executor/runtime/caps.h"
#include "executor/executor.h"
#include "executor/base/fs.h"
#include "executor/runtime/fakeroot.h"
#include "executor/runtime/mountns.h"
#include "executor/runtime/sqfs_probe.h"

#define LAYER_DIR BERTH_LAYER_DIR


/* What cc_prepare and cc_create decided, for cc_before_exec. */
struct cc_plan {
	bool sqfs;     /* ImageStorage: the image is one SquashFS file, mounted */
	bool layer;    /* the namespace and its tmpfs at CacheDir/<uid>/layer */
	bool overlay;  /* ch-run runs on layer/root, an overlay over the cache */
	bool *staged;  /* per mount: made at layer/mnt/N first */
	size_t n_staged;
	/* The home folder over an overlay: bound by berth, not ch-run's --home,
	 * which from 0.38 on lays a tmpfs of its own over the root (writes would
	 * miss a named container's layer). */
	struct berth_mount home;
};

/* A bind ch-run makes itself: read-write, no flags, onto a target the
 * image has.  Its propagation is private, as ch-run makes every mount. */
static bool chrun_binds_it(const struct berth_mount *b)
{
	return b->kind == BERTH_MOUNT_BIND && !b->read_only && !b->flags &&
	       (b->propagation == BERTH_PROP_DEFAULT || b->propagation == BERTH_PROP_PRIVATE ||
		b->propagation == BERTH_PROP_RPRIVATE);
}

static const struct berth_artifact *cc_artifact(struct berth_executor *ex)
{
	const struct cc_plan *plan = ex->priv;

	return plan && plan->sqfs ? &berth_artifact_rootfs_sqfs : &berth_artifact_rootfs;
}

/* Can SquashfusePath serve an image here?  Tried once in a child
 * (sqfs_probe.h) and remembered in the user's cache folder. */
static bool cc_squashfs_works(struct berth_executor *ex, char *why, size_t len)
{
	char dir[PATH_MAX];

	if (mkdirat(ex->cache.dir_fd, LAYER_DIR, 0700) < 0 && errno != EEXIST) {
		snprintf(why, len, "cannot create %s/" LAYER_DIR ": %s", ex->cache.dir,
			 strerror(errno));
		return false;
	}
	snprintf(dir, sizeof(dir), "%s/" LAYER_DIR, ex->cache.dir);
	return berth_ns_squashfs_probe(ex->cfg->squashfuse_path, dir, ex->cache.dir_fd, why, len);
}

/* ImageStorage: squashfs needs a squashfuse that can mount an image here
 * (else the job fails, naming the fix); auto takes it where it can and
 * says so in the step's log where it cannot.  Staging and the step's start
 * decide the same way, so both use the same file. */
static int cc_prepare(struct berth_executor *ex, struct berth_err *err)
{
	struct cc_plan *plan = calloc(1, sizeof(*plan));
	char why[PATH_MAX + 2048];

	if (!plan)
		return berth_fail(err, ENOMEM, "executor");
	ex->priv = plan;
	if (ex->cfg->image_storage == BERTH_STORE_TREE)
		return 0;
	plan->sqfs = cc_squashfs_works(ex, why, sizeof(why));
	if (plan->sqfs)
		return 0;
	if (ex->cfg->image_storage == BERTH_STORE_SQUASHFS)
		return berth_fail(err, 0, "ImageStorage=squashfs, but %s: install a squashfuse "
				  "that works (squashfuse_ll of libfuse 3) at SquashfusePath and give "
				  "users /dev/fuse, or set ImageStorage=tree or auto in berth.conf",
				  why);
	fprintf(stderr, "berth: ImageStorage=auto: %s; images are kept as folders here "
		"(to keep them as one SquashFS file each, make squashfuse work for users; "
		"ImageStorage=tree in berth.conf silences this)\n", why);
	return 0;
}

static void cc_release(struct berth_executor *ex)
{
	struct cc_plan *plan = ex->priv;

	if (plan) {
		free(plan->staged);
		free(plan->home.src);
		free(plan->home.dst);
	}
	free(plan);
	ex->priv = NULL;
}

static int plan_mounts(struct berth_executor *ex, const struct berth_container_spec *spec,
		       int root_fd, struct berth_err *err)
{
	struct cc_plan *plan = ex->priv;

	if (!(plan->staged = calloc(spec->n_binds + 1, sizeof(bool))))
		return berth_fail(err, ENOMEM, "mounts");
	plan->n_staged = spec->n_binds;
	/* a SquashFS image is mounted in berth's namespace, under an overlay
	 * where the missing mount points are made (root_fd is -1 then) */
	plan->overlay = spec->writable || spec->layer_dir || plan->sqfs;
	for (size_t i = 0; i < spec->n_binds; i++) {
		const struct berth_mount *b = &spec->binds[i];
		if (berth_runtime_can_mount(BERTH_RT_CHARLIECLOUD, b, err) < 0)
			return -1;
		plan->staged[i] = !chrun_binds_it(b);
		plan->layer |= plan->staged[i];
		/* a mount inside another has its point there, not in the image */
		if (berth_mount_parent(spec->binds, i) < 0 && !berth_ns_has(root_fd, b->dst))
			plan->overlay = true;
	}
	/* A working folder the image lacks is made in the container's own
	 * layer (or in the mount it lies in), as Docker makes it. */
	const char *wd = berth_spec_workdir(ex);
	if (berth_mount_holding(spec->binds, spec->n_binds, wd) < 0 && berth_ns_lacks(root_fd, wd))
		plan->overlay = true;
	plan->layer |= plan->overlay || berth_ns_any_node(spec->hide_nodes);
	/* The home at its own path (/root under remapped root), as pyxis:
	 * ch-run's --home only where that is /home/$USER and no overlay is
	 * laid; elsewhere a bind, made in the overlay if the image lacks it. */
	char buf[PATH_MAX], own[PATH_MAX];
	const char *home = spec->mount_home ? berth_spec_home(ex, buf, sizeof(buf)) : NULL;
	const char *user = getenv("USER");
	if (!home)
		return 0;
	const char *dst = berth_spec_home_dst(ex, home);
	snprintf(own, sizeof(own), "/home/%s", user ? user : "");
	if (!plan->overlay && user && *user && !strcmp(dst, own))
		return 0;
	if (!berth_ns_has(root_fd, dst))
		plan->overlay = plan->layer = true;
	plan->home.src = strdup(home);
	plan->home.dst = strdup(dst);
	if (!plan->home.src || !plan->home.dst)
		return berth_fail(err, ENOMEM, "home");
	return 0;
}

static bool env_has(char *const *env, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], name, len) && env[i][len] == '=')
			return true;
	return false;
}

static int add_binds(struct berth_executor *ex, const struct berth_container_spec *spec,
		     struct berth_strv *argv, struct berth_err *err)
{
	const struct cc_plan *plan = ex->priv;

	for (size_t i = 0; i < spec->n_binds; i++) {
		const struct berth_mount *b = &spec->binds[i];
		int rc = plan->staged[i]
			? berth_strv_addf(argv, err, "--bind=%s/" LAYER_DIR "/mnt/%zu:%s",
					  ex->cache.dir, i, b->dst)
			: berth_strv_addf(argv, err, "--bind=%s:%s", b->src, b->dst);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int cc_create(struct berth_executor *ex, const struct berth_container_spec *spec,
		     struct berth_err *err)
{
	struct berth_strv argv = {0}, envp = {0};
	char rootfs[PATH_MAX], layer_root[PATH_MAX + 16];

	const struct cc_plan *plan = ex->priv;
	berth_cache_entry_path(&ex->cache, ex->digest, cc_artifact(ex)->leaf, rootfs);
	_cleanup_close_ int root_fd = plan->sqfs ? -1 :
		open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0 && !plan->sqfs)
		return berth_fail(err, errno, "image rootfs %s", rootfs);
	if (plan_mounts(ex, spec, root_fd, err) < 0)
		return -1;
	snprintf(layer_root, sizeof(layer_root), "%s/" LAYER_DIR "/root", ex->cache.dir);
	if (plan->layer && mkdirat(ex->cache.dir_fd, LAYER_DIR, 0700) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s/" LAYER_DIR, ex->cache.dir);
	if (berth_strv_add(&argv, ex->cfg->chrun_path, err) < 0 ||
	    (spec->mount_home && !plan->home.dst && berth_strv_add(&argv, "--home", err) < 0) ||
	    (plan->home.dst && berth_strv_addf(&argv, err, "--bind=%s:%s", plan->home.src,
					       plan->home.dst) < 0) ||
	    /* ch-run 0.3x keeps the HOME it is given; later releases set
	     * /root unless --home is given: the bound home is said outright */
	    (plan->home.dst && berth_strv_addf(&argv, err, "--set-env=HOME=%s",
					       plan->home.dst) < 0) ||
	    (spec->writable && berth_strv_add(&argv, "--write", err) < 0) ||
	    (spec->no_passwd && berth_strv_add(&argv, "--no-passwd", err) < 0) ||
	    (spec->remap_root && (berth_strv_add(&argv, "--uid=0", err) < 0 ||
				  berth_strv_add(&argv, "--gid=0", err) < 0)) ||
	    berth_strv_addf(&argv, err, "--cd=%s", berth_spec_workdir(ex)) < 0 ||
	    add_binds(ex, spec, &argv, err) < 0)
		goto fail;
	/* ch-run itself needs $USER; the command gets it only if asked for. */
	/* remapped root's home is /root, where its home folder is bound */
	bool root_home = spec->remap_root && plan->home.dst;
	for (size_t i = 0; spec->env && spec->env[i]; i++)
		if (!(root_home && !strncmp(spec->env[i], "HOME=", 5)) &&
		    berth_strv_add(&envp, spec->env[i], err) < 0)
			goto fail;
	if (root_home && berth_strv_add(&envp, "HOME=/root", err) < 0)
		goto fail;
	if (!env_has(spec->env, "USER")) {
		const char *user = getenv("USER");
		if (berth_strv_addf(&envp, err, "USER=%s", user ? user : "berth") < 0 ||
		    berth_strv_add(&argv, "--unset-env=USER", err) < 0)
			goto fail;
	}
	/* With an overlay ch-run gets it, never the cached tree (one job's
	 * changes must not reach the next job). */
	if (berth_strv_add(&argv, plan->overlay ? layer_root : rootfs, err) < 0 ||
	    berth_strv_add(&argv, "--", err) < 0)
		goto fail;
	return berth_executor_set_command(ex, &argv, &envp, err);
fail:
	berth_strv_free(argv.v);
	berth_strv_free(envp.v);
	return -1;
}

static int cc_before_exec(struct berth_executor *ex, struct berth_err *err)
{
	const struct berth_container_spec *spec = ex->spec;
	const struct cc_plan *plan = ex->priv;
	char dir[PATH_MAX + 16];

	const char *wd = berth_spec_workdir(ex);

	if (spec->remap_root && berth_fake_id_syscalls(err) < 0)
		return -1;
	/* Nested mount points and a working folder inside a mount: in the
	 * mount's host folder (ch-run refuses to make them under a bind). */
	if (!plan || !plan->layer)
		return berth_ns_make_nested(NULL, spec->binds, spec->n_binds, err) < 0 ||
		       berth_ns_make_inside(NULL, spec->binds, spec->n_binds, wd, true, err) < 0 ||
		       berth_ns_unshare(spec->unshare, false, err) < 0
			? -1 : 0;
	snprintf(dir, sizeof(dir), "%s/" LAYER_DIR, ex->cache.dir);
	if (berth_ns_enter(err) < 0 || berth_ns_layer(dir, err) < 0 ||
	    berth_ns_hide(dir, spec->hide_nodes, err) < 0)
		return -1;
	if (plan->overlay) {
		char rootfs[PATH_MAX], image[PATH_MAX + 16];
		berth_cache_entry_path(&ex->cache, ex->digest, cc_artifact(ex)->leaf, rootfs);
		snprintf(image, sizeof(image), "%s/image", dir);
		if (plan->sqfs && berth_ns_squashfs_shared(dir, rootfs, ex->cfg->squashfuse_path,
						     err) < 0)
			return -1;
		_cleanup_close_ int root_fd = berth_ns_overlay(dir, plan->sqfs ? image : rootfs,
							       spec->layer_dir, err);
		/* the command looked up as check_command does in a tree: 127 or
		 * 126 for the workflow engine, not ch-run's 1 */
		if (root_fd >= 0 && plan->sqfs && berth_executor_check_command_at(ex, root_fd, err) < 0)
			return -1;
		if (root_fd < 0 || berth_ns_make_targets(root_fd, spec->binds, spec->n_binds, err) < 0 ||
		    (plan->home.dst && berth_ns_make_targets(root_fd, &plan->home, 1, err) < 0))
			return -1;
		struct berth_mount wd_point = {.kind = BERTH_MOUNT_TMPFS, .dst = (char *)wd};
		if (berth_mount_holding(spec->binds, spec->n_binds, wd) < 0 &&
		    berth_ns_lacks(root_fd, wd) && berth_ns_make_targets(root_fd, &wd_point, 1, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < spec->n_binds; i++)
		if (plan->staged[i] && berth_ns_stage(dir, i, &spec->binds[i], err) < 0)
			return -1;
	if (berth_ns_make_nested(dir, spec->binds, spec->n_binds, err) < 0 ||
	    berth_ns_make_inside(dir, spec->binds, spec->n_binds, wd, true, err) < 0)
		return -1;
	return berth_ns_unshare(spec->unshare, true, err);
}

const struct berth_executor_ops berth_charliecloud_ops = {
	.name = "charliecloud",
	.artifact = cc_artifact,
	.prepare = cc_prepare,
	.create = cc_create,
	.before_exec = cc_before_exec,
	.release = cc_release,
};
