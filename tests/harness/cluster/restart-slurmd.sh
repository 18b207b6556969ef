#!/bin/bash
# Restart this cluster's slurmd, and only it: SIGTERM the recorded slurmd,
# start it again with the same node name and configuration, wait until the
# controller sees the node answer.  Running steps keep their slurmstepd, as
# on a real node whose slurmd is restarted.  Used by tests/e2e/faults.bats.
set -u
# shellcheck source=tests/harness/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pid=$(recorded_pid slurmd)
pid_is "$pid" slurmd || { echo "no slurmd of $BERTH_CLUSTER_DIR is running" >&2; exit 1; }
node=$(tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n '/^-N$/{n;p;}')
[ -n "$node" ] || { echo "cannot tell slurmd $pid's node name" >&2; exit 1; }
KILL_WAIT=15 term_then_kill "$pid"
# SLURM_CONF in its environment: the slurmstepds inherit it, and
# cluster_stepds() tells this cluster's steps apart by it.
(cd "$CL_RUN" && exec setsid env SLURM_CONF="$CL_CONF" slurmd -D -N "$node" -f "$CL_CONF" \
	</dev/null >>"$CL_LOG/slurmd.out" 2>&1) &
echo "$!" >"$CL_PIDS/slurmd.pid"
new=$(recorded_pid slurmd)
# Up when the new slurmd listens (the controller still shows the node as it
# was: a restart of a few seconds is not a node failure).
for ((i = 0; i < 300; i++)); do
	if ss -Hltnp 2>/dev/null | grep -q "pid=$new,"; then
		echo "slurmd restarted (pid $new)"
		exit 0
	fi
	daemon_alive slurmd || { echo "slurmd died at restart (see $CL_LOG/slurmd.log)" >&2; exit 1; }
	sleep 0.1
done
echo "slurmd (pid $new) not listening 30 s after its restart" >&2
exit 1
