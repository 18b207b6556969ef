/* berth config: the effective configuration, as berth.conf lines. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>

#include "executor/executor.h"
#include "executor/runtime/sing_runtime.h"
#include "cli/cli.h"

/* The Singularity behind SingularityPath, asked now (no memo: this is
 * where a site looks after changing it), and what berth does with it. */
static void print_singularity(const struct berth_config *cfg, enum berth_sing_format f)
{
	struct berth_err err = {0};
	struct berth_sing_runtime rt;
	enum berth_sqfs_comp comp;
	char why[128];

	if (berth_sing_runtime_probe(cfg->singularity_path, -1, &rt, &err) < 0) {
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
	printf("# --container-remap-root: %s\n", rt.fakeroot_ignore_subuid
	       ? "--fakeroot --ignore-subuid --ignore-fakeroot-command (needs no /etc/subuid entry)"
	       : "--fakeroot (needs a 65536-id range for the user in /etc/subuid and /etc/subgid)");
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
	char why[PATH_MAX + 256];
	enum berth_sing_format f = berth_singularity_choose_format(&cfg, why, sizeof(why));
	printf("# singularity images here: %s (%s)\n", berth_sing_format_name(f), why);
	print_singularity(&cfg, f);
	berth_config_free(&cfg);
	return 0;
}
