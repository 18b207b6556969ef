/* The scratch folder of a fuzz target: under $BERTH_FUZZ_SCRATCH (run.sh
 * makes one per run and removes it afterwards), else /dev/shm.  tmpfs, so
 * the file system work of an execution costs memory speed.  libFuzzer ends
 * with _exit(), so no atexit() handler could remove it: run by hand, point
 * BERTH_FUZZ_SCRATCH at a folder of your own. */
#ifndef BERTH_FUZZ_SCRATCH_H
#define BERTH_FUZZ_SCRATCH_H

#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_scratch(char *out, size_t cap, const char *target)
{
	const char *base = getenv("BERTH_FUZZ_SCRATCH");

	snprintf(out, cap, "%s/berth-%s.XXXXXX", base && *base ? base : "/dev/shm", target);
	if (!mkdtemp(out)) {
		perror(out);
		abort();
	}
}

#endif
