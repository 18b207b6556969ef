#!/bin/bash
# Run CMD... as the test user against the test cluster, passing its exit
# status (and stdin/stdout/stderr) through:
#     tests/harness/cluster/submit.sh srun --container-image=/path/img.tar cat /etc/os-release
# Runs in BERTH_SUBMIT_CWD (the user must be able to enter it) or the user's
# home. The environment is a clean login-like one plus SLURM_CONF, plus the
# caller's BERTH_*, SLURM_*, SRUN_*, SBATCH_*, SALLOC_* variables and any
# names listed in BERTH_SUBMIT_ENV (space-separated).
set -euo pipefail
# shellcheck source=tests/harness/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -gt 0 ] || { echo "usage: $0 CMD [ARG...]" >&2; exit 2; }

user=$BERTH_TEST_USER
home=$(getent passwd "$user" | cut -d: -f6) || {
    echo "submit.sh: no user $user (run tests/harness/cluster/start.sh)" >&2
    exit 2
}
cd "${BERTH_SUBMIT_CWD:-$home}"

vars=(
    "PATH=/usr/local/bin:/usr/bin:/bin"
    "HOME=$home" "USER=$user" "LOGNAME=$user" "SHELL=/bin/bash"
    "LANG=${LANG:-C.UTF-8}"
)
if [ -n "${TERM:-}" ]; then vars+=("TERM=$TERM"); fi
for name in $(compgen -e); do
    case "$name" in
        BERTH_* | SLURM_* | SRUN_* | SBATCH_* | SALLOC_*) vars+=("$name=${!name}") ;;
    esac
done
for name in ${BERTH_SUBMIT_ENV:-}; do
    if [ -n "${!name+x}" ]; then vars+=("$name=${!name}"); fi
done
# Last, so it wins over an inherited value.
vars+=("SLURM_CONF=$CL_CONF" "BERTH_CLUSTER_DIR=$BERTH_CLUSTER_DIR")

if [ "$(id -u)" -eq 0 ]; then
    # setpriv execs without forking: the exit status, signals and stdio are
    # CMD's own.
    exec setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups \
        env -i "${vars[@]}" "$@"
elif [ "$(id -un)" = "$user" ]; then
    exec env -i "${vars[@]}" "$@"
else
    echo "submit.sh: run as root or as $user" >&2
    exit 2
fi
