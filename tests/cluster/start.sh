#!/bin/bash
# Start a one-node Slurm cluster (munged, slurmctld, slurmd) with the berth
# SPANK plugin, for the end-to-end tests. Run as root. Idempotent: when the
# cluster of this BERTH_CLUSTER_DIR is already up and healthy, it refreshes
# binaries/configs and exits 0 (restarting the Slurm daemons only when the
# plugin or a config file changed).
#
# Variables (defaults):
#   BERTH_BUILD        <repo>/build       spank_berth.so and berth come from here
#   BERTH_CLUSTER_DIR  /var/tmp/berth-cluster
#   BERTH_TEST_USER    berthtest          unprivileged job user
#   BERTH_OTHER_USER   berthother         second user, for cross-user tests
#   BERTH_CLUSTER_PROCTRACK  auto | cgroup | linuxproc   (auto: cgroup, and
#                      linuxproc + task/none only when cgroup fails)
#   BERTH_SLURMCTLD_PORT 6817, BERTH_SLURMD_PORT 6818
#   BERTH_NODE_NAME    the short host name; another name lets a second
#                      cluster (tests/matrix/) run beside this one: Slurm
#                      names its cgroup v1 folders slurm_<node>
#
# Layout under BERTH_CLUSTER_DIR: bin/ etc/ cache/ pids/ (daemons started
# here) log/ run/ state/ spool/ and env (source it: SLURM_CONF=...).
set -euo pipefail
# shellcheck source=tests/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CTLD_PORT=${BERTH_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${BERTH_SLURMD_PORT:-6818}
PROCTRACK=${BERTH_CLUSTER_PROCTRACK:-auto}
HOST=$(hostname -s)
NODE=${BERTH_NODE_NAME:-$HOST}
SING_PATH=${BERTH_TEST_SINGULARITY:-$CL_BIN/singularity}
D=$BERTH_CLUSTER_DIR
export SLURM_CONF=$CL_CONF
T0=$SECONDS

log() { echo "start.sh: $*"; }
die() { echo "start.sh: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
for c in slurmctld slurmd sinfo srun munged munge unmunge setpriv; do
    command -v "$c" >/dev/null || die "$c not found (run tests/cluster/packages.sh)"
done

# ---------------------------------------------------------------- helpers

# write_file PATH MODE: stdin -> PATH, atomically (rename), only when the
# content differs. Sets CHANGED=1 when it wrote.
CHANGED=0
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
PLUGIN_CHANGED=0
install_bins() {
    local f
    mkdir -p "$CL_BIN"
    chmod 0755 "$CL_BIN"
    # Singularity: the strict stand-in (no package exists for Debian 12),
    # copied where the test user can read it.  A real binary named by
    # BERTH_TEST_SINGULARITY is used where it is installed (see SING_PATH):
    # Apptainer finds its starter and configuration from there.
    local sing=$REPO_ROOT/tests/fakes/singularity
    if ! cmp -s "$sing" "$CL_BIN/singularity"; then
        install -m 0755 "$sing" "$CL_BIN/.singularity.new"
        mv -f "$CL_BIN/.singularity.new" "$CL_BIN/singularity"
    fi
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

# slurmctld starts with -c (no jobs or node states from an earlier run can
# linger: a stale job keeps the node busy), so job ids would restart at 1;
# FirstJobId continues after the highest id in the log instead, so ids never
# repeat within one BERTH_CLUSTER_DIR (output files, labels, staging dirs).
next_job_id() {
    local max
    max=$(grep -ho 'JobId=[0-9]*' "$CL_LOG/slurmctld.log" 2>/dev/null |
        cut -d= -f2 | sort -n | tail -n1)
    echo $((${max:-0} + 1))
}

# The FirstJobId of the running cluster: regenerating slurm.conf while it
# runs must not change it (that would look like a config change).
current_first_job_id() {
    sed -n 's/^FirstJobId=\([0-9][0-9]*\)$/\1/p' "$CL_CONF" 2>/dev/null | head -n1
}

# gen_configs VARIANT (cgroup | linuxproc) FIRST_JOB_ID: write etc/*. Sets
# CHANGED=1 when a file the running daemons read changed.
gen_configs() {
    local variant=$1 first_job_id=$2 node mem cpus defmem proctrack task plug
    node=$(node_line)
    [ -n "$node" ] || die "slurmd -C printed no NodeName line"
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    # Without a default, CR_Core_Memory gives a job all the node's memory
    # and jobs would run one at a time.
    defmem=$((mem / cpus))
    [ "$defmem" -gt 2048 ] && defmem=2048
    if [ "$variant" = cgroup ]; then
        proctrack=proctrack/cgroup
        task=task/cgroup,task/affinity
    else
        proctrack=proctrack/linuxproc
        task=task/none
    fi

    mkdir -p "$CL_ETC"
    chmod 0755 "$CL_ETC"
    write_file "$CL_CONF" 0644 <<CONF
# Generated by tests/cluster/start.sh; edits are overwritten.
ClusterName=berth
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state/slurmctld
SlurmdSpoolDir=$D/spool/slurmd
SlurmctldPidFile=$CL_RUN/slurmctld.pid
SlurmdPidFile=$CL_RUN/slurmd.pid
SlurmctldLogFile=$CL_LOG/slurmctld.log
SlurmdLogFile=$CL_LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=debug
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
ProctrackType=$proctrack
TaskPlugin=$task
PlugStackConfig=$CL_ETC/plugstack.conf
TaskProlog=$CL_ETC/task_prolog
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
FirstJobId=$first_job_id
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
NodeName=$NODE NodeHostname=$(hostname) NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

    # Read by proctrack/cgroup and task/cgroup, from slurm.conf's folder.
    # slurmd 22.05 initialises its cgroup plugin even with linuxproc, so the
    # fallback lets Slurm pick one and constrains nothing.
    if [ "$variant" = cgroup ]; then
        write_file "$CL_ETC/cgroup.conf" 0644 <<CONF
# Generated by tests/cluster/start.sh.
CgroupPlugin=cgroup/v1
CgroupAutomount=yes
ConstrainRAMSpace=yes
ConstrainCores=yes
CONF
    else
        write_file "$CL_ETC/cgroup.conf" 0644 <<CONF
# Generated by tests/cluster/start.sh (fallback: no cgroup confinement).
CgroupPlugin=autodetect
CgroupAutomount=yes
CONF
    fi

    # Its exports must reach containerised tasks too (tests/e2e).
    write_file "$CL_ETC/task_prolog" 0755 <<'PROLOG'
#!/bin/sh
# Generated by tests/cluster/start.sh: Slurm runs it before every task.
echo "export BERTH_TASK_PROLOG=ran-for-task-$SLURM_PROCID"
PROLOG

    if [ -f "$CL_BIN/spank_berth.so" ]; then
        plug="required $CL_BIN/spank_berth.so Config=$CL_ETC/berth.conf"
    else
        log "warning: no plugin: empty plugstack.conf, plain Slurm only"
        plug=""
    fi
    write_file "$CL_ETC/plugstack.conf" 0644 <<<"$plug"

    {
        echo "# Generated by tests/cluster/start.sh (+ berth.conf.extra)."
        echo "CacheDir=$D/cache"
        echo "LauncherPath=$CL_BIN/berth"
        echo "ChRunPath=/usr/bin/ch-run"
        echo "DefaultRuntime=charliecloud"
        echo "AllowedRuntimes=charliecloud,singularity,docker"
        echo "DockerAllowedMounts=$D/e2e,/tmp"
        echo "SingularityPath=$SING_PATH"
        if [ -f "$CL_ETC/berth.conf.extra" ]; then
            # sed adds a final newline only where it is missing
            # shellcheck disable=SC1003 # "$a\" is sed, not a quote escape
            sed -e '$a\' "$CL_ETC/berth.conf.extra"
        fi
    } | write_file "$CL_ETC/berth.conf" 0644

    echo "$variant" >"$CL_ETC/variant"
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

port_free() {
    [ -z "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]
}

# Start slurmctld then slurmd in the foreground (-D) under setsid, so $! is
# the daemon's pid, and record it. They run in run/, so a core dump lands
# there and not in the caller's folder (the repo).
start_slurm() {
    local name pid
    for name in slurmctld slurmd; do
        if [ "$name" = slurmctld ]; then
            (cd "$CL_RUN" && exec setsid slurmctld -D -c -f "$CL_CONF" </dev/null >>"$CL_LOG/slurmctld.out" 2>&1) &
        else
            (cd "$CL_RUN" && exec setsid slurmd -D -N "$NODE" -f "$CL_CONF" </dev/null >>"$CL_LOG/slurmd.out" 2>&1) &
        fi
        pid=$!
        echo "$pid" >"$CL_PIDS/$name.pid"
        log "$name started (pid $pid)"
        sleep 0.5
        kill -0 "$pid" 2>/dev/null || { log "$name exited at once"; return 1; }
    done
}

node_state() {
    sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1
}

# Wait up to 60 s for the node to be idle; give up early if a daemon died.
wait_idle() {
    local i st=""
    for ((i = 0; i < 120; i++)); do
        st=$(node_state)
        [ "$st" = idle ] && { log "node $NODE idle after $((SECONDS - T0))s"; return 0; }
        daemon_alive slurmctld || { log "slurmctld died"; return 1; }
        daemon_alive slurmd || { log "slurmd died"; return 1; }
        sleep 0.5
    done
    log "node $NODE still '${st:-unknown}' after 60s"
    return 1
}

# A plain job (no container options) as the test user: the plugin must let
# it through.
smoke() {
    local out rc=0
    out=$(timeout 60 "$CLUSTER_HERE/submit.sh" srun -N1 true 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        log "smoke test 'srun -N1 true' as $BERTH_TEST_USER failed (rc $rc):"
        printf '%s\n' "$out" | sed 's/^/    /'
        return 1
    fi
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
    log "smoke test 'srun -N1 true' as $BERTH_TEST_USER passed"
}

# Remember where the logs end, so a failure shows only this start's lines.
declare -A LOG_MARK=()
mark_logs() {
    local f
    for f in slurmctld.log slurmd.log; do
        LOG_MARK[$f]=$(wc -l 2>/dev/null <"$CL_LOG/$f" || echo 0)
    done
}

show_logs() {
    local f new
    for f in slurmctld.log slurmd.log; do
        new=$(tail -n +"$((${LOG_MARK[$f]:-0} + 1))" "$CL_LOG/$f" 2>/dev/null | tail -n 40)
        [ -n "$new" ] || continue
        echo "----- $CL_LOG/$f (this start, last 40 lines)"
        printf '%s\n' "$new"
    done
    echo "-----"
}

# Cancel the jobs, then stop slurmd and slurmctld by recorded pid (the next
# slurmctld starts with -c: nothing carries over).
stop_slurm() {
    cancel_jobs
    KILL_WAIT=10 stop_daemon slurmd
    KILL_WAIT=10 stop_daemon slurmctld
}

healthy() {
    daemon_alive slurmctld && daemon_alive slurmd && munge_works || return 1
    scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
    case "$(node_state)" in
        idle | mix | alloc | comp) return 0 ;;
        *) return 1 ;;
    esac
}

write_env() {
    write_file "$D/env" 0644 <<ENV
# Generated by tests/cluster/start.sh: source it to use the test cluster.
export SLURM_CONF=$CL_CONF
export BERTH_CLUSTER_DIR=$D
export BERTH_CLUSTER_BIN=$CL_BIN
export BERTH_TEST_USER=$BERTH_TEST_USER
export BERTH_OTHER_USER=$BERTH_OTHER_USER
ENV
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

# ------------------------------------------------------------------ main

mkdir -p "$D" "$CL_PIDS" "$CL_LOG" "$CL_RUN" "$D/state/slurmctld" "$D/spool/slurmd"
# Jobs (as the test user) traverse into bin/ and etc/ and read logs.
chmod 0755 "$D" "$CL_LOG" "$D/spool" "$D/spool/slurmd"
chmod 0700 "$CL_PIDS" "$D/state"
install -d -o root -g root -m 0755 "$D/cache"

ensure_user "$BERTH_TEST_USER"
ensure_user "$BERTH_OTHER_USER"
ensure_fuse

if healthy; then
    install_bins
    CHANGED=0
    first=$(current_first_job_id)
    gen_configs "$(cat "$CL_ETC/variant" 2>/dev/null || echo cgroup)" "${first:-$(next_job_id)}"
    write_env
    if [ "$CHANGED" = 0 ] && [ "$PLUGIN_CHANGED" = 0 ]; then
        log "cluster in $D already up and healthy (node $NODE: $(node_state))"
        exit 0
    fi
    log "plugin or configuration changed: restarting slurmd and slurmctld"
    stop_slurm
else
    # Whatever is left of an earlier start (one daemon died, ...) goes first.
    if daemon_alive slurmctld || daemon_alive slurmd; then
        log "cluster in $D is not healthy: restarting it"
    fi
    stop_slurm
fi

install_bins
start_munge
write_env

case "$PROCTRACK" in
    auto) variants="cgroup linuxproc" ;;
    cgroup | linuxproc) variants=$PROCTRACK ;;
    *) die "BERTH_CLUSTER_PROCTRACK must be auto, cgroup or linuxproc" ;;
esac

# Another Slurm (a system one, another cluster dir) on our ports is not
# something the fallback can fix.
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    if ! port_free "$port"; then
        ss -Hltnp "( sport = :$port )"
        die "port $port is taken (BERTH_SLURMCTLD_PORT / BERTH_SLURMD_PORT choose others)"
    fi
done

ok=0
for v in $variants; do
    gen_configs "$v" "$(next_job_id)"
    if [ "$v" = cgroup ]; then
        log "trying proctrack/cgroup + task/cgroup,task/affinity (cgroup/v1)"
    else
        log "using proctrack/linuxproc + task/none"
    fi
    mark_logs
    if start_slurm && wait_idle && smoke; then
        ok=1
        break
    fi
    show_logs
    stop_slurm
    if [ "$v" = cgroup ] && [ "$PROCTRACK" = auto ]; then
        log "cgroup variant failed: falling back to proctrack/linuxproc + task/none"
    fi
done
[ "$ok" = 1 ] || die "cluster did not come up (logs in $CL_LOG)"

log "cluster up in $((SECONDS - T0))s, $(grep -E '^(ProctrackType|TaskPlugin)=' "$CL_CONF" | tr '\n' ' ')"
sinfo -N -l
echo "start.sh: source $D/env to use it; tests/cluster/submit.sh CMD runs CMD as $BERTH_TEST_USER"
