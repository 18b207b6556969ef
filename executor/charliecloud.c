/* berth: the Charliecloud runtime (ch-run on the cached flattened rootfs).
 *
 * ch-run 0.31 binds only onto paths that exist in the image, has no
 * read-only bind, no mount flags and no tmpfs.  The cached image is never
 * written to, so berth prepares what ch-run lacks in a user+mount namespace
 * of its own, entered just before exec, on a tmpfs mounted at
 * CacheDir/<uid>/layer (private to that namespace; it vanishes with it):
 *  - an overlay over the cached tree (upper half on that tmpfs) when the
 *    container is writable or a mount target is missing from the image:
 *    the missing targets are made in the overlay, never in the cache;
 *  - each mount ch-run cannot make itself (read-only, nosuid, nodev,
 *    noexec, tmpfs) made there first, with its flags, at layer/mnt/N;
 *    ch-run's recursive bind carries it into the container, where the
 *    kernel locks the flags.
 * A job with only plain read-write binds onto existing targets needs none
 * of it: ch-run runs straight on the cached tree. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "executor.h"
#include "fs.h"

/* CacheDir/<uid>/LAYER_DIR: an empty folder each writable container mounts
 * its own tmpfs on, in its own mount namespace. */
#define LAYER_DIR "layer"

static const struct berth_artifact *cc_artifact(struct berth_executor *ex)
{
	(void)ex;
	return &berth_artifact_rootfs;
}

/* What cc_create decided, for cc_before_exec. */
struct cc_plan {
	bool layer;    /* the namespace and its tmpfs at CacheDir/<uid>/layer */
	bool overlay;  /* ch-run runs on layer/root, an overlay over the cache */
	bool *staged;  /* per mount: made at layer/mnt/N first */
	size_t n_staged;
};

/* A bind ch-run makes itself: read-write, no flags, onto a target the
 * image has.  Its propagation is private, as ch-run makes every mount. */
static bool chrun_binds_it(const struct berth_mount *b)
{
	return b->kind == BERTH_MOUNT_BIND && !b->read_only && !b->flags &&
	       (b->propagation == BERTH_PROP_DEFAULT || b->propagation == BERTH_PROP_PRIVATE ||
		b->propagation == BERTH_PROP_RPRIVATE);
}

static int check_propagation(const struct berth_mount *b, struct berth_err *err)
{
	switch (b->propagation) {
	case BERTH_PROP_DEFAULT: case BERTH_PROP_PRIVATE: case BERTH_PROP_RPRIVATE:
		return 0;
	default:
		return berth_fail(err, 0, "mount %s: charliecloud cannot make a %s mount "
				  "(ch-run makes every mount private); drop the flag or use "
				  "--container-runtime=docker", b->dst,
				  berth_propagation_name(b->propagation));
	}
}

/* Does the image have `dst`?  Looked up beneath the rootfs without
 * following symlinks: a target behind one counts as missing. */
static bool image_has(int root_fd, const char *dst)
{
	int fd = berth_open_beneath(root_fd, dst + 1, O_PATH, 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void cc_release(struct berth_executor *ex)
{
	struct cc_plan *plan = ex->priv;

	if (plan)
		free(plan->staged);
	free(plan);
	ex->priv = NULL;
}

static int plan_mounts(struct berth_executor *ex, const struct berth_container_spec *spec,
		       int root_fd, struct berth_err *err)
{
	struct cc_plan *plan = calloc(1, sizeof(*plan));

	if (!plan || !(plan->staged = calloc(spec->n_binds + 1, sizeof(bool)))) {
		free(plan);
		return berth_fail(err, ENOMEM, "mounts");
	}
	ex->priv = plan;
	plan->n_staged = spec->n_binds;
	plan->overlay = spec->writable;
	for (size_t i = 0; i < spec->n_binds; i++) {
		const struct berth_mount *b = &spec->binds[i];
		if (check_propagation(b, err) < 0)
			return -1;
		plan->staged[i] = !chrun_binds_it(b);
		plan->layer |= plan->staged[i];
		if (!image_has(root_fd, b->dst))
			plan->overlay = true;
	}
	plan->layer |= plan->overlay;
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

	berth_cache_entry_path(&ex->cache, ex->digest, "rootfs", rootfs);
	_cleanup_close_ int root_fd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return berth_fail(err, errno, "image rootfs %s", rootfs);
	if (plan_mounts(ex, spec, root_fd, err) < 0)
		return -1;
	const struct cc_plan *plan = ex->priv;
	snprintf(layer_root, sizeof(layer_root), "%s/" LAYER_DIR "/root", ex->cache.dir);
	if (plan->layer && mkdirat(ex->cache.dir_fd, LAYER_DIR, 0700) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s/" LAYER_DIR, ex->cache.dir);
	if (berth_strv_add(&argv, ex->cfg->chrun_path, err) < 0 ||
	    (spec->mount_home && berth_strv_add(&argv, "--home", err) < 0) ||
	    (spec->writable && berth_strv_add(&argv, "--write", err) < 0) ||
	    berth_strv_addf(&argv, err, "--cd=%s", berth_spec_workdir(ex)) < 0 ||
	    add_binds(ex, spec, &argv, err) < 0)
		goto fail;
	/* ch-run itself needs $USER; the command gets it only if asked for. */
	for (size_t i = 0; spec->env && spec->env[i]; i++)
		if (berth_strv_add(&envp, spec->env[i], err) < 0)
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

static int write_file(const char *path, const char *text, struct berth_err *err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return berth_fail(err, errno, "cannot write %s", path);
	return 0;
}

/* Flags a bind remount must keep: the kernel refuses to drop locked ones. */
static unsigned long kept_flags(const char *path)
{
	struct statvfs sv;
	unsigned long flags = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		flags |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		flags |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		flags |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		flags |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		flags |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		flags |= MS_RELATIME;
	return flags;
}

/* The tmpfs that holds the overlay's upper half and the staged mounts, in
 * this process's private mount namespace: it vanishes with the namespace,
 * so nothing is left to clean up. */
static int mount_layer(const char *dir, struct berth_err *err)
{
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
		return berth_fail(err, errno, "cannot mount a tmpfs on %s", dir);
	return 0;
}

/* An overlay over the cached tree at DIR/root, its upper half on the
 * layer's tmpfs (Apptainer's --writable-tmpfs, for ch-run, whose 0.31 has
 * no --write-fake).  Returns an O_PATH fd of the overlay's root. */
static int mount_overlay(struct berth_executor *ex, const char *dir, struct berth_err *err)
{
	char rootfs[PATH_MAX], path[PATH_MAX + 16], opts[3 * PATH_MAX + 64];

	berth_cache_entry_path(&ex->cache, ex->digest, "rootfs", rootfs);
	if (strpbrk(rootfs, ",:\\"))
		return berth_fail(err, 0, "the cache path %s holds a ',', ':' or '\\', which "
				  "overlayfs cannot take; choose another CacheDir", rootfs);
	static const char *const parts[] = {"upper", "work", "root"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, parts[i]);
		if (mkdir(path, 0755) < 0)
			return berth_fail(err, errno, "cannot create %s", path);
	}
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", rootfs, dir,
		 dir);
	snprintf(path, sizeof(path), "%s/root", dir);
	if (mount("overlay", path, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
		return berth_fail(err, errno, "cannot give the container its own layer "
				  "(overlayfs in a user namespace needs Linux 5.11 or later)");
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(err, errno, "%s", path);
	return fd;
}

/* A target the image lacks, made in the overlay: a folder, or an empty
 * file when the source is not a folder (a file, /dev/null). */
static int make_target(int root_fd, const struct berth_mount *b, struct berth_err *err)
{
	struct stat st;
	bool dir = b->kind == BERTH_MOUNT_TMPFS;

	if (!dir && stat(b->src, &st) < 0)
		return berth_fail(err, errno, "mount source %s", b->src);
	dir = dir || S_ISDIR(st.st_mode);
	_cleanup_free_ char *parent = strdup(b->dst);
	if (!parent)
		return berth_fail(err, ENOMEM, "mount point");
	char *slash = strrchr(parent, '/'); /* dst is absolute: never NULL */
	*slash = '\0';
	_cleanup_close_ int pfd = berth_mkdir_beneath(root_fd, parent, 0755);
	if (pfd < 0 || (dir ? mkdirat(pfd, slash + 1, 0755)
			    : mknodat(pfd, slash + 1, S_IFREG | 0644, 0)) < 0) {
		if (pfd >= 0 && errno == EEXIST)
			return 0;
		return berth_fail(err, errno, "cannot create the mount point %s (a "
				  "symlink in the image's path to it?)", b->dst);
	}
	return 0;
}

static unsigned long flags_of(const struct berth_mount *b)
{
	return (b->read_only ? MS_RDONLY : 0) | (b->flags & BERTH_MNT_NOSUID ? MS_NOSUID : 0) |
	       (b->flags & BERTH_MNT_NODEV ? MS_NODEV : 0) |
	       (b->flags & BERTH_MNT_NOEXEC ? MS_NOEXEC : 0);
}

/* Mount `b` at layer/mnt/N with its flags, for ch-run to bind in. */
static int stage_mount(const char *dir, size_t i, const struct berth_mount *b,
		       struct berth_err *err)
{
	char at[PATH_MAX + 64], opts[64];
	struct stat st;

	snprintf(at, sizeof(at), "%s/mnt/%zu", dir, i);
	if (b->kind == BERTH_MOUNT_TMPFS) {
		int n = snprintf(opts, sizeof(opts), "mode=%04o",
				 b->tmpfs_mode_set ? b->tmpfs_mode : 01777);
		if (b->tmpfs_size)
			snprintf(opts + n, sizeof(opts) - (size_t)n, ",size=%llu",
				 (unsigned long long)b->tmpfs_size);
		if (mkdir(at, 0700) < 0 || mount("tmpfs", at, "tmpfs", flags_of(b), opts) < 0)
			return berth_fail(err, errno, "cannot make the tmpfs for %s", b->dst);
		return 0;
	}
	if (stat(b->src, &st) < 0)
		return berth_fail(err, errno, "mount source %s", b->src);
	if ((S_ISDIR(st.st_mode) ? mkdir(at, 0700) : mknod(at, S_IFREG | 0600, 0)) < 0 ||
	    mount(b->src, at, NULL, MS_BIND | MS_REC, NULL) < 0 ||
	    mount(NULL, at, NULL, MS_BIND | MS_REMOUNT | flags_of(b) | kept_flags(at), NULL) < 0)
		return berth_fail(err, errno, "cannot prepare the mount of %s at %s", b->src,
				  b->dst);
	return 0;
}

static int enter_namespace(struct berth_err *err)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return berth_fail(err, errno, "cannot create a namespace for the container's "
				  "mounts or writable layer (are unprivileged user namespaces "
				  "enabled?)");
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (write_file("/proc/self/setgroups", "deny", err) < 0 ||
	    write_file("/proc/self/uid_map", map, err) < 0)
		return -1;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if (write_file("/proc/self/gid_map", map, err) < 0)
		return -1;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return berth_fail(err, errno, "cannot make mounts private");
	return 0;
}

static int cc_before_exec(struct berth_executor *ex, struct berth_err *err)
{
	const struct berth_container_spec *spec = ex->spec;
	const struct cc_plan *plan = ex->priv;
	char dir[PATH_MAX + 16], mnt[PATH_MAX + 32];

	if (!plan || !plan->layer)
		return 0;
	snprintf(dir, sizeof(dir), "%s/" LAYER_DIR, ex->cache.dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	if (enter_namespace(err) < 0 || mount_layer(dir, err) < 0)
		return -1;
	if (mkdir(mnt, 0700) < 0)
		return berth_fail(err, errno, "cannot create %s", mnt);
	if (plan->overlay) {
		_cleanup_close_ int root_fd = mount_overlay(ex, dir, err);
		if (root_fd < 0)
			return -1;
		for (size_t i = 0; i < spec->n_binds; i++)
			if (!image_has(root_fd, spec->binds[i].dst) &&
			    make_target(root_fd, &spec->binds[i], err) < 0)
				return -1;
	}
	for (size_t i = 0; i < spec->n_binds; i++)
		if (plan->staged[i] && stage_mount(dir, i, &spec->binds[i], err) < 0)
			return -1;
	return 0;
}

const struct berth_executor_ops berth_charliecloud_ops = {
	.name = "charliecloud",
	.artifact = cc_artifact,
	.create = cc_create,
	.before_exec = cc_before_exec,
	.release = cc_release,
};
