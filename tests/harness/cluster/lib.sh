# shellcheck shell=bash
# shellcheck disable=SC2034 # the CL_* paths are used by the scripts that source this
# Shared by start.sh, stop.sh and submit.sh: paths and process helpers.
# Sourced, not run.

CLUSTER_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLUSTER_HERE/../../.." && pwd)

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
# are still up: scancel everything, wait up to 15 s for our slurmstepds to
# go.  `cancel_jobs any-node`: a multi-node cluster, whose slurmd pids are
# per node, needs only slurmctld up.  Needs SLURM_CONF=$CL_CONF.
cancel_jobs() {
    local jobs i
    daemon_alive slurmctld || return 0
    [ "${1:-}" = any-node ] || daemon_alive slurmd || return 0
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    [ -n "$jobs" ] || return 0
    echo "  cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
    # shellcheck disable=SC2086 # one job id per word
    timeout 10 scancel $jobs 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        [ -z "$(cluster_stepds)" ] && return 0
        sleep 0.1
    done
}

# ------------------------------------------------------------------------
# Shared by start.sh and multinode.sh: they define log() and die() first.

# cgroup_plugins VARIANT (cgroup | linuxproc): sets proctrack and task.
cgroup_plugins() {
    if [ "$1" = cgroup ]; then
        proctrack=proctrack/cgroup
        task=task/cgroup,task/affinity
    else
        proctrack=proctrack/linuxproc
        task=task/none
    fi
}

# slurm_conf_policy DEFMEM PROCTRACK TASK FIRST_JOB_ID: the slurm.conf lines
# both clusters share (scheduling, plugins, timeouts, no accounting).
slurm_conf_policy() {
    cat <<CONF
SlurmctldDebug=info
SlurmdDebug=debug
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$1
ProctrackType=$2
TaskPlugin=$3
PlugStackConfig=$CL_ETC/plugstack.conf
TaskProlog=$CL_ETC/task_prolog
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
FirstJobId=$4
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=5
# sbatch --wait polls for the exit code: keep a finished job that long.
MinJobAge=60
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
CONF
}

# write_file PATH MODE: stdin -> PATH, atomically (rename), only when the
# content differs. Sets CHANGED=1 when it wrote.
write_file() {
    local path=$1 mode=$2 tmp
    tmp=$(mktemp "$path.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        chmod "$mode" "$path"
    else
        mv -f "$tmp" "$path"
        CHANGED=1
    fi
}

# Copy the built binaries into bin/ at every start, so the test user can
# read them wherever the repo lives (/root is 0700) and a rebuild + restart
# picks them up. Rename, never overwrite in place: a running slurmd or
# slurmstepd may have the old plugin mapped. Sets PLUGIN_CHANGED.
install_bins() {
    local f
    mkdir -p "$CL_BIN"
    chmod 0755 "$CL_BIN"
    # Singularity: the strict stand-in (no package exists for Debian 12),
    # copied where the test user can read it.  A real binary named by
    # BERTH_TEST_SINGULARITY is used where it is installed (see SING_PATH):
    # Apptainer finds its starter and configuration from there.
    local sing=$REPO_ROOT/tests/harness/fakes/singularity
    if ! cmp -s "$sing" "$CL_BIN/singularity"; then
        install -m 0755 "$sing" "$CL_BIN/.singularity.new"
        mv -f "$CL_BIN/.singularity.new" "$CL_BIN/singularity"
    fi
    # its session mount point, as Apptainer's /var/lib/apptainer/mnt/session
    install -d -m 0755 "$CL_BIN/session"
    for f in spank_berth.so berth; do
        if [ -f "$BERTH_BUILD/$f" ]; then
            if ! cmp -s "$BERTH_BUILD/$f" "$CL_BIN/$f"; then
                install -m 0755 "$BERTH_BUILD/$f" "$CL_BIN/.$f.new"
                mv -f "$CL_BIN/.$f.new" "$CL_BIN/$f"
                [ "$f" = spank_berth.so ] && PLUGIN_CHANGED=1
            fi
        else
            log "warning: $BERTH_BUILD/$f not found"
            if [ -e "$CL_BIN/$f" ]; then
                rm -f "$CL_BIN/$f"
                [ "$f" = spank_berth.so ] && PLUGIN_CHANGED=1
            fi
        fi
    done
    return 0
}

# The machine's real topology and memory, as slurmd sees it: a node that
# claims more than it has would be drained.
node_line() {
    slurmd -C 2>/dev/null | awk '/^NodeName=/ { $1 = ""; sub(/^ /, ""); print; exit }'
}

munge_works() {
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1
}

# Reuse a working munged (not recorded: not ours to stop); else start one as
# user munge and record it.
start_munge() {
    local i pid
    if munge_works; then
        if daemon_alive munged; then
            log "munged already running (pid $(recorded_pid munged), ours)"
        else
            log "munged already running and working: reusing it"
        fi
        return 0
    fi
    stop_daemon munged # a recorded one that does not answer
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    # setpriv execs (no fork), so $! is munged itself; -F keeps it in the
    # foreground so that pid stays valid. Redirects keep a caller's pipe
    # (tee, a test harness) from being held open by the daemon.
    (cd "$CL_RUN" && exec setsid setpriv --reuid=munge --regid=munge --init-groups \
        munged -F </dev/null >>"$CL_LOG/munged.out" 2>&1) &
    pid=$!
    echo "$pid" >"$CL_PIDS/munged.pid"
    for ((i = 0; i < 100; i++)); do
        munge_works && { log "munged started (pid $pid)"; return 0; }
        # kill -0, not pid_is: comm is setsid/setpriv until the exec
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$CL_LOG/munged.out" /var/log/munge/munged.log 2>/dev/null || true
    die "munged did not come up"
}

ensure_user() {
    id -u "$1" >/dev/null 2>&1 && return 0
    log "creating user $1"
    useradd -m -s /bin/bash "$1"
}

# FUSE as the test user: /dev/fuse is 0600 on some machines, and a mount
# that root (dockerd) must see needs allow_other.
ensure_fuse() {
    if [ -c /dev/fuse ]; then
        chmod 0666 /dev/fuse
    else
        log "warning: no /dev/fuse: FUSE tests will fail"
    fi
    if [ ! -f /etc/fuse.conf ] || ! grep -qx 'user_allow_other' /etc/fuse.conf; then
        echo user_allow_other >>/etc/fuse.conf
    fi
}
