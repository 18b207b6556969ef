/* berth config: the effective configuration, as berth.conf lines. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>

#include "executor/executor.h"
#include "cli/cli.h"

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
	berth_config_free(&cfg);
	return 0;
}
