/* berth: the Singularity runtime (SingularityCE or Apptainer, the binary
 * named by SingularityPath).
 *
 * Loading converts the docker-save archive once per digest into a SIF in
 * the user's cache with `singularity build X.sif docker-archive:/abs.tar`
 * (through a symlink without ':' in its path, which both parsers accept),
 * with the build's tmp and cache folders private to the build.  Running is
 * `singularity exec --containall --cleanenv ...`: the environment travels
 * as SINGULARITYENV_/APPTAINERENV_ variables with NO_EVAL set, so values
 * arrive byte for byte, and singularity's own environment is built from
 * scratch, so a user's SINGULARITY_BIND & co. cannot change the call. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor.h"
#include "process.h"

#define HOST_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define VERSION_MAX 256

struct sing {
	bool apptainer;               /* flavour: decides the env prefix */
	char version[VERSION_MAX];    /* first line of --version */
	struct berth_artifact artifact;
	char sif[PATH_MAX];
};

static struct sing *priv(struct berth_executor *ex)
{
	return ex->priv;
}

/* `singularity --version`, remembered per binary (device, inode, mtime,
 * size) in the user's cache so a warm start costs no extra process. */
static int read_version(struct berth_executor *ex, struct berth_err *err)
{
	const char *bin = ex->cfg->singularity_path;
	struct sing *s = priv(ex);
	char key[128], line[VERSION_MAX + 128];
	struct stat st;

	if (stat(bin, &st) < 0)
		return berth_fail(err, errno, "cannot find singularity at %s "
				  "(SingularityPath in berth.conf)", bin);
	snprintf(key, sizeof(key), "%lu:%lu:%lld:%lld ", (unsigned long)st.st_dev,
		 (unsigned long)st.st_ino, (long long)st.st_mtime, (long long)st.st_size);
	_cleanup_close_ int fd = openat(ex->cache.dir_fd, "singularity.version",
					O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, line, sizeof(line) - 1) : -1;
	if (n > 0) {
		line[n] = '\0';
		if (!strncmp(line, key, strlen(key))) {
			snprintf(s->version, sizeof(s->version), "%s", line + strlen(key));
			return 0;
		}
	}
	char *argv[] = {(char *)bin, "--version", NULL};
	char *envp[] = {HOST_PATH, NULL};
	_cleanup_free_ char *out = NULL;
	int status;
	struct berth_spawn sp = {.argv = argv, .envp = envp, .stdin_fd = -1,
				 .stderr_fd = -1, .capture_stdout = &out,
				 .capture_max = 4096, .stderr_to_capture = true};
	if (berth_spawn_run(&sp, &status, err) < 0)
		return -1;
	if (status != 0)
		return berth_fail(err, 0, "%s --version failed (exit %d): %s", bin,
				  status, out);
	out[strcspn(out, "\n")] = '\0';
	snprintf(s->version, sizeof(s->version), "%s", out);
	/* Best effort: a write race or failure only costs a spawn next time. */
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "singularity.version.%d", (int)getpid());
	int wfd = openat(ex->cache.dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			 O_CLOEXEC, 0600);
	if (wfd >= 0) {
		dprintf(wfd, "%s%s", key, s->version);
		close(wfd);
		renameat(ex->cache.dir_fd, tmp, ex->cache.dir_fd, "singularity.version");
	}
	return 0;
}

static int sing_convert(void *ctx, const struct berth_image *img, const char *out_path,
			const char *work_dir, struct berth_flatten_stats *stats,
			struct berth_err *err)
{
	struct berth_executor *ex = ctx;
	char link[PATH_MAX], tmpdir[PATH_MAX], cachedir[PATH_MAX];
	_cleanup_free_ char *archive = realpath(img->archive, NULL);

	(void)stats;
	if (!archive)
		return berth_fail(err, errno, "image archive %s", img->archive);
	/* docker-archive:PATH breaks on ':' in PATH; a symlink in our build
	 * folder gives singularity a path without one. */
	snprintf(link, sizeof(link), "%s/image-archive.tar", work_dir);
	snprintf(tmpdir, sizeof(tmpdir), "%s/singularity-tmp", work_dir);
	snprintf(cachedir, sizeof(cachedir), "%s/singularity-cache", work_dir);
	if (strchr(link, ':'))
		return berth_fail(err, 0, "CacheDir %s contains ':', which singularity "
				  "cannot parse in docker-archive: paths; use another "
				  "CacheDir", ex->cache.dir);
	if (symlink(archive, link) < 0 || mkdir(tmpdir, 0700) < 0 || mkdir(cachedir, 0700) < 0)
		return berth_fail(err, errno, "cannot prepare the singularity build in %s",
				  work_dir);
	_cleanup_free_ char *source = NULL;
	if (asprintf(&source, "docker-archive:%s", link) < 0) {
		source = NULL;
		return berth_fail(err, ENOMEM, "argv");
	}
	struct berth_strv envp = {0};
	const char *pfx = priv(ex)->apptainer ? "APPTAINER" : "SINGULARITY";
	char *argv[] = {(char *)ex->cfg->singularity_path, "build", (char *)out_path, source, NULL};
	int status = -1;
	if (berth_strv_add(&envp, HOST_PATH, err) == 0 &&
	    berth_strv_addf(&envp, err, "%s_TMPDIR=%s", pfx, tmpdir) == 0 &&
	    berth_strv_addf(&envp, err, "%s_CACHEDIR=%s", pfx, cachedir) == 0 &&
	    berth_strv_addf(&envp, err, "HOME=%s", getenv("HOME") ? getenv("HOME") : "/") == 0) {
		/* Its progress goes to our stderr: the user sees it. */
		struct berth_spawn sp = {.argv = argv, .envp = envp.v, .stdin_fd = -1,
					 .stderr_fd = STDERR_FILENO};
		pid_t pid = berth_spawn_start(&sp, err);
		status = pid < 0 ? -1 : berth_wait_pid(pid, err);
	}
	berth_strv_free(envp.v);
	if (status < 0)
		return -1;
	if (status != 0)
		return berth_fail(err, 0, "'%s build' of %s failed (exit %d); see its "
				  "messages above", ex->cfg->singularity_path, img->archive,
				  status);
	return 0;
}

static int sing_prepare(struct berth_executor *ex, struct berth_err *err)
{
	struct sing *s = calloc(1, sizeof(*s));

	if (!s)
		return berth_fail(err, ENOMEM, "executor");
	ex->priv = s;
	if (read_version(ex, err) < 0)
		return -1;
	s->apptainer = !strncmp(s->version, "apptainer", 9);
	s->artifact = (struct berth_artifact){.leaf = "image.sif", .convert = sing_convert,
					      .ctx = ex};
	return 0;
}

static const struct berth_artifact *sing_artifact(struct berth_executor *ex)
{
	return &priv(ex)->artifact;
}

static const char *env_value(char *const *env, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], name, len) && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

/* singularity's own environment: built from nothing. */
static int sing_env(struct berth_executor *ex, const struct berth_container_spec *spec,
		    struct berth_strv *envp, struct berth_err *err)
{
	const char *pfx = priv(ex)->apptainer ? "APPTAINER" : "SINGULARITY";
	const char *home = env_value(spec->env, "HOME");

	if (!home)
		home = getenv("HOME");
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

static int sing_create(struct berth_executor *ex, const struct berth_container_spec *spec,
		       struct berth_err *err)
{
	struct berth_strv argv = {0}, envp = {0};
	const char *home = env_value(spec->env, "HOME");
	const char *image = ex->raw_image;

	if (!image) {
		berth_cache_entry_path(&ex->cache, ex->digest, "image.sif", priv(ex)->sif);
		image = priv(ex)->sif;
	}
	if (!home)
		home = getenv("HOME");
	/* --quiet keeps the runtime's notices ("INFO: gocryptfs not found")
	 * out of the job's output; its warnings and errors still come. */
	if (berth_strv_add(&argv, ex->cfg->singularity_path, err) < 0 ||
	    (!spec->verbose && berth_strv_add(&argv, "--quiet", err) < 0) ||
	    berth_strv_add(&argv, "exec", err) < 0 ||
	    berth_strv_add(&argv, "--containall", err) < 0 ||
	    berth_strv_add(&argv, "--cleanenv", err) < 0 ||
	    berth_strv_add(&argv, "--pwd", err) < 0 ||
	    berth_strv_add(&argv, berth_spec_workdir(ex), err) < 0)
		goto fail;
	bool bind_home = spec->mount_home && home;
	int rc = berth_strv_add(&argv, bind_home ? "--home" : "--no-home", err);
	if (rc == 0 && bind_home)
		rc = berth_strv_add(&argv, home, err);
	if (rc < 0)
		goto fail;
	if (spec->writable && berth_strv_add(&argv, "--writable-tmpfs", err) < 0)
		goto fail;
	for (size_t i = 0; i < spec->n_binds; i++) {
		const struct berth_mount *b = &spec->binds[i];
		if (strchr(b->src, ':') || strchr(b->src, ',') || strchr(b->dst, ':') ||
		    strchr(b->dst, ',')) {
			berth_fail(err, 0, "bind '%s:%s': singularity cannot bind paths "
				   "containing ':' or ','", b->src, b->dst);
			goto fail;
		}
		if (berth_strv_add(&argv, "--bind", err) < 0 ||
		    berth_strv_addf(&argv, err, "%s:%s:%s", b->src, b->dst,
				    b->read_only ? "ro" : "rw") < 0)
			goto fail;
	}
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
	.release = sing_release,
	.runs_raw_images = true,
};
