# shellcheck shell=bash
# shellcheck disable=SC2034 # the CL_* paths are used by the scripts that source this
# Shared by start.sh, stop.sh and submit.sh: paths and process helpers.
# Sourced, not run.

CLUSTER_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLUSTER_HERE/../.." && pwd)

BERTH_BUILD=${BERTH_BUILD:-$REPO_ROOT/build}
BERTH_CLUSTER_DIR=${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}
BERTH_TEST_USER=${BERTH_TEST_USER:-berthtest}
BERTH_OTHER_USER=${BERTH_OTHER_USER:-berthother}

CL_ETC=$BERTH_CLUSTER_DIR/etc
CL_BIN=$BERTH_CLUSTER_DIR/bin
CL_PIDS=$BERTH_CLUSTER_DIR/pids
CL_LOG=$BERTH_CLUSTER_DIR/log
CL_RUN=$BERTH_CLUSTER_DIR/run
CL_CONF=$CL_ETC/slurm.conf

# pid recorded for daemon $1 (munged, slurmctld, slurmd), empty if none.
recorded_pid() {
    local f=$CL_PIDS/$1.pid
    [ -r "$f" ] && tr -dc '0-9' <"$f"
    return 0
}

# True when $1 is a live process whose executable name is $2. Guards against
# a recycled pid: we never signal a process that is not the daemon we started.
pid_is() {
    local pid=$1 name=$2 comm
    [ -n "$pid" ] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [ "$comm" = "$name" ]
}

# True when the daemon recorded under $1 is still running.
daemon_alive() {
    pid_is "$(recorded_pid "$1")" "$1"
}

# SIGTERM the pids given, wait up to $KILL_WAIT (10) seconds, then SIGKILL the
# ones still alive.
term_then_kill() {
    local pid left i
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < ${KILL_WAIT:-10} * 10; i++)); do
        left=0
        for pid in "$@"; do
            kill -0 "$pid" 2>/dev/null && left=1
        done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "  pid $pid ignored SIGTERM for ${KILL_WAIT:-10}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# Stop the recorded daemon $1 and forget it.
stop_daemon() {
    local name=$1 pid
    pid=$(recorded_pid "$name")
    if pid_is "$pid" "$name"; then
        echo "  stopping $name (pid $pid)"
        term_then_kill "$pid"
    fi
    rm -f "$CL_PIDS/$name.pid"
}

# slurmstepd processes started by this cluster's slurmd: they inherit
# SLURM_CONF=<our slurm.conf> from it (start.sh sets it), which tells them
# apart from any other Slurm on the machine.
cluster_stepds() {
    local p
    for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
        if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" |
            grep -qxF "SLURM_CONF=$CL_CONF"; then
            echo "$p"
        fi
    done
}

# All descendants of the given pids (job tasks under a slurmstepd).
descendants() {
    local p kids
    for p in "$@"; do
        kids=$(pgrep -P "$p" 2>/dev/null || true)
        for k in $kids; do
            echo "$k"
            descendants "$k"
        done
    done
}

# Give running jobs a clean end (the plugin's cleanup runs) while the daemons
# are still up: scancel everything, wait up to 10 s for our slurmstepds to go.
# Needs SLURM_CONF=$CL_CONF.
cancel_jobs() {
    local jobs i
    daemon_alive slurmctld && daemon_alive slurmd || return 0
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    [ -n "$jobs" ] || return 0
    echo "  cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
    # shellcheck disable=SC2086 # one job id per word
    timeout 10 scancel $jobs 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        [ -z "$(cluster_stepds)" ] && return 0
        sleep 0.1
    done
}
