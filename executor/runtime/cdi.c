/* berth: CDI (cdi.h): the devices a container gets, and their edits as
 * binds, environment and nodes (the specs are read by cdi_parse.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/runtime/cdi.h"
#include "executor/runtime/cdi_int.h"

/* ---- choosing ------------------------------------------------------------- */

static int merge(struct berth_cdi_edits *out, const struct berth_cdi_edits *in,
		 struct berth_err *err)
{
	for (size_t i = 0; i < in->n_env; i++)
		if (berth_cdi_add_env(out, in->env[i], err) < 0)
			return -1;
	for (size_t i = 0; i < in->n_mounts; i++) {
		const struct berth_mount *m = &in->mounts[i];
		bool dup = false;
		for (size_t j = 0; j < out->n_mounts && !dup; j++)
			dup = !strcmp(out->mounts[j].dst, m->dst);
		if (dup)
			continue; /* two devices of one spec may share a node (nvidiactl) */
		if (berth_cdi_grow((void **)&out->mounts, out->n_mounts, sizeof(*out->mounts), err) < 0)
			return -1;
		struct berth_mount *c = &out->mounts[out->n_mounts++];
		*c = *m;
		if (!(c->src = strdup(m->src)) || !(c->dst = strdup(m->dst)))
			return berth_fail(err, ENOMEM, "CDI edits");
	}
	for (size_t i = 0; i < in->n_nodes; i++) {
		if (berth_cdi_grow((void **)&out->nodes, out->n_nodes, sizeof(char *), err) < 0 ||
		    !(out->nodes[out->n_nodes++] = strdup(in->nodes[i])))
			return berth_fail(err, ENOMEM, "CDI edits");
	}
	for (size_t i = 0; i < in->n_hooks; i++) {
		if (berth_cdi_grow((void **)&out->hooks, out->n_hooks, sizeof(*out->hooks), err) < 0)
			return -1;
		struct berth_cdi_hook *h = &out->hooks[out->n_hooks++];
		if (!(h->hook_name = strdup(in->hooks[i].hook_name)) ||
		    !(h->path = strdup(in->hooks[i].path)) || !(h->file = strdup(in->hooks[i].file)))
			return berth_fail(err, ENOMEM, "CDI edits");
		size_t n = 0;
		while (in->hooks[i].args && in->hooks[i].args[n])
			n++;
		if (!(h->args = calloc(n + 1, sizeof(char *))))
			return berth_fail(err, ENOMEM, "CDI edits");
		for (size_t j = 0; j < n; j++)
			if (!(h->args[j] = strdup(in->hooks[i].args[j])))
				return berth_fail(err, ENOMEM, "CDI edits");
	}
	for (size_t i = 0; i < in->n_gids; i++) {
		if (berth_cdi_grow((void **)&out->gids, out->n_gids, sizeof(gid_t), err) < 0)
			return -1;
		out->gids[out->n_gids++] = in->gids[i];
	}
	return 0;
}

int berth_cdi_edits_of(const struct berth_cdi_registry *reg, char *const *names,
		       const char *dirs, struct berth_cdi_edits *out, struct berth_err *err)
{
	_cleanup_free_ bool *spec_done = calloc(reg->n_specs + 1, sizeof(bool));

	if (!spec_done)
		return berth_fail(err, ENOMEM, "CDI edits");
	for (size_t i = 0; names && names[i]; i++) {
		const struct berth_cdi_device *d = NULL;
		for (size_t j = 0; j < reg->n_devices && !d; j++)
			if (!strcmp(reg->devices[j].name, names[i]))
				d = &reg->devices[j];
		if (!d)
			return berth_fail(err, 0, "no CDI spec in %s defines device %s; ask your "
					  "site to generate one (nvidia-ctk cdi generate) or name "
					  "another device", dirs ? dirs : BERTH_CDI_DEFAULT_DIRS,
					  names[i]);
		if (!spec_done[d->spec] && merge(out, &reg->specs[d->spec].edits, err) < 0)
			return -1;
		spec_done[d->spec] = true;
		if (merge(out, &d->edits, err) < 0)
			return -1;
	}
	return 0;
}

static const char *env_get(char *const *env, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], name, len) && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

int berth_cdi_step_gpus(char *const *env, char ***names, size_t *n, struct berth_err *err)
{
	static const char *const vars[] = {"SLURM_STEP_GPUS", "SLURM_JOB_GPUS",
					   "GPU_DEVICE_ORDINAL", "CUDA_VISIBLE_DEVICES"};
	const char *list = NULL;

	for (size_t i = 0; i < sizeof(vars) / sizeof(*vars) && !list; i++)
		list = env_get(env, vars[i]);
	/* Slurm's "no GPU" spellings */
	if (!list || !*list || !strcmp(list, "NoDevFiles") || !strcmp(list, "-1"))
		return 0;
	_cleanup_free_ char *copy = strdup(list);
	char *save = NULL;
	if (!copy)
		return berth_fail(err, ENOMEM, "GPUs");
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *name;
		if (asprintf(&name, "nvidia.com/gpu=%s", t) < 0)
			return berth_fail(err, ENOMEM, "GPUs");
		if (berth_cdi_grow((void **)names, *n + 1, sizeof(char *), err) < 0 || !*names) {
			free(name);
			return -1;
		}
		(*names)[(*n)++] = name;
		(*names)[*n] = NULL;
		if (!berth_cdi_name_valid(name))
			return berth_fail(err, 0, "the step's GPU list '%.100s' has '%.60s', not a "
					  "GPU index or UUID", list, t);
	}
	return 0;
}

/* ---- the plan of a container ------------------------------------------- */

/* The value of "--NAME V" or "--NAME=V" at args[*i] (advancing *i), or
 * NULL when args[*i] is not that option. */
static const char *opt_value(char *const *args, size_t *i, const char *name)
{
	size_t len = strlen(name);

	if (!strcmp(args[*i], name) && args[*i + 1])
		return args[++*i];
	if (!strncmp(args[*i], name, len) && args[*i][len] == '=')
		return args[*i] + len + 1;
	return NULL;
}

static int refuse_hook(const struct berth_cdi_hook *h, const char *name, const char *why,
		       struct berth_err *err)
{
	return berth_fail(err, 0, "CDI spec %s asks for the %s hook %s%s%s, which berth %s; "
			  "remove it from the spec (nvidia-ctk cdi generate --disable-hooks=NAME)",
			  h->file, h->hook_name, h->path, name ? " " : "", name ? name : "", why);
}

/* --link TARGET::LINK: the file TARGET names (relative to LINK's folder),
 * one of the spec's mounts or a host file, bound at LINK. */
static int do_link(struct berth_cdi_plan *p, const struct berth_cdi_hook *h, const char *spec,
		   struct berth_err *err)
{
	const char *sep = strstr(spec, "::");
	char target[PATH_MAX];

	if (!sep || sep[2] != '/' || sep == spec)
		return refuse_hook(h, "create-symlinks", "cannot read (--link TARGET::/LINK)", err);
	const char *link = sep + 2;
	if (spec[0] == '/')
		snprintf(target, sizeof(target), "%.*s", (int)(sep - spec), spec);
	else
		snprintf(target, sizeof(target), "%.*s/%.*s", (int)(strrchr(link, '/') - link),
			 link, (int)(sep - spec), spec);
	const char *src = NULL;
	for (size_t i = 0; i < p->edits.n_mounts && !src; i++)
		if (!strcmp(p->edits.mounts[i].dst, target))
			src = p->edits.mounts[i].src;
	if (!src && access(target, F_OK) == 0)
		src = target;
	if (!src || strstr(link, "/../") || strchr(link, ':') || strchr(link, ','))
		return refuse_hook(h, "create-symlinks", "cannot follow (its target is neither "
				   "mounted nor on the host)", err);
	for (size_t i = 0; i < p->edits.n_mounts; i++)
		if (!strcmp(p->edits.mounts[i].dst, link))
			return 0; /* mounted already */
	if (berth_cdi_grow((void **)&p->edits.mounts, p->edits.n_mounts, sizeof(*p->edits.mounts), err) < 0)
		return -1;
	struct berth_mount *m = &p->edits.mounts[p->edits.n_mounts];
	*m = (struct berth_mount){.src = strdup(src), .dst = strdup(link), .read_only = true,
				  .flags = BERTH_MNT_NOSUID | BERTH_MNT_NODEV, .berth_own = true};
	p->edits.n_mounts++;
	return m->src && m->dst ? 0 : berth_fail(err, ENOMEM, "CDI hooks");
}

static int add_ld_path(struct berth_cdi_plan *p, const char *dir, struct berth_err *err)
{
	char *more;

	if (dir[0] != '/' || strchr(dir, ':'))
		return berth_fail(err, 0, "CDI update-ldcache hook: folder '%.100s' is not an "
				  "absolute path; fix the spec", dir);
	if (asprintf(&more, "%s%s%s", p->ld_path ? p->ld_path : "", p->ld_path ? ":" : "",
		     dir) < 0)
		return berth_fail(err, ENOMEM, "CDI hooks");
	free(p->ld_path);
	p->ld_path = more;
	return 0;
}

int berth_cdi_do_hooks(struct berth_cdi_plan *p, struct berth_err *err)
{
	for (size_t k = 0; k < p->edits.n_hooks; k++) {
		const struct berth_cdi_hook *h = &p->edits.hooks[k];
		char *const *a = h->args;
		const char *tool = strrchr(h->path, '/') + 1;
		size_t i; /* where the hook's own name is */
		/* nvidia-cdi-hook NAME ...; nvidia-ctk hook NAME ... */
		if (a && a[0] && !strcmp(tool, "nvidia-cdi-hook"))
			i = 1;
		else if (a && a[0] && a[1] && !strcmp(tool, "nvidia-ctk") && !strcmp(a[1], "hook"))
			i = 2;
		else
			return refuse_hook(h, NULL, "does not run (it runs no OCI hooks)", err);
		const char *name = a[i];
		int rc = 0;
		if (!name || (strcmp(name, "create-symlinks") != 0 &&
			      strcmp(name, "update-ldcache") != 0 && strcmp(name, "chmod") != 0))
			return refuse_hook(h, name, "does not run (it runs no OCI hooks)", err);
		/* chmod: the device nodes are the host's own, modes and all */
		for (i++; a[i] && rc == 0; i++) {
			const char *v;
			if (!strcmp(name, "create-symlinks") && (v = opt_value(a, &i, "--link")))
				rc = do_link(p, h, v, err);
			else if (!strcmp(name, "update-ldcache") && (v = opt_value(a, &i, "--folder")))
				rc = add_ld_path(p, v, err);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* An additional group the job does not have cannot be added: refused. */
static int check_groups(const struct berth_cdi_edits *e, struct berth_err *err)
{
	gid_t mine[256];
	int n = getgroups(256, mine);

	for (size_t i = 0; i < e->n_gids; i++) {
		bool have = e->gids[i] == getgid();
		for (int j = 0; j < n && !have; j++)
			have = mine[j] == e->gids[i];
		if (!have)
			return berth_fail(err, 0, "the CDI devices ask for group %u, which this job "
					  "does not have; ask your site to add you to it",
					  (unsigned)e->gids[i]);
	}
	return 0;
}

static bool listed(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static int add_name(char ***v, size_t *n, const char *s, struct berth_err *err)
{
	if (listed(*v, *n, s))
		return 0;
	if (berth_cdi_grow((void **)v, *n + 1, sizeof(char *), err) < 0 || !*v ||
	    !((*v)[*n] = strdup(s)))
		return berth_fail(err, ENOMEM, "CDI devices");
	(*v)[++*n] = NULL;
	return 0;
}

static bool kind_known(const struct berth_cdi_registry *reg, const char *name)
{
	size_t klen = strcspn(name, "=");

	for (size_t i = 0; i < reg->n_devices; i++)
		if (!strncmp(reg->devices[i].name, name, klen + 1))
			return true;
	return false;
}

/* Is host node `src` one the chosen devices bind? */
static bool chosen_src(const struct berth_cdi_edits *chosen, const char *src)
{
	for (size_t i = 0; i < chosen->n_mounts; i++)
		if (!strcmp(chosen->mounts[i].src, src) &&
		    listed(chosen->nodes, chosen->n_nodes, chosen->mounts[i].dst))
			return true;
	return false;
}

/* The host's device nodes of every spec that the chosen devices do not
 * bind (by host path: a spec may show host /dev/nvidia3 as /dev/nvidia0). */
static int plan_hide(const struct berth_cdi_registry *reg, struct berth_cdi_plan *p,
		     struct berth_err *err)
{
	for (size_t i = 0; i < reg->n_devices + reg->n_specs; i++) {
		const struct berth_cdi_edits *e = i < reg->n_devices
			? &reg->devices[i].edits : &reg->specs[i - reg->n_devices].edits;
		for (size_t j = 0; j < e->n_mounts; j++) {
			const struct berth_mount *m = &e->mounts[j];
			if (listed(e->nodes, e->n_nodes, m->dst) && !chosen_src(&p->edits, m->src) &&
			    add_name(&p->hide, &p->n_hide, m->src, err) < 0)
				return -1;
		}
	}
	return 0;
}

/* NVIDIA_VISIBLE_DEVICES=none: the step's GPUs' own device nodes are
 * left out, their spec's (nvidiactl) and the driver kept. */
static void drop_gpu_nodes(const struct berth_cdi_registry *reg, char *const *gpus,
			   size_t n_gpus, struct berth_cdi_edits *e)
{
	for (size_t i = 0; i < n_gpus; i++) {
		for (size_t j = 0; j < reg->n_devices; j++) {
			const struct berth_cdi_device *d = &reg->devices[j];
			if (strcmp(d->name, gpus[i]) != 0)
				continue;
			const struct berth_cdi_edits *spec = &reg->specs[d->spec].edits;
			for (size_t k = 0; k < d->edits.n_nodes; k++)
				if (!listed(spec->nodes, spec->n_nodes, d->edits.nodes[k]))
					berth_cdi_drop_mount(e, d->edits.nodes[k]);
		}
	}
}

int berth_cdi_plan(const char *dirs, const char *list, char *const *env,
		   char *const *ctr_env, struct berth_cdi_plan *out, struct berth_err *err)
{
	/* the image's conventions (enroot's 98-nvidia hook): unset or empty
	 * leaves the choice to the job */
	const char *visible = env_get(ctr_env, "NVIDIA_VISIBLE_DEVICES");
	bool gpus_void = visible && !strcmp(visible, "void");
	bool gpus_none = visible && !strcmp(visible, "none");
	struct berth_cdi_registry reg = {0};
	char **gpus = NULL, **names = NULL;
	size_t n_gpus = 0, n_names = 0;
	int rc = -1;
	_cleanup_free_ char *copy = list ? strdup(list) : NULL;
	char *save = NULL;

	if (!gpus_void && berth_cdi_step_gpus(env, &gpus, &n_gpus, err) < 0)
		goto out;
	if (berth_cdi_load_dirs(&reg, dirs, err) < 0) {
		/* A job that asks for no device still runs when a spec is bad
		 * (only the other devices' nodes stay unhidden), and says so. */
		if (n_gpus || list)
			goto out;
		snprintf(out->warning, sizeof(out->warning), "%s", err->msg);
		rc = 0;
		goto out;
	}
	if (berth_cdi_cgroup_gpus(&reg, gpus, n_gpus, err) < 0)
		goto out;
	for (size_t i = 0; i < n_gpus; i++) {
		if (kind_known(&reg, gpus[i])) {
			if (add_name(&names, &n_names, gpus[i], err) < 0)
				goto out;
		} else {
			snprintf(out->warning, sizeof(out->warning),
				 "the step has GPUs but no CDI spec in %s describes nvidia.com/gpu: "
				 "the container gets none; ask your site to generate one "
				 "(nvidia-ctk cdi generate)", dirs ? dirs : BERTH_CDI_DEFAULT_DIRS);
			break;
		}
	}
	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
		if (add_name(&names, &n_names, t, err) < 0)
			goto out;
	if (berth_cdi_edits_of(&reg, names, dirs, &out->edits, err) < 0 ||
	    berth_cdi_do_hooks(out, err) < 0 || check_groups(&out->edits, err) < 0)
		goto out;
	if (gpus_none)
		drop_gpu_nodes(&reg, gpus, n_gpus, &out->edits);
	/* the driver files the container's capabilities ask for; with no
	 * device, nothing to filter (and the image's variable is not read) */
	if ((names && ctr_env &&
	     berth_cdi_filter_caps(&out->edits, env_get(ctr_env, "NVIDIA_DRIVER_CAPABILITIES"),
				   err) < 0) ||
	    plan_hide(&reg, out, err) < 0)
		goto out;
	rc = 0;
out:
	for (size_t i = 0; i < n_gpus; i++)
		free(gpus[i]);
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	free(gpus);
	free(names);
	berth_cdi_free(&reg);
	return rc;
}

void berth_cdi_plan_free(struct berth_cdi_plan *p)
{
	berth_cdi_edits_free(&p->edits);
	for (size_t i = 0; i < p->n_hide; i++)
		free(p->hide[i]);
	free(p->hide);
	free(p->ld_path);
	p->hide = NULL;
	p->ld_path = NULL;
	p->n_hide = 0;
}

int berth_cdi_task_gpus(const char *dirs, char *const *env, char **out, struct berth_err *err)
{
	struct berth_cdi_registry reg = {0};
	char **gpus = NULL;
	size_t n_gpus = 0, len = 0;
	int rc = -1;

	*out = NULL;
	if (berth_cdi_step_gpus(env, &gpus, &n_gpus, err) < 0)
		goto out;
	if (!n_gpus) {
		rc = 0;
		goto out;
	}
	if (berth_cdi_load_dirs(&reg, dirs, err) < 0 ||
	    berth_cdi_cgroup_gpus(&reg, gpus, n_gpus, err) < 0)
		goto out;
	for (size_t i = 0; i < n_gpus; i++)
		len += strlen(gpus[i]) + 1;
	if (!(*out = calloc(1, len + 1))) {
		berth_fail(err, ENOMEM, "GPUs");
		goto out;
	}
	for (size_t i = 0; i < n_gpus; i++) /* the index or UUID, comma separated */
		sprintf(*out + strlen(*out), "%s%s", i ? "," : "", gpus[i] + strlen("nvidia.com/gpu="));
	rc = 0;
out:
	for (size_t i = 0; i < n_gpus; i++)
		free(gpus[i]);
	free(gpus);
	berth_cdi_free(&reg);
	return rc;
}
