#include "executor/runtime/caps.h"

#include <stdbool.h>
#include <string.h>

/* ch-run makes every mount private; Apptainer decides propagation itself
 * (slave of the host's, where the host's is shared); Docker takes private,
 * rprivate, slave and rslave, not unbindable. */
static int check_propagation(enum berth_runtime rt, const struct berth_mount *m,
			     struct berth_err *err)
{
	enum berth_propagation p = m->propagation;

	switch (rt) {
	case BERTH_RT_CHARLIECLOUD:
		if (p == BERTH_PROP_DEFAULT || p == BERTH_PROP_PRIVATE || p == BERTH_PROP_RPRIVATE)
			return 0;
		return berth_fail(err, 0, "mount %s: charliecloud cannot make a %s mount (ch-run "
				  "makes every mount private); drop the flag, or use "
				  "--container-runtime=docker for slave", m->dst,
				  berth_propagation_name(p));
	case BERTH_RT_SINGULARITY:
		if (p == BERTH_PROP_DEFAULT)
			return 0;
		return berth_fail(err, 0, "mount %s: singularity decides the propagation of its "
				  "binds itself and cannot make a %s mount; drop the flag",
				  m->dst, berth_propagation_name(p));
	case BERTH_RT_DOCKER:
		if (p != BERTH_PROP_UNBINDABLE && p != BERTH_PROP_RUNBINDABLE)
			return 0;
		return berth_fail(err, 0, "mount %s: Docker cannot make a %s bind; drop the flag "
				  "or use --container-runtime=charliecloud", m->dst,
				  berth_propagation_name(p));
	default:
		return 0;
	}
}

/* Every runtime takes size=, mode= and the flags.  Docker (its
 * ParseTmpfsOptions) takes of the other tmpfs(5) options nr_blocks=,
 * nr_inodes= and mpol= only, and a size in bytes. */
static int check_tmpfs(enum berth_runtime rt, const struct berth_mount *m,
		       struct berth_err *err)
{
	static const char *const docker_takes[] = {"nr_blocks=", "nr_inodes=", "mpol=", "size="};

	if (rt != BERTH_RT_DOCKER)
		return 0;
	for (const char *o = m->tmpfs_extra; *o; o += strcspn(o, ","), o += *o == ',') {
		bool ok = false;
		for (size_t i = 0; i < sizeof(docker_takes) / sizeof(*docker_takes); i++)
			ok = ok || !strncmp(o, docker_takes[i], strlen(docker_takes[i]));
		if (!ok)
			return berth_fail(err, 0, "mount %s: Docker's tmpfs cannot take '%.*s' "
					  "(it takes size=, mode=, nr_blocks=, nr_inodes= "
					  "and mpol= only); drop it or use --container-runtime="
					  "charliecloud or singularity", m->dst,
					  (int)strcspn(o, ","), o);
	}
	return 0;
}

bool berth_umount_is_passwd(const struct berth_mount *m)
{
	return m->kind == BERTH_MOUNT_UMOUNT &&
	       (!strcmp(m->dst, "/etc/passwd") || !strcmp(m->dst, "/etc/group"));
}

/* umount:DST.  ch-run can leave out its binds of /etc/passwd and
 * /etc/group (--no-passwd: both go); no runtime can leave out the rest of
 * what it mounts (/proc, /sys, /dev, /tmp, /etc/hosts ...) from outside,
 * and the job, not root in the container, cannot unmount them inside. */
static int check_umount(enum berth_runtime rt, const struct berth_mount *m,
			struct berth_err *err)
{
	if (rt == BERTH_RT_CHARLIECLOUD && berth_umount_is_passwd(m))
		return 0;
	if (rt == BERTH_RT_CHARLIECLOUD)
		return berth_fail(err, 0, "mount umount:%s: charliecloud can leave out only "
				  "its /etc/passwd and /etc/group (together), not %s; drop the "
				  "item", m->dst, m->dst);
	return berth_fail(err, 0, "mount umount:%s: %s cannot leave out a mount it makes "
			  "(its /proc, /sys, /dev, /etc/hosts ... are made by the runtime "
			  "itself); drop the item%s", m->dst, berth_runtime_name(rt),
			  berth_umount_is_passwd(m) ? ", or use --container-runtime=charliecloud"
						    : "");
}

int berth_runtime_can_mount(enum berth_runtime rt, const struct berth_mount *m,
			    struct berth_err *err)
{
	if (m->kind == BERTH_MOUNT_TMPFS)
		return check_tmpfs(rt, m, err);
	if (m->kind == BERTH_MOUNT_UMOUNT)
		return check_umount(rt, m, err);
	if (rt == BERTH_RT_DOCKER && m->flags)
		return berth_fail(err, 0, "mount %s: Docker binds cannot be nosuid, nodev or "
				  "noexec (berth's Docker containers already run with "
				  "no-new-privileges, so setuid bits do nothing, and without "
				  "device access); drop the flag or use another runtime", m->dst);
	return check_propagation(rt, m, err);
}

int berth_runtime_can_mount_all(enum berth_runtime rt, const struct berth_mount *m, size_t n,
				struct berth_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (berth_runtime_can_mount(rt, &m[i], err) < 0)
			return -1;
	return 0;
}

int berth_runtime_can_remap_root(enum berth_runtime rt, struct berth_err *err)
{
	if (rt != BERTH_RT_DOCKER)
		return 0;
	return berth_fail(err, 0, "--container-remap-root: Docker runs containers without a "
			  "user namespace here, so uid 0 in one would be the node's root "
			  "(and with dockerd's userns-remap, files would belong to its "
			  "subordinate ids, not to you); use --container-runtime="
			  "charliecloud or singularity");
}

int berth_runtime_can_name(enum berth_runtime rt, struct berth_err *err)
{
	if (rt != BERTH_RT_DOCKER)
		return 0;
	return berth_fail(err, 0, "--container-name and --container-save: berth removes "
			  "every Docker container when its step ends (the job user never "
			  "talks to dockerd), so it keeps or saves none; use "
			  "--container-runtime=charliecloud or singularity");
}
