#include "executor/runtime/caps.h"

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

int berth_runtime_can_mount(enum berth_runtime rt, const struct berth_mount *m,
			    struct berth_err *err)
{
	if (m->kind == BERTH_MOUNT_TMPFS)
		return 0; /* every runtime, with every option */
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
