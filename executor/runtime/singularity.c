/* berth: the Singularity runtime (SingularityCE or Apptainer, the binary
 * named by SingularityPath).
 *
 * berth makes the runtime's image itself, once per digest, never with
 * `singularity build`: the flattened tree plus the /.singularity.d
 * metadata `apptainer build` would write (sing_meta.c), kept either as a
 * sandbox folder (run directly: the fastest start, no FUSE) or written as
 * SquashFS into a SIF (sif.c; one file per image).  The runtime mounts a
 * SIF itself where a setuid starter does it (or SingularityImageFormat=
 * sif says so); without one, SingularityImageFormat=auto follows
 * ImageStorage, and berth mounts the SIF's SquashFS with squashfuse in its
 * own namespace and hands the runtime that folder: as fast to start as a
 * sandbox, with berth's overlay for writable and named containers
 * (berth_sing_choose_format).  A .sif or SquashFS file given by the user
 * runs as it is.
 *
 * Running is `singularity exec --containall --cleanenv ...`: the
 * environment travels as SINGULARITYENV_/APPTAINERENV_ variables with
 * NO_EVAL set, so values arrive byte for byte, and singularity's own
 * environment is built from scratch, so a user's SINGULARITY_BIND & co.
 * cannot change the call. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/runtime/caps.h"
#include "executor/executor.h"
#include "executor/base/fs.h"
#include "executor/runtime/fakeroot.h"
#include "executor/runtime/mountns.h"
#include "executor/runtime/sing_runtime.h"
#include "executor/base/process.h"
#include "executor/convert/sif.h"
#include "executor/convert/squashfs.h"
#include "executor/convert/sing_meta.h"

#define HOST_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct sing {
	struct berth_sing_runtime rt; /* flavour and release: env prefix, flags */
	enum berth_sing_format format; /* sif or sandbox, decided */
	struct berth_sing_choice choice; /* ...and whether berth mounts the SIF, and why */
	enum berth_sqfs_comp comp;    /* the SIF's SquashFS compression */
	char leaf[32];                /* the artifact: image[.COMP].sif, sandbox */
	struct berth_artifact artifact;
	char image[PATH_MAX];         /* the cached SIF or sandbox */
	bool any_staged;              /* a mount made first in berth's namespace */
	bool userns;                  /* a setuid installation run with --userns */
	bool make_workdir;            /* an empty folder bound at the working folder */
	bool mounted;                 /* the cached SIF mounted by berth (choice.mount) */
	bool say_fallback;            /* auto kept a sandbox for want of FUSE */
	/* The container runs on berth's own overlay over the cached sandbox
	 * (named, or writable without a setuid starter): mounted with
	 * userxattr, so dpkg's folder renames work (mountns.c), which the
	 * runtime's --writable-tmpfs in a user namespace may not do. */
	bool own_layer;
};

#define WORKDIR_LEAF "wd"

static struct sing *priv(struct berth_executor *ex)
{
	return ex->priv;
}

static int make_meta(struct berth_executor *ex, const struct berth_image *img,
		     struct berth_sing_meta *meta, struct berth_err *err);

/* Flatten the image into `dir` (created) and add /.singularity.d; the
 * SIF's metadata objects stay in *meta for the caller. */
static int make_tree(struct berth_executor *ex, const struct berth_image *img,
		     const char *dir, struct berth_flatten_stats *stats,
		     struct berth_sing_meta *meta, struct berth_err *err)
{
	if (mkdir(dir, 0755) < 0)
		return berth_fail(err, errno, "cannot create %s", dir);
	if (berth_image_flatten(img, dir, stats, err) < 0 ||
	    make_meta(ex, img, meta, err) < 0)
		return -1;
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(err, errno, "cannot open %s", dir);
	return berth_singularity_meta_write(fd, meta, err);
}

/* SingularityImageFormat=sandbox: the tree itself is the image. */
static int convert_sandbox(void *ctx, const struct berth_image *img, const char *out_path,
			   const char *work_dir, struct berth_flatten_stats *stats,
			   struct berth_err *err)
{
	struct berth_sing_meta meta = {0};

	(void)work_dir;
	int rc = make_tree(ctx, img, out_path, stats, &meta, err);
	berth_singularity_meta_free(&meta);
	return rc;
}

/* The metadata of the image for `apptainer build`'s definition. */
static int make_meta(struct berth_executor *ex, const struct berth_image *img,
		     struct berth_sing_meta *meta, struct berth_err *err)
{
	struct sing *s = priv(ex);
	struct berth_sing_build build = {
		.bootstrap = "docker-archive",
		.from = img->n_tags ? img->tags[0] : img->digest,
		.apptainer_version = s->rt.apptainer ? s->rt.number : NULL,
	};

	return berth_singularity_meta_build(img, &build, meta, err);
}

/* The SIF's partition merged straight from the layers: no tree on disk. */
struct direct {
	const struct berth_image *img;
	const struct berth_sing_meta *meta;
	struct berth_flatten_stats *stats;
	bool image_failed;            /* the layers were refused: err says why */
	struct berth_err image_err;
};

static int direct_part(void *arg, int out_fd, off_t offset, const struct berth_sqfs_opts *o,
		       struct berth_sqfs_stats *st, struct berth_err *err)
{
	struct direct *d = arg;
	struct berth_sqfs_merge *m;

	if (berth_sqfs_merge_new(out_fd, offset, o, &m, err) < 0)
		return -1;
	int rc = berth_image_flatten_squashfs(d->img, m, d->stats, err);
	if (rc < 0) {
		d->image_failed = true;
		d->image_err = *err;
	}
	if (rc == 0)
		rc = berth_singularity_meta_write_squashfs(m, d->meta, err);
	if (rc == 0)
		rc = berth_sqfs_merge_finish(m, st, err);
	berth_sqfs_merge_free(m);
	return rc;
}

/* SingularityImageFormat=sif: the layers merged into the SquashFS (a
 * compression the runtime reads) as they stream, with the metadata
 * objects, into a SIF; no file but the SIF is written.
 * BERTH_SIF_FROM_TREE=1 (benchmarks and tests, to compare) builds the
 * flattened tree in the work folder first, writes it, and removes it. */
static int convert_sif(void *ctx, const struct berth_image *img, const char *out_path,
		       const char *work_dir, struct berth_flatten_stats *stats,
		       struct berth_err *err)
{
	const char *from_tree = getenv("BERTH_SIF_FROM_TREE");

	if (!from_tree || strcmp(from_tree, "1") != 0) {
		struct berth_sing_meta meta = {0};
		int rc = make_meta(ctx, img, &meta, err);
		if (rc == 0) {
			struct direct d = {.img = img, .meta = &meta, .stats = stats};
			struct berth_sif_opts opts = {
				.sqfs.compressor = berth_sqfs_comp_name(priv(ctx)->comp),
				.objects = meta.objects, .n_objects = meta.n_objects};
			rc = berth_sif_write_part(direct_part, &d, out_path, &opts, NULL, err);
			if (rc < 0 && d.image_failed)
				*err = d.image_err; /* the image's defect, not the file's */
		}
		berth_singularity_meta_free(&meta);
		return rc;
	}

	struct berth_sing_meta meta = {0};
	char tree[PATH_MAX];

	snprintf(tree, sizeof(tree), "%s/sif-tree", work_dir);
	int rc = make_tree(ctx, img, tree, stats, &meta, err);
	if (rc == 0) {
		struct berth_sif_opts opts = {
			.sqfs.compressor = berth_sqfs_comp_name(priv(ctx)->comp),
			.objects = meta.objects, .n_objects = meta.n_objects};
		rc = berth_sif_write(tree, out_path, &opts, NULL, err);
	}
	berth_singularity_meta_free(&meta);
	_cleanup_close_ int wfd = open(work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (wfd >= 0)
		berth_remove_tree(wfd, "sif-tree"); /* now, not with the build folder */
	return rc;
}

static int sing_prepare(struct berth_executor *ex, struct berth_err *err)
{
	struct sing *s = calloc(1, sizeof(*s));

	if (!s)
		return berth_fail(err, ENOMEM, "executor");
	ex->priv = s;
	/* remembered in the user's cache: a warm start spawns nothing more */
	if (berth_sing_runtime_probe(ex->cfg->singularity_path, ex->cache.dir_fd, &s->rt, err) < 0)
		return -1;
	char fuse_why[PATH_MAX + 128];
	const char *sqfuse = ex->cfg->squashfuse_path;
	bool usable = berth_ns_squashfs_usable(sqfuse, fuse_why, sizeof(fuse_why));
	bool fuse = usable && berth_ns_squashfs_owned_usable(sqfuse, fuse_why, sizeof(fuse_why));
	if (berth_sing_choose_format(ex->cfg, &s->rt, fuse ? NULL : fuse_why, &s->choice, err) < 0)
		return -1;
	s->format = s->choice.format;
	/* ImageStorage=auto without FUSE: said at every start, as charliecloud
	 * does; a squashfuse without -o uid (Debian 12's) only with
	 * --container-verbose, or every job there would carry the line */
	s->say_fallback = !usable && !s->rt.setuid && ex->cfg->sing_format == BERTH_SING_AUTO &&
			  ex->cfg->image_storage == BERTH_STORE_AUTO;
	if (s->format == BERTH_SING_SANDBOX) {
		snprintf(s->leaf, sizeof(s->leaf), "sandbox");
		s->artifact = (struct berth_artifact){.leaf = s->leaf, .convert = convert_sandbox,
						      .ctx = ex};
		return 0;
	}
	if (berth_sing_compression(ex->cfg->sqfs_comp, &s->rt, &s->comp, NULL, 0, err) < 0)
		return -1;
	/* The compression is part of the artifact's name, so a SIF written for
	 * Apptainer (zstd: image.sif, as every cache made before holds) is
	 * never handed to a SingularityCE that cannot read it. */
	if (s->comp == BERTH_SQFS_ZSTD)
		snprintf(s->leaf, sizeof(s->leaf), "image.sif");
	else
		snprintf(s->leaf, sizeof(s->leaf), "image.%s.sif", berth_sqfs_comp_name(s->comp));
	s->artifact = (struct berth_artifact){.leaf = s->leaf, .convert = convert_sif, .ctx = ex};
	return 0;
}

static const struct berth_artifact *sing_artifact(struct berth_executor *ex)
{
	return &priv(ex)->artifact;
}

/* singularity's own environment: built from nothing. */
static int sing_env(struct berth_executor *ex, const struct berth_container_spec *spec,
		    struct berth_strv *envp, struct berth_err *err)
{
	const char *pfx = priv(ex)->rt.apptainer ? "APPTAINER" : "SINGULARITY";
	char buf[PATH_MAX];
	const char *home = berth_spec_home(ex, buf, sizeof(buf));

	if (home && spec->mount_home)
		home = berth_spec_home_dst(ex, home);
	if (berth_strv_add(envp, HOST_PATH, err) < 0 ||
	    berth_strv_addf(envp, err, "HOME=%s", home ? home : "/") < 0 ||
	    berth_strv_addf(envp, err, "%s_NO_EVAL=1", pfx) < 0)
		return -1;
	if (getenv("USER") && berth_strv_addf(envp, err, "USER=%s", getenv("USER")) < 0)
		return -1;
	for (size_t i = 0; spec->env && spec->env[i]; i++) {
		/* HOME is the --home option's; singularity refuses it as ENV. */
		if (!strncmp(spec->env[i], "HOME=", 5) || !strchr(spec->env[i], '='))
			continue;
		if (berth_strv_addf(envp, err, "%sENV_%s", pfx, spec->env[i]) < 0)
			return -1;
	}
	return 0;
}

/* Apptainer binds read-only or read-write, always nosuid and nodev.  A tmpfs or noexec is made first in berth's own
 * namespace (mountns.h) and bound in from there; other propagations it
 * cannot give. */
static bool needs_stage(const struct berth_mount *b)
{
	return b->kind == BERTH_MOUNT_TMPFS || (b->flags & BERTH_MNT_NOEXEC);
}

static int add_binds(struct berth_executor *ex, const struct berth_container_spec *spec,
		     struct berth_strv *argv, struct berth_err *err)
{
	/* first: a bind the user puts inside the working folder lands on it */
	if (priv(ex)->make_workdir &&
	    berth_strv_addf(argv, err, "--bind=%s/" BERTH_LAYER_DIR "/" WORKDIR_LEAF ":%s:rw",
			    ex->cache.dir, berth_spec_workdir(ex)) < 0)
		return -1;
	for (size_t i = 0; i < spec->n_binds; i++) {
		const struct berth_mount *b = &spec->binds[i];
		if (berth_runtime_can_mount(BERTH_RT_SINGULARITY, b, err) < 0)
			return -1;
		if (strchr(b->src, ':') || strchr(b->src, ',') || strchr(b->dst, ':') ||
		    strchr(b->dst, ','))
			return berth_fail(err, 0, "bind '%s:%s': singularity cannot bind paths "
					  "containing ':' or ','", b->src, b->dst);
		bool staged = needs_stage(b);
		priv(ex)->any_staged |= staged;
		int rc = staged ? berth_strv_addf(argv, err, "--bind=%s/" BERTH_LAYER_DIR
						  "/mnt/%zu:%s:%s", ex->cache.dir, i, b->dst,
						  b->read_only ? "ro" : "rw")
				: berth_strv_addf(argv, err, "--bind=%s:%s:%s", b->src, b->dst,
						  b->read_only ? "ro" : "rw");
		if (rc < 0)
			return -1;
	}
	if (priv(ex)->any_staged && mkdirat(ex->cache.dir_fd, BERTH_LAYER_DIR, 0700) < 0 &&
	    errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s/" BERTH_LAYER_DIR, ex->cache.dir);
	return 0;
}

static int sing_before_exec(struct berth_executor *ex, struct berth_err *err)
{
	const struct berth_container_spec *spec = ex->spec;
	char dir[PATH_MAX + 16];

	/* SingularityCE's --fakeroot maps the subuid range through its setuid
	 * starter, which no_new_privs (the filter's) would disarm; the range
	 * makes chown work for real there. */
	if (spec->remap_root && priv(ex)->rt.fakeroot_ignore_subuid &&
	    berth_fake_id_syscalls(err) < 0)
		return -1;
	if (!priv(ex)->any_staged && !priv(ex)->own_layer && !priv(ex)->mounted)
		return 0;
	snprintf(dir, sizeof(dir), "%s/" BERTH_LAYER_DIR, ex->cache.dir);
	if (berth_ns_enter(err) < 0 || berth_ns_layer(dir, err) < 0)
		return -1;
	char lower[PATH_MAX + 32];
	snprintf(lower, sizeof(lower), "%s", priv(ex)->image);
	if (priv(ex)->mounted) { /* the SIF's SquashFS at DIR/image */
		uint64_t offset = 0;
		if (berth_sif_squashfs_offset(priv(ex)->image, &offset, err) < 0 ||
		    berth_ns_squashfs_detached(dir, priv(ex)->image, offset,
					       ex->cfg->squashfuse_path, err) < 0)
			return -1;
		snprintf(lower, sizeof(lower), "%s/image", dir);
		/* the command looked up as check_command does in a sandbox: 127
		 * or 126 for the workflow engine, not Apptainer's 255 */
		_cleanup_close_ int image_fd = open(lower, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (image_fd < 0)
			return berth_fail(err, errno, "cannot open the mounted image %s", lower);
		if (!spec->layer_dir && berth_executor_check_command_at(ex, image_fd, err) < 0)
			return -1;
	}
	if (priv(ex)->own_layer) { /* the image under its own (or the named) layer */
		_cleanup_close_ int root_fd = berth_ns_overlay(dir, lower, spec->layer_dir, err);
		const char *wd = berth_spec_workdir(ex);
		struct berth_mount wd_point = {.kind = BERTH_MOUNT_TMPFS, .dst = (char *)wd};
		/* --writable on berth's overlay: Apptainer makes no mount point
		 * there ("can't create /x destination automatically") */
		if (root_fd < 0 || berth_ns_make_targets(root_fd, spec->binds, spec->n_binds, err) < 0 ||
		    (berth_mount_holding(spec->binds, spec->n_binds, wd) < 0 &&
		     berth_ns_lacks(root_fd, wd) && berth_ns_make_targets(root_fd, &wd_point, 1, err) < 0))
			return -1;
	}
	for (size_t i = 0; i < spec->n_binds; i++)
		if (needs_stage(&spec->binds[i]) && berth_ns_stage(dir, i, &spec->binds[i], err) < 0)
			return -1;
	char wd[PATH_MAX + 32];
	snprintf(wd, sizeof(wd), "%s/" WORKDIR_LEAF, dir);
	if (priv(ex)->make_workdir && mkdir(wd, 0755) < 0)
		return berth_fail(err, errno, "cannot create %s", wd);
	/* points inside a tmpfs berth made (those in host folders are made) */
	return berth_ns_make_nested(dir, spec->binds, spec->n_binds, err) < 0 ||
	       berth_ns_make_inside(dir, spec->binds, spec->n_binds, berth_spec_workdir(ex),
				    true, err) < 0 ? -1 : 0;
}

/* Does the image lack `wd`?  A sandbox is looked at directly, a SIF's (or
 * a bare SquashFS file's) SquashFS through libsquashfs; another
 * partition type is not known, and counts as having it. */
static int image_lacks(const char *image, const char *wd, bool *lacks, struct berth_err *err)
{
	struct berth_sif_header h;
	struct berth_sif_descr part;
	struct berth_err not_sif = {0};
	struct stat st;
	int32_t fstype, parttype;
	char arch[BERTH_SIF_ARCH_LEN];

	*lacks = false;
	_cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_fail(err, errno, "image %s", image);
	if (S_ISDIR(st.st_mode)) {
		*lacks = berth_ns_lacks(fd, wd);
		return 0;
	}
	uint64_t start = 0, size = (uint64_t)st.st_size;
	if (berth_sif_read(fd, &h, &part, &not_sif) == 0) {
		berth_sif_partition_meta(&part, &fstype, &parttype, arch);
		if (fstype != BERTH_SIF_FS_SQUASH)
			return 0;
		start = (uint64_t)part.offset;
		size = (uint64_t)part.size;
	}
	int has = berth_squashfs_has(fd, start, size, wd, err);
	*lacks = has == 0;
	return has < 0 ? -1 : 0;
}

/* A working folder the image lacks, outside every bind: an empty folder
 * of berth's tmpfs bound there (Apptainer makes the mount point in its
 * session layer, never in the image), as Docker makes a missing one.
 * Inside a bind it is made in the bind's host folder, as Docker does. */
static int plan_workdir(struct berth_executor *ex, const char *image,
			const struct berth_container_spec *spec, struct berth_err *err)
{
	const char *wd = berth_spec_workdir(ex);
	bool lacks;

	/* Nested mount points berth makes itself, where Apptainer would (in
	 * the outer bind's host folder): the result does not hang on the
	 * installation's session layer. */
	if (berth_ns_make_nested(NULL, spec->binds, spec->n_binds, err) < 0)
		return -1;
	int in = berth_ns_make_inside(NULL, spec->binds, spec->n_binds, wd, true, err);

	/* a named container's layer gets it in before_exec */
	if (in != 0 || !strcmp(wd, "/") || spec->layer_dir)
		return in < 0 ? -1 : 0;
	if (image_lacks(image, wd, &lacks, err) < 0)
		return -1;
	priv(ex)->make_workdir = lacks;
	priv(ex)->any_staged |= lacks;
	return 0;
}

/* --container-remap-root.  Apptainer: uid 0 in a user namespace of its
 * own, mapped to the user alone: not the site's /etc/subuid ranges (files
 * would belong to other ids), not the host's fakeroot(1) (it needs the
 * host's libc in the image); berth's seccomp filter fakes chown instead.
 * SingularityCE has neither flag: its --fakeroot maps the user's subuid
 * and subgid ranges (berth_sing_check refuses it without them). */
static int add_fakeroot(struct berth_executor *ex, struct berth_strv *argv,
			struct berth_err *err)
{
	const struct berth_sing_runtime *rt = &priv(ex)->rt;

	if (berth_strv_add(argv, "--fakeroot", err) < 0)
		return -1;
	if (!rt->fakeroot_ignore_subuid)
		return 0;
	return berth_strv_add(argv, "--ignore-subuid", err) < 0 ||
	       berth_strv_add(argv, "--ignore-fakeroot-command", err) < 0 ? -1 : 0;
}

/* --container-unshare through the runtime's own flags, which it makes in
 * the namespaces it runs in (setuid, or berth's own user namespace with
 * --userns: checked with SingularityCE 3.4.2 both ways).  IPC is private
 * already: --containall, or --ipc for a named container. */
static int add_unshare(struct berth_executor *ex, unsigned what, struct berth_strv *argv,
		       struct berth_err *err)
{
	if (berth_sing_can_unshare(&priv(ex)->rt, what, err) < 0)
		return -1;
	if ((what & BERTH_UNSHARE_NET) &&
	    (berth_strv_add(argv, "--net", err) < 0 || berth_strv_add(argv, "--network", err) < 0 ||
	     berth_strv_add(argv, "none", err) < 0))
		return -1;
	return (what & BERTH_UNSHARE_UTS) ? berth_strv_add(argv, "--uts", err) : 0;
}

/* What this runtime cannot do of the step, refused before anything runs
 * (sing_runtime.c; the plugin says the same at submission where the
 * binary is there); a setuid installation inside berth's namespace runs
 * in user-namespace mode. */
static int check_step(struct berth_executor *ex, struct berth_strv *argv, struct berth_err *err)
{
	const struct berth_container_spec *spec = ex->spec;
	struct berth_sing_ask ask = {
		.uid = getuid(), .format = priv(ex)->choice.runs,
		.raw_image = ex->raw_image != NULL,
		.named = priv(ex)->own_layer, .writable = spec->writable,
		.remap_root = spec->remap_root, .missing_workdir = priv(ex)->make_workdir,
		.subuid = "/etc/subuid", .subgid = "/etc/subgid"};
	bool userns = false;

	for (size_t i = 0; i < spec->n_binds; i++) {
		ask.tmpfs |= spec->binds[i].kind == BERTH_MOUNT_TMPFS;
		if (spec->binds[i].kind == BERTH_MOUNT_BIND &&
		    (spec->binds[i].flags & BERTH_MNT_NOEXEC) && !ask.noexec)
			ask.noexec = &spec->binds[i];
	}
	if (berth_sing_check(&priv(ex)->rt, &ask, &userns, err) < 0)
		return -1;
	priv(ex)->userns = userns;
	return userns ? berth_strv_add(argv, "--userns", err) : 0;
}

/* --containall, but for its PID namespace where tasks join a named
 * container: they would die with its first task.  --no-pid would say so
 * where a release honours it under --containall (none seen: Apptainer
 * 1.4.5 ignores it there, SingularityCE 3.4.2 has no --no-pid); else the
 * parts of --containall one by one. */
static int add_contain(struct berth_executor *ex, struct berth_strv *argv, struct berth_err *err)
{
	const struct berth_sing_runtime *rt = &priv(ex)->rt;

	if (!ex->spec->layer_dir)
		return berth_strv_add(argv, "--containall", err);
	if (rt->no_pid && rt->no_pid_with_containall)
		return berth_strv_add(argv, "--containall", err) < 0 ||
		       berth_strv_add(argv, "--no-pid", err) < 0 ? -1 : 0;
	return berth_strv_add(argv, "--contain", err) < 0 ||
	       berth_strv_add(argv, "--ipc", err) < 0 ? -1 : 0;
}

static int sing_create(struct berth_executor *ex, const struct berth_container_spec *spec,
		       struct berth_err *err)
{
	struct berth_strv argv = {0}, envp = {0};
	char home_buf[PATH_MAX];
	const char *home = berth_spec_home(ex, home_buf, sizeof(home_buf));
	const char *image = ex->raw_image;

	if (!image) {
		berth_cache_entry_path(&ex->cache, ex->digest, priv(ex)->artifact.leaf,
				       priv(ex)->image);
		image = priv(ex)->image;
	}
	if (spec->verbose && !ex->raw_image)
		fprintf(stderr, "berth: singularity image: %s%s (%s)\n",
			berth_sing_format_name(priv(ex)->format),
			priv(ex)->choice.mount ? ", mounted by berth" : "", priv(ex)->choice.why);
	else if (priv(ex)->say_fallback && !ex->raw_image)
		fprintf(stderr, "berth: singularity images here: sandbox (%s)\n",
			priv(ex)->choice.why);
	/* A named container, and a writable one where no setuid starter
	 * needs the runtime's own overlay, run the overlay that before_exec
	 * mounts over the cached sandbox (or the SIF berth mounts): a SIF the
	 * runtime mounts is a file, with no tree to lay a layer over (a
	 * writable one then gets --writable-tmpfs; a named one is refused by
	 * check_step). */
	char named_root[PATH_MAX + 32], mount_point[PATH_MAX + 32];
	const char *cached = image; /* what plan_workdir looks into */
	priv(ex)->mounted = !ex->raw_image && priv(ex)->choice.mount;
	if (priv(ex)->mounted) { /* before_exec mounts the SIF there: a folder */
		snprintf(mount_point, sizeof(mount_point), "%s/" BERTH_LAYER_DIR "/image",
			 ex->cache.dir);
		image = mount_point;
	}
	bool sandbox = !ex->raw_image && priv(ex)->choice.runs == BERTH_SING_SANDBOX;
	priv(ex)->own_layer = spec->layer_dir ||
			      (spec->writable && sandbox && !priv(ex)->rt.setuid);
	if (priv(ex)->own_layer) {
		snprintf(named_root, sizeof(named_root), "%s/" BERTH_LAYER_DIR "/root",
			 ex->cache.dir);
		image = named_root;
	}
	if ((priv(ex)->own_layer || priv(ex)->mounted) &&
	    mkdirat(ex->cache.dir_fd, BERTH_LAYER_DIR, 0700) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s/" BERTH_LAYER_DIR, ex->cache.dir);
	/* --quiet keeps the runtime's notices ("INFO: gocryptfs not found")
	 * out of the job's output; its warnings and errors still come. */
	if (berth_strv_add(&argv, ex->cfg->singularity_path, err) < 0 ||
	    (!spec->verbose && berth_strv_add(&argv, "--quiet", err) < 0) ||
	    berth_strv_add(&argv, "exec", err) < 0 ||
	    add_contain(ex, &argv, err) < 0 ||
	    berth_strv_add(&argv, "--cleanenv", err) < 0 ||
	    berth_strv_add(&argv, "--pwd", err) < 0 ||
	    berth_strv_add(&argv, berth_spec_workdir(ex), err) < 0)
		goto fail;
	/* at its own path, or at /root under remapped root (as pyxis) */
	bool bind_home = spec->mount_home && home;
	int rc = berth_strv_add(&argv, bind_home ? "--home" : "--no-home", err);
	if (rc == 0 && bind_home)
		rc = spec->remap_root ? berth_strv_addf(&argv, err, "%s:/root", home)
				      : berth_strv_add(&argv, home, err);
	if (rc < 0)
		goto fail;
	if (spec->writable && berth_strv_add(&argv, priv(ex)->own_layer ? "--writable"
									: "--writable-tmpfs", err) < 0)
		goto fail;
	if (add_unshare(ex, spec->unshare, &argv, err) < 0)
		goto fail;
	if (spec->remap_root && add_fakeroot(ex, &argv, err) < 0)
		goto fail;
	if (plan_workdir(ex, priv(ex)->mounted ? cached : image, spec, err) < 0 ||
	    check_step(ex, &argv, err) < 0 ||
	    add_binds(ex, spec, &argv, err) < 0)
		goto fail;
	if (berth_strv_add(&argv, image, err) < 0 || sing_env(ex, spec, &envp, err) < 0)
		goto fail;
	return berth_executor_set_command(ex, &argv, &envp, err);
fail:
	berth_strv_free(argv.v);
	berth_strv_free(envp.v);
	return -1;
}

static void sing_release(struct berth_executor *ex)
{
	free(ex->priv);
	ex->priv = NULL;
}

const struct berth_executor_ops berth_singularity_ops = {
	.name = "singularity",
	.artifact = sing_artifact,
	.prepare = sing_prepare,
	.create = sing_create,
	.before_exec = sing_before_exec,
	.release = sing_release,
	.runs_raw_images = true,
};
