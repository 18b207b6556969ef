/* berth: registry images pinned to one digest per job (see pin.c). */
#ifndef BERTH_PIN_H
#define BERTH_PIN_H

#include <slurm/spank.h>
#include <stddef.h>

#include "conf/error.h"

#define BERTH_PINS_MAX 16384
#define BERTH_PIN_ENTRY_MAX 4096

/* Submitting side (srun, sbatch, salloc): resolve a registry image's tag
 * and record it in BERTH_IMAGE_PINS.  Reports and returns -1 on failure. */
int berth_pin_submit(void);

/* Remote side: the reference to stage, the pinned one when the job's
 * environment has it (`buf` holds it).  For a pinned URL the reference is
 * the URL and *url_pin gets its validator for `--pin` ("" when none). */
const char *berth_pinned_image(spank_t sp, char *buf, size_t cap, char *url_pin,
			       size_t pin_cap);

/* --container-image as messages and logs show it (berth_url_masked). */
const char *berth_image_shown(void);

/* A descriptor to read `image` from, one line, for a berth command run
 * with --image-stdin (so no secret of a URL lands on a command line); -1
 * with err when it cannot be made. */
int berth_image_stdin(const char *image, struct berth_err *err);

/* "BERTH_CONFIG_TEXT=<the effective settings>" for commands berth spawns. */
char *berth_config_env(void);

#endif
