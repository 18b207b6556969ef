/* berth: the Charliecloud runtime (ch-run on the cached flattened rootfs).
 *
 * ch-run 0.31 binds only onto paths that exist in the image and has no
 * read-only bind.  berth therefore (1) creates missing bind targets in the
 * user's own cached rootfs (empty folders or files, as ch-image does), and
 * (2) for read-only binds, enters a user+mount namespace of its own just
 * before exec, bind-mounts each read-only source over itself and remounts
 * it read-only; ch-run's recursive bind then carries the read-only flag
 * into the container, where the kernel also locks it. */
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

/* Make `dst` exist in the rootfs: a folder, or an empty file when the
 * source is a file. */
static int make_mount_point(int root_fd, const struct berth_mount *b,
			    struct berth_err *err)
{
	struct stat st;

	if (stat(b->src, &st) < 0)
		return berth_fail(err, errno, "bind source %s", b->src);
	if (S_ISDIR(st.st_mode)) {
		int fd = berth_mkdir_beneath(root_fd, b->dst, 0755);
		if (fd < 0)
			return berth_fail(err, errno, "cannot create mount point %s in "
					  "the image", b->dst);
		close(fd);
		return 0;
	}
	_cleanup_free_ char *parent = strdup(b->dst);
	if (!parent)
		return berth_fail(err, ENOMEM, "mount point");
	char *slash = strrchr(parent, '/'); /* dst is absolute: never NULL */
	*slash = '\0';
	_cleanup_close_ int pfd = berth_mkdir_beneath(root_fd, parent, 0755);
	if (pfd < 0)
		return berth_fail(err, errno, "cannot create mount point %s in the "
				  "image", b->dst);
	int fd = openat(pfd, slash + 1, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 && errno != EEXIST && errno != EISDIR)
		return berth_fail(err, errno, "cannot create mount point %s in the "
				  "image", b->dst);
	if (fd >= 0)
		close(fd);
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

static int cc_create(struct berth_executor *ex, const struct berth_container_spec *spec,
		     struct berth_err *err)
{
	struct berth_strv argv = {0}, envp = {0};
	char rootfs[PATH_MAX];

	berth_cache_entry_path(&ex->cache, ex->digest, "rootfs", rootfs);
	_cleanup_close_ int root_fd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return berth_fail(err, errno, "image rootfs %s", rootfs);
	if (berth_strv_add(&argv, ex->cfg->chrun_path, err) < 0)
		goto fail;
	if (spec->mount_home && berth_strv_add(&argv, "--home", err) < 0)
		goto fail;
	if (spec->writable && berth_strv_add(&argv, "--write", err) < 0)
		goto fail;
	/* Writable: ch-run gets the overlay that before_exec mounts, never the
	 * cached tree (one job's changes must not reach the next job). */
	char layer_root[PATH_MAX + 16];
	snprintf(layer_root, sizeof(layer_root), "%s/" LAYER_DIR "/root", ex->cache.dir);
	if (spec->writable && mkdirat(ex->cache.dir_fd, LAYER_DIR, 0700) < 0 && errno != EEXIST) {
		berth_fail(err, errno, "cannot create %s/" LAYER_DIR, ex->cache.dir);
		goto fail;
	}
	if (berth_strv_addf(&argv, err, "--cd=%s", berth_spec_workdir(ex)) < 0)
		goto fail;
	for (size_t i = 0; i < spec->n_binds; i++) {
		const struct berth_mount *b = &spec->binds[i];
		if (make_mount_point(root_fd, b, err) < 0 ||
		    berth_strv_addf(&argv, err, "--bind=%s:%s", b->src, b->dst) < 0)
			goto fail;
	}
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
	if (berth_strv_add(&argv, spec->writable ? layer_root : rootfs, err) < 0 ||
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

/* The container's own writable layer: a tmpfs in this process's private
 * mount namespace holding an overlay's upper half over the cached tree.
 * It vanishes with the namespace, so nothing is left to clean up and the
 * cached image is never written (Apptainer's --writable-tmpfs, for ch-run,
 * whose 0.31 has no --write-fake). */
static int mount_writable_layer(struct berth_executor *ex, struct berth_err *err)
{
	char dir[PATH_MAX + 16], rootfs[PATH_MAX], opts[3 * PATH_MAX + 64];

	snprintf(dir, sizeof(dir), "%s/" LAYER_DIR, ex->cache.dir);
	berth_cache_entry_path(&ex->cache, ex->digest, "rootfs", rootfs);
	if (strpbrk(rootfs, ",:\\"))
		return berth_fail(err, 0, "the cache path %s holds a ',', ':' or '\\', which "
				  "overlayfs cannot take; choose another CacheDir", rootfs);
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
		return berth_fail(err, errno, "cannot mount the writable layer's tmpfs on %s", dir);
	snprintf(opts, sizeof(opts), "%s/upper", dir);
	mkdir(opts, 0755);
	snprintf(opts, sizeof(opts), "%s/work", dir);
	mkdir(opts, 0700);
	snprintf(opts, sizeof(opts), "%s/root", dir);
	mkdir(opts, 0755);
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", rootfs, dir,
		 dir);
	snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/root");
	if (mount("overlay", dir, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
		return berth_fail(err, errno, "cannot give the container a writable layer "
				  "(overlayfs in a user namespace needs Linux 5.11 or later)");
	return 0;
}

static int cc_before_exec(struct berth_executor *ex, struct berth_err *err)
{
	const struct berth_container_spec *spec = ex->spec;
	bool any_ro = false;
	char map[64];

	for (size_t i = 0; i < spec->n_binds; i++)
		any_ro |= spec->binds[i].read_only;
	if (!any_ro && !spec->writable)
		return 0;
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return berth_fail(err, errno, "cannot create a namespace for read-only "
				  "binds or a writable layer (are unprivileged user "
				  "namespaces enabled?)");
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (write_file("/proc/self/setgroups", "deny", err) < 0 ||
	    write_file("/proc/self/uid_map", map, err) < 0)
		return -1;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if (write_file("/proc/self/gid_map", map, err) < 0)
		return -1;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return berth_fail(err, errno, "cannot make mounts private");
	if (spec->writable && mount_writable_layer(ex, err) < 0)
		return -1;
	for (size_t i = 0; i < spec->n_binds; i++) {
		const char *src = spec->binds[i].src;
		if (!spec->binds[i].read_only)
			continue;
		if (mount(src, src, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, src, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(src),
			  NULL) < 0)
			return berth_fail(err, errno, "cannot make %s read-only", src);
	}
	return 0;
}

const struct berth_executor_ops berth_charliecloud_ops = {
	.name = "charliecloud",
	.artifact = cc_artifact,
	.create = cc_create,
	.before_exec = cc_before_exec,
};
