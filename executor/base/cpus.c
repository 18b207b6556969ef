/* berth: CPU sets as lists (see cpus.h). */
#define _GNU_SOURCE
#include "executor/base/cpus.h"

#include <errno.h>
#include <stdio.h>

int berth_cpus_format(const cpu_set_t *set, char *buf, size_t size, struct berth_err *err)
{
	size_t used = 0;

	if (size)
		buf[0] = '\0';
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, set))
			continue;
		int last = cpu;
		while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, set))
			last++;
		int n = last == cpu
			? snprintf(buf + used, size - used, "%s%d", used ? "," : "", cpu)
			: snprintf(buf + used, size - used, "%s%d-%d", used ? "," : "", cpu, last);
		if (n < 0 || (size_t)n >= size - used)
			return berth_fail(err, ENOSPC, "CPU list longer than %zu characters", size);
		used += (size_t)n;
		cpu = last;
	}
	if (!used)
		return berth_fail(err, EINVAL, "no CPU in the set");
	return 0;
}

int berth_cpus_of_task(pid_t task, char *buf, size_t size, struct berth_err *err)
{
	cpu_set_t theirs, ours, both;

	if (sched_getaffinity(task, sizeof(theirs), &theirs) < 0)
		return berth_fail(err, errno, "reading the CPU binding of process %d",
				  (int)task);
	if (sched_getaffinity(0, sizeof(ours), &ours) < 0)
		return berth_fail(err, errno, "reading this process's CPU binding");
	CPU_AND(&both, &theirs, &ours);
	if (CPU_COUNT(&both) == 0)
		return berth_fail(err, 0, "the task's CPUs are none of the step's");
	return berth_cpus_format(&both, buf, size, err);
}
