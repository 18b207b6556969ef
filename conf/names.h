/* berth: --container-name=NAME[:MODE], pyxis's syntax.  libc only (the
 * plugin checks it at submission). */
#ifndef BERTH_NAMES_H
#define BERTH_NAMES_H

#include <stdbool.h>

#include "conf/error.h"

#define BERTH_NAME_MAX 64

enum berth_name_mode {
	BERTH_NAME_AUTO = 0, /* join a running one, else reuse, else create */
	BERTH_NAME_CREATE,   /* it must not exist yet */
	BERTH_NAME_EXEC,     /* it must be running: join it */
	BERTH_NAME_NO_CREATE,/* it must exist */
	BERTH_NAME_NO_EXEC,  /* never join: refused while it runs */
};

/* "NAME[:MODE]" as the user wrote it.  NAME: [A-Za-z0-9][A-Za-z0-9_.-]*,
 * at most BERTH_NAME_MAX - 1 characters. */
int berth_name_parse(const char *text, char name[BERTH_NAME_MAX], enum berth_name_mode *mode,
		     struct berth_err *err);
const char *berth_name_mode_str(enum berth_name_mode mode);

/* "JOBID.STEPID" (digits): pyxis's name for a running step's container. */
bool berth_name_is_step(const char *name);

#endif
