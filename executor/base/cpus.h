/* berth: CPU sets as Linux writes them ("0-3,8"): the list form that
 * /proc/PID/status (Cpus_allowed_list), cpuset cgroups and Docker's
 * CpusetCpus use. */
#ifndef BERTH_CPUS_H
#define BERTH_CPUS_H

#define _GNU_SOURCE
#include <sched.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf/error.h"

/* `set` as a list ("0-3,8") into buf; -1 (ENOSPC) when it does not fit,
 * -1 (EINVAL) for an empty set. */
int berth_cpus_format(const cpu_set_t *set, char *buf, size_t size, struct berth_err *err);

/* The CPUs the process `task` is bound to, kept within the caller's own:
 * sched_getaffinity(task) AND sched_getaffinity(0), as a list into buf.
 * Fails when they share no CPU. */
int berth_cpus_of_task(pid_t task, char *buf, size_t size, struct berth_err *err);

#endif
