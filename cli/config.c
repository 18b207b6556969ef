/* berth config: the effective configuration, as berth.conf lines. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "executor/executor.h"
#include "executor/runtime/mountns.h"
#include "executor/runtime/sqfs_probe.h"
#include "executor/runtime/sing_runtime.h"
#include "cli/cli.h"

static const char *yes_no(bool b)
{
	return b ? "yes" : "no";
}

/* What berth knows of the release and the installation, and uses. */
static void print_abilities(const struct berth_sing_runtime *rt)
{
	printf("# singularity installation: %s; squashfuse: %s\n",
	       rt->setuid ? "setuid (starter-suid mounts SIFs as root)"
			  : "user namespaces (no setuid starter)",
	       rt->squashfuse ? "yes (mounts a SIF without setuid)" : "no");
	printf("# singularity flags: --writable-tmpfs: %s (in a user namespace: %s); "
	       "--no-pid: %s (under --containall: %s)\n", yes_no(rt->writable_tmpfs),
	       yes_no(rt->overlay_in_userns), yes_no(rt->no_pid),
	       yes_no(rt->no_pid_with_containall));
	printf("# --container-remap-root: %s\n", !rt->fakeroot ? "refused (no --fakeroot)"
	       : rt->fakeroot_ignore_subuid
	       ? "--fakeroot --ignore-subuid --ignore-fakeroot-command (needs no /etc/subuid entry)"
	       : "--fakeroot (needs a 65536-id range for the user in /etc/subuid and /etc/subgid)");
}

/* The Singularity behind SingularityPath, asked now (no memo: this is
 * where a site looks after changing it), and what berth does with it. */
static void print_singularity(const struct berth_config *cfg)
{
	struct berth_err err = {0};
	struct berth_sing_runtime rt;
	struct berth_err refused = {0};
	struct berth_sing_choice choice;
	enum berth_sqfs_comp comp;
	char why[PATH_MAX + 256], fuse_why[PATH_MAX + 128];

	if (berth_sing_runtime_probe(cfg->singularity_path, -1, &rt, &err) < 0) {
		/* no binary here: what auto means still shows */
		berth_sing_runtime_parse("", &rt);
		berth_sing_runtime_install(cfg->singularity_path, &rt);
	}
	bool fuse = berth_ns_squashfs_owned_usable(cfg->squashfuse_path, fuse_why, sizeof(fuse_why));
	if (berth_sing_choose_format(cfg, &rt, fuse ? NULL : fuse_why, &choice, &refused) < 0)
		printf("# singularity images here: refused (%s)\n", refused.msg);
	else
		printf("# singularity images here: %s%s (%s)\n",
		       berth_sing_format_name(choice.format),
		       choice.mount ? ", mounted by berth" : "", choice.why);
	enum berth_sing_format f = choice.format;
	if (err.msg[0]) {
		printf("# singularity runtime: unknown (%s)\n", err.msg);
		return;
	}
	printf("# singularity runtime: %s %s (%s: %s)\n", berth_sing_flavour(&rt), rt.number,
	       cfg->singularity_path, rt.version);
	if (f == BERTH_SING_SIF) {
		if (berth_sing_compression(cfg->sqfs_comp, &rt, &comp, why, sizeof(why), &err) < 0)
			printf("# SIF SquashFS compression: refused: %s\n", err.msg);
		else
			printf("# SIF SquashFS compression: %s (%s)\n", berth_sqfs_comp_name(comp),
			       why);
	}
	print_abilities(&rt);
}

/* ImageStorage for charliecloud: what this node would do now, tried now
 * (no memo, as for singularity) with a tmpfs over /mnt in the probe's own
 * mount namespace (not /tmp, where a site may try a squashfuse; /tmp only
 * where there is no /mnt). */
static void print_storage(const struct berth_config *cfg)
{
	char why[PATH_MAX + 2048] = "squashfuse mounted a test image";
	struct stat st;
	const char *over = stat("/mnt", &st) == 0 && S_ISDIR(st.st_mode) ? "/mnt" : "/tmp";
	bool fuse = cfg->image_storage != BERTH_STORE_TREE &&
		    berth_ns_squashfs_probe(cfg->squashfuse_path, over, -1, why, sizeof(why));

	if (cfg->image_storage == BERTH_STORE_TREE)
		printf("# charliecloud images here: tree (set by ImageStorage)\n");
	else if (fuse)
		printf("# charliecloud images here: squashfs (%s)\n", why);
	else
		printf("# charliecloud images here: %s (%s)\n",
		       cfg->image_storage == BERTH_STORE_AUTO ? "tree" : "refused", why);
}

int cmd_config(int argc, char **argv)
{
	struct berth_err err = {0};
	struct berth_config cfg;

	(void)argc, (void)argv; /* it takes none, and never refused extra words */
	if (cli_load_config(&cfg, &err) < 0) {
		cli_error(&err);
		return 1;
	}
	berth_config_print(&cfg, stdout);
	/* What auto means on this machine, as a comment: the output stays a
	 * valid berth.conf. */
	print_storage(&cfg);
	print_singularity(&cfg);
	berth_config_free(&cfg);
	return 0;
}
