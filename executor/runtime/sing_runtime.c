/* berth: the Singularity flavour and release behind SingularityPath
 * (sing_runtime.h says what differs and why it matters). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/runtime/sing_runtime.h"
#include "executor/base/process.h"
#include "conf/unshare.h"

#define HOST_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MEMO_FILE "singularity.version"

/* SingularityCE's auto compression: lz4, measured against gzip (README,
 * "Singularity and Apptainer releases"): cold staging of a 235 MB image
 * through libsquashfs on 2 threads is several times faster, and a warm
 * start is no slower.  Every SingularityCE release reads it. */
#define SYLABS_AUTO BERTH_SQFS_LZ4

void berth_sing_runtime_parse(const char *line, struct berth_sing_runtime *rt)
{
	memset(rt, 0, sizeof(*rt));
	snprintf(rt->version, sizeof(rt->version), "%.*s", (int)strcspn(line, "\n"), line);
	const char *space = strrchr(rt->version, ' ');
	rt->number = space ? space + 1 : rt->version;
	rt->apptainer = !strncmp(rt->version, "apptainer", 9);
	char *end;
	unsigned long major = strtoul(rt->number, &end, 10);
	unsigned long minor = end != rt->number && *end == '.' ? strtoul(end + 1, &end, 10) : 0;
	if (rt->number[0] >= '0' && rt->number[0] <= '9' && major < 1000 && minor < 1000) {
		rt->major = (unsigned)major;
		rt->minor = (unsigned)minor;
	}
	/* An unknown number is taken for a current release: what berth asks
	 * of it then fails in the runtime's own words, not refused here. */
	bool known = rt->major > 0;
	rt->reads_zstd = rt->apptainer;
	/* --net --network none, --ipc, --uts: Singularity 3.0 on, every Apptainer */
	rt->unshares = rt->apptainer || !known || rt->major >= 3;
	rt->fakeroot = rt->apptainer || !known || rt->major > 3 ||
		       (rt->major == 3 && rt->minor >= 3);
	rt->fakeroot_ignore_subuid = rt->apptainer && (!known || rt->major > 1 || rt->minor >= 1);
	rt->writable_tmpfs = rt->apptainer || !known || rt->major >= 3;
	rt->overlay_in_userns = rt->apptainer;
	rt->no_pid = rt->apptainer;
	rt->no_pid_with_containall = false;
}

/* A setuid starter installed beside the binary: <prefix>/libexec/
 * {apptainer,singularity}/bin/starter-suid, owned by root, mode u+s. */
static bool setuid_starter(const char *bin, char *found, size_t len)
{
	static const char *const flavours[] = {"apptainer", "singularity"};
	_cleanup_free_ char *real = realpath(bin, NULL);
	struct stat st;

	if (!real)
		return false;
	char *slash = strrchr(real, '/');
	if (slash)
		*slash = '\0'; /* <prefix>/bin */
	if ((slash = strrchr(real, '/')))
		*slash = '\0'; /* <prefix> */
	for (size_t i = 0; i < sizeof(flavours) / sizeof(*flavours); i++) {
		snprintf(found, len, "%s/libexec/%s/bin/starter-suid", real, flavours[i]);
		if (stat(found, &st) == 0 && (st.st_mode & S_ISUID) && st.st_uid == 0)
			return true;
	}
	found[0] = '\0';
	return false;
}

static bool have_squashfuse(void)
{
	static const char *const paths[] = {"/usr/bin/squashfuse_ll", "/usr/bin/squashfuse",
					    "/usr/local/bin/squashfuse_ll", "/usr/local/bin/squashfuse"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++)
		if (access(paths[i], X_OK) == 0)
			return access("/dev/fuse", R_OK | W_OK) == 0;
	return false;
}

void berth_sing_runtime_install(const char *bin, struct berth_sing_runtime *rt)
{
	rt->setuid = setuid_starter(bin, rt->starter, sizeof(rt->starter));
	rt->squashfuse = have_squashfuse();
}

/* An unprivileged installation: ImageStorage decides (the SIF, or the
 * sandbox folder that is the unpacked tree). */
static int choose_storage(const struct berth_config *cfg, const char *fuse_why,
			  struct berth_sing_choice *c, struct berth_err *err)
{
	const char *storage = berth_image_storage_name(cfg->image_storage);
	int n = snprintf(c->why, sizeof(c->why), "auto: unprivileged installation (user "
			 "namespaces, no setuid starter beside %s), ImageStorage=%s: ",
			 cfg->singularity_path, storage);
	char *rest = c->why + n;
	size_t left = sizeof(c->why) - (size_t)n;

	c->format = c->runs = BERTH_SING_SANDBOX;
	if (cfg->image_storage == BERTH_STORE_TREE) {
		snprintf(rest, left, "a sandbox folder (the unpacked tree)");
		return 0;
	}
	if (!fuse_why) {
		c->format = BERTH_SING_SIF;
		c->mount = true;
		snprintf(rest, left, "one SIF per image, its SquashFS mounted by berth with "
			 "%s in the step's own namespace and run as a folder",
			 cfg->squashfuse_path);
		return 0;
	}
	if (cfg->image_storage == BERTH_STORE_SQUASHFS)
		return berth_fail(err, 0, "ImageStorage=squashfs, but %s: install squashfuse "
				  "0.2 or later (libfuse 3) at SquashfusePath and give users "
				  "/dev/fuse, or set ImageStorage=tree or auto in berth.conf",
				  fuse_why);
	snprintf(rest, left, "%s, so a sandbox folder (the unpacked tree); install "
		 "squashfuse 0.2 or later at SquashfusePath and give users /dev/fuse to "
		 "keep SIFs", fuse_why);
	return 0;
}

int berth_sing_choose_format(const struct berth_config *cfg, const struct berth_sing_runtime *rt,
			     const char *fuse_why, struct berth_sing_choice *c,
			     struct berth_err *err)
{
	memset(c, 0, sizeof(*c));
	if (cfg->sing_format != BERTH_SING_AUTO) {
		c->format = c->runs = cfg->sing_format;
		snprintf(c->why, sizeof(c->why), "set by SingularityImageFormat");
		return 0;
	}
	if (rt->setuid) {
		c->format = c->runs = BERTH_SING_SIF;
		snprintf(c->why, sizeof(c->why), "auto: setuid installation (%s): one SIF per "
			 "image, mounted by the setuid starter", rt->starter);
		return 0;
	}
	return choose_storage(cfg, fuse_why, c, err);
}

const char *berth_sing_flavour(const struct berth_sing_runtime *rt)
{
	return rt->apptainer ? "Apptainer" : "SingularityCE";
}

int berth_sing_can_unshare(const struct berth_sing_runtime *rt, unsigned what,
			   struct berth_err *err)
{
	char names[32];

	if (!what || rt->unshares)
		return 0;
	berth_unshare_format(what, names, sizeof(names));
	return berth_fail(err, 0, "--container-unshare=%s on Singularity %s: this release "
			  "cannot give an unprivileged user its own network, IPC or UTS "
			  "namespace (--net --network none, --ipc, --uts came with 3.0); "
			  "install SingularityCE 3.0 or later or Apptainer at SingularityPath, "
			  "drop the option, or use --container-runtime=charliecloud",
			  names, rt->number);
}

/* "path dev ino size mtime.nsec\n": what identifies the binary asked. */
static int memo_key(const char *bin, char *key, size_t len, struct berth_err *err)
{
	struct stat st;

	if (stat(bin, &st) < 0)
		return berth_fail(err, errno, "cannot find singularity at %s "
				  "(SingularityPath in berth.conf)", bin);
	snprintf(key, len, "%s %lu %lu %lld %lld.%09ld\n", bin, (unsigned long)st.st_dev,
		 (unsigned long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	return 0;
}

static bool memo_read(int dir_fd, const char *key, char *line, size_t len)
{
	char buf[PATH_MAX + 2 * BERTH_SING_VERSION_MAX];
	size_t klen = strlen(key);

	if (dir_fd < 0)
		return false;
	int fd = openat(dir_fd, MEMO_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= (ssize_t)klen)
		return false;
	buf[n] = '\0';
	if (strncmp(buf, key, klen) != 0)
		return false;
	snprintf(line, len, "%s", buf + klen);
	return true;
}

/* Best effort: a race or a full disk only costs a probe next time. */
static void memo_write(int dir_fd, const char *key, const char *line)
{
	char tmp[64];

	if (dir_fd < 0)
		return;
	snprintf(tmp, sizeof(tmp), MEMO_FILE ".%d", (int)getpid());
	int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	bool ok = dprintf(fd, "%s%s\n", key, line) > 0;
	close(fd);
	if (!ok || renameat(dir_fd, tmp, dir_fd, MEMO_FILE) < 0)
		unlinkat(dir_fd, tmp, 0);
}

static int run_version(const char *bin, char *line, size_t len, struct berth_err *err)
{
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
		return berth_fail(err, 0, "%s --version failed (exit %d): %s; check "
				  "SingularityPath in berth.conf", bin, status, out ? out : "");
	snprintf(line, len, "%.*s", (int)strcspn(out, "\n"), out);
	return 0;
}

int berth_sing_runtime_probe(const char *bin, int memo_dir_fd,
			     struct berth_sing_runtime *rt, struct berth_err *err)
{
	char key[PATH_MAX + 128], line[BERTH_SING_VERSION_MAX];

	if (memo_key(bin, key, sizeof(key), err) < 0)
		return -1;
	if (!memo_read(memo_dir_fd, key, line, sizeof(line))) {
		if (run_version(bin, line, sizeof(line), err) < 0)
			return -1;
		memo_write(memo_dir_fd, key, line);
	}
	berth_sing_runtime_parse(line, rt);
	berth_sing_runtime_install(bin, rt);
	return 0;
}

int berth_sing_compression(enum berth_sqfs_comp cfg, const struct berth_sing_runtime *rt,
			   enum berth_sqfs_comp *out, char *why, size_t why_len,
			   struct berth_err *err)
{
	char dummy[8];

	if (!why)
		why = dummy, why_len = sizeof(dummy);
	if (cfg == BERTH_SQFS_ZSTD && !rt->reads_zstd)
		return berth_fail(err, 0, "SquashfsCompression=zstd, but %s %s cannot read "
				  "zstd SquashFS (only Apptainer can): set SquashfsCompression="
				  "auto (or gzip, lz4, xz) in berth.conf",
				  berth_sing_flavour(rt), rt->number);
	if (cfg != BERTH_SQFS_AUTO) {
		*out = cfg;
		snprintf(why, why_len, "set by SquashfsCompression");
		return 0;
	}
	*out = rt->reads_zstd ? BERTH_SQFS_ZSTD : SYLABS_AUTO;
	snprintf(why, why_len, rt->reads_zstd
		 ? "auto: %s %s reads zstd, the fastest to write"
		 : "auto: %s %s reads no zstd; lz4 is the fastest it reads", berth_sing_flavour(rt),
		 rt->number);
	return 0;
}

/* One "name-or-uid:start:count" line for the user, enabled (no leading '!'),
 * with at least BERTH_SUBID_RANGE ids. */
static bool subid_line_matches(char *line, const char *user, unsigned long id)
{
	char *save = NULL;
	char *who = strtok_r(line, ":\n", &save);
	char *start = strtok_r(NULL, ":\n", &save);
	char *count = strtok_r(NULL, ":\n", &save);
	char *end;

	if (!who || !start || !count || who[0] == '!')
		return false;
	errno = 0;
	(void)strtoul(start, &end, 10);
	if (errno || *end || end == start)
		return false;
	unsigned long n = strtoul(count, &end, 10);
	if (errno || *end || end == count || n < BERTH_SUBID_RANGE)
		return false;
	unsigned long as_id = strtoul(who, &end, 10);
	return (user && !strcmp(who, user)) || (!*end && end != who && as_id == id);
}

bool berth_subid_has_range(const char *path, const char *user, unsigned long id)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[512];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (subid_line_matches(line, user, id))
			return true;
	return false;
}

int berth_sing_can_fakeroot(const struct berth_sing_runtime *rt, uid_t uid,
			    const char *subuid, const char *subgid, struct berth_err *err)
{
	if (!rt->fakeroot)
		return berth_fail(err, 0, "--container-remap-root with %s %s: it has no "
				  "--fakeroot (Singularity 3.3 and later have it): ask the site "
				  "for a newer release, or run the job with --container-runtime="
				  "charliecloud", berth_sing_flavour(rt), rt->number);
	if (rt->fakeroot_ignore_subuid)
		return 0;
	struct passwd *pw = getpwuid(uid);
	const char *user = pw ? pw->pw_name : NULL;
	bool u = berth_subid_has_range(subuid, user, uid);
	bool g = berth_subid_has_range(subgid, user, uid);
	if (u && g)
		return 0;
	return berth_fail(err, 0, "--container-remap-root with %s %s needs a range of %u ids "
			  "for user %s (uid %lu) in both %s and %s (its --fakeroot maps them; "
			  "missing in %s%s%s): ask the site to add a line such as '%s:<first "
			  "id>:%u' to each, or run the job with --container-runtime="
			  "charliecloud", berth_sing_flavour(rt), rt->number, BERTH_SUBID_RANGE,
			  user ? user : "?", (unsigned long)uid, subuid, subgid,
			  u ? "" : subuid, !u && !g ? " and " : "", g ? "" : subgid,
			  user ? user : "?", BERTH_SUBID_RANGE);
}

/* --container-name (and --container-save) run berth's overlay over the
 * cached sandbox: a SIF is a file, with no tree to lay a layer over. */
static int check_named(const struct berth_sing_runtime *rt, const struct berth_sing_ask *ask,
		       struct berth_err *err)
{
	if (!ask->named || (!ask->raw_image && ask->format == BERTH_SING_SANDBOX))
		return 0;
	return berth_fail(err, 0, "--container-name with singularity needs the sandbox image "
			  "format (%s %s is given a SIF here%s): set SingularityImageFormat="
			  "sandbox in berth.conf, or use --container-runtime=charliecloud",
			  berth_sing_flavour(rt), rt->number,
			  ask->raw_image ? ": the image is a SIF file" : "; this site keeps SIFs");
}

/* A tmpfs or noexec bind, a missing working folder or a named container
 * make berth enter a user and mount namespace of its own before the
 * runtime starts (mountns.h).  There a setuid starter cannot become root
 * ("Failed to set effective UID to 0"): a setuid installation then runs in
 * user-namespace mode (--userns), which runs a folder but mounts no SIF. */
static int check_berth_ns(const struct berth_sing_runtime *rt, const struct berth_sing_ask *ask,
			  bool *userns, struct berth_err *err)
{
	const char *flavour = berth_sing_flavour(rt);

	*userns = false;
	if (!rt->setuid ||
	    !(ask->named || ask->tmpfs || ask->noexec || ask->missing_workdir))
		return 0;
	/* Seen with SingularityCE 3.4.2: in that mode its bind of a bind
	 * berth made read-only and noexec came out read-write and exec. */
	if (ask->noexec)
		return berth_fail(err, 0, "bind '%s:%s': noexec binds are not supported "
				  "with %s %s installed setuid (%s): drop noexec, or use "
				  "--container-runtime=charliecloud", ask->noexec->src,
				  ask->noexec->dst, flavour, rt->number, rt->starter);
	const char *what = ask->named ? "a named container"
			   : ask->missing_workdir ? "a working folder the image lacks"
						  : "tmpfs mounts";
	/* --fakeroot in that mode wants newuidmap to map the subuid range,
	 * which berth's namespace (the user alone) has not got to give */
	if (ask->remap_root && !rt->apptainer)
		return berth_fail(err, 0, "--container-remap-root with %s on %s %s installed "
				  "setuid (%s): its --fakeroot cannot map the subuid range inside "
				  "the namespace berth makes these in; drop one of them, or use "
				  "--container-runtime=charliecloud",
				  what, flavour, rt->number, rt->starter);
	if (!ask->named && (ask->raw_image || ask->format == BERTH_SING_SIF))
		return berth_fail(err, 0, "%s with %s %s: this setuid installation "
				  "needs the sandbox image format for it (its starter cannot "
				  "mount a SIF inside the namespace berth makes it in): set "
				  "SingularityImageFormat=sandbox in berth.conf, or drop it "
				  "(an existing working folder, no tmpfs mount), or use "
				  "--container-runtime=charliecloud", what, flavour, rt->number);
	*userns = true;
	return 0;
}

/* --writable-tmpfs where the release has it; in a user namespace
 * (--fakeroot, --userns) SingularityCE 3.4 mounts no overlay: it ignores
 * the flag with a warning and the job would find its root read-only.  (A
 * named container's layer is berth's own overlay: that works.) */
static int check_writable(const struct berth_sing_runtime *rt, const struct berth_sing_ask *ask,
			  bool userns, struct berth_err *err)
{
	if (!ask->writable || ask->named)
		return 0;
	if (!rt->writable_tmpfs)
		return berth_fail(err, 0, "--container-writable with %s %s: it has no "
				  "--writable-tmpfs (Singularity 3.0 and later have it): ask the "
				  "site for a newer release, or name the container "
				  "(--container-name)", berth_sing_flavour(rt), rt->number);
	if (rt->overlay_in_userns || (!ask->remap_root && !userns))
		return 0;
	return berth_fail(err, 0, "--container-writable with %s on %s %s: it makes no "
			  "overlay in a user namespace, so the root would stay read-only; drop "
			  "one of them, or name the container (--container-name, which keeps "
			  "its own writable layer), or use --container-runtime=charliecloud",
			  ask->remap_root ? "--container-remap-root" : "tmpfs mounts",
			  berth_sing_flavour(rt), rt->number);
}

int berth_sing_check(const struct berth_sing_runtime *rt, const struct berth_sing_ask *ask,
		     bool *userns, struct berth_err *err)
{
	if (check_named(rt, ask, err) < 0 ||
	    (ask->remap_root &&
	     berth_sing_can_fakeroot(rt, ask->uid, ask->subuid, ask->subgid, err) < 0) ||
	    check_berth_ns(rt, ask, userns, err) < 0)
		return -1;
	return check_writable(rt, ask, *userns, err);
}
