#!/bin/bash
# Stop what tests/harness/cluster/start.sh started, by recorded pid only: jobs are
# cancelled, then slurmd, slurmctld, leftover slurmstepd processes of this
# cluster (and their tasks), then munged if start.sh started it. Idempotent:
# exits 0 when nothing runs.
set -uo pipefail
# shellcheck source=tests/harness/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export SLURM_CONF=$CL_CONF

[ "$(id -u)" -eq 0 ] || { echo "stop.sh: run as root" >&2; exit 1; }
[ -d "$BERTH_CLUSTER_DIR" ] || { echo "stop.sh: nothing in $BERTH_CLUSTER_DIR"; exit 0; }
echo "stop.sh: stopping the cluster in $BERTH_CLUSTER_DIR"

cancel_jobs

stop_daemon slurmd
stop_daemon slurmctld

# slurmstepd outlives slurmd; take its tasks down with it.
mapfile -t stepds < <(cluster_stepds)
if [ ${#stepds[@]} -gt 0 ]; then
    mapfile -t tasks < <(descendants "${stepds[@]}")
    echo "  killing leftover slurmstepd: ${stepds[*]} (tasks: ${tasks[*]:-none})"
    KILL_WAIT=3 term_then_kill "${stepds[@]}" "${tasks[@]}"
    # A killed slurmstepd leaves its job's cgroups behind (cgroup v1): remove
    # the empty ones (rmdir fails on a cgroup that still has tasks), deepest
    # first.
    find /sys/fs/cgroup/*/"slurm_${BERTH_NODE_NAME:-$(hostname -s)}" -mindepth 2 -depth -type d \
        -path '*/job_*' -exec rmdir {} + 2>/dev/null || true
fi

stop_daemon munged
rm -f "$CL_PIDS"/*.pid
echo "stop.sh: done"
exit 0
