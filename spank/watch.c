/* berth: has the job ended while this step still stages its image?
 *
 * slurmstepd does not tell a step that is still in user_init: a scancel, a
 * time limit or a node failure is held back until the step has started
 * (there is no task to signal yet), so a stager that stalls would keep the
 * node "completing" for everyone.  The stager's own deadline (StageTimeout)
 * bounds that; this ends it sooner, by asking slurmctld, with the cluster's
 * own squeue, what state the job is in.  Asked at most every
 * WATCH_INTERVAL seconds and only while a staging runs, so a quick staging
 * costs nothing.  What a step-only cancel (scancel JOB.STEP) does is not
 * visible this way: StageTimeout ends that one. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "executor/base/process.h"
#include "spank/berth_spank.h"

#define WATCH_INTERVAL 5      /* seconds between two questions */
#define SQUEUE_TIMEOUT 15     /* an unreachable slurmctld: give up asking */

/* The squeue beside this slurmstepd (PREFIX/sbin/slurmstepd ->
 * PREFIX/bin/squeue), else the first in the usual folders. */
static const char *find_squeue(char *buf, size_t len)
{
	static const char *const dirs[] = {"/usr/bin", "/usr/local/bin", "/bin"};
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		char *sbin = strstr(exe, "/sbin/");
		if (sbin) {
			snprintf(buf, len, "%.*s/bin/squeue", (int)(sbin - exe), exe);
			if (access(buf, X_OK) == 0)
				return buf;
		}
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++) {
		snprintf(buf, len, "%s/squeue", dirs[i]);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/* Job states in which the job still runs (squeue's %T); any other state
 * (COMPLETING, CANCELLED, TIMEOUT, NODE_FAIL, PREEMPTED, ...) means the
 * job is over. */
static bool still_running(const char *state)
{
	static const char *const live[] = {"RUNNING", "CONFIGURING", "SUSPENDED",
					   "RESIZING", "PENDING", "REQUEUED"};

	for (size_t i = 0; i < sizeof(live) / sizeof(*live); i++)
		if (!strcmp(state, live[i]))
			return true;
	return false;
}

/* One question to slurmctld: the job's state, or "" when it cannot tell. */
static void ask_job_state(const struct berth_stage_watch *w, char *state, size_t len)
{
	char squeue[4096], job[16];
	const char *conf = getenv("SLURM_CONF"); /* slurmd's, not the job's */
	_cleanup_free_ char *conf_env = NULL;
	_cleanup_free_ char *out = NULL;
	struct berth_err err = {0};
	int status = -1;

	state[0] = '\0';
	if (!find_squeue(squeue, sizeof(squeue)) ||
	    (conf && asprintf(&conf_env, "SLURM_CONF=%s", conf) < 0))
		return;
	snprintf(job, sizeof(job), "%u", w->job);
	char *argv[] = {squeue, "--noheader", "--jobs", job, "--format=%T", NULL};
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", conf_env, NULL};
	/* As the job user: squeue reads what slurm.conf names (plugins too),
	 * and slurmctld shows users their own jobs. */
	struct berth_spawn spawn = {
		.argv = argv, .envp = envp, .cred = w->cred, .cwd = "/",
		.stdin_fd = -1, .stderr_fd = -1, .capture_stdout = &out,
		.capture_max = 4096, .stderr_to_capture = true,
		.timeout_s = SQUEUE_TIMEOUT,
	};
	if (berth_spawn_run(&spawn, &status, &err) < 0 || !out)
		return;
	if (status != 0) {
		/* a job slurmctld no longer knows has ended long ago */
		if (strstr(out, "Invalid job id"))
			snprintf(state, len, "%s", "GONE");
		return;
	}
	snprintf(state, len, "%.*s", (int)strcspn(out, " \n"), out);
}

const char *berth_stage_watch_check(void *ctx)
{
	struct berth_stage_watch *w = ctx;
	time_t now = time(NULL);
	char state[64];

	if (!w->job || now < w->next)
		return NULL;
	ask_job_state(w, state, sizeof(state));
	w->next = time(NULL) + WATCH_INTERVAL;
	if (!state[0] || still_running(state))
		return NULL;
	snprintf(w->reason, sizeof(w->reason), "job %u has ended (%s)", w->job, state);
	return w->reason;
}
