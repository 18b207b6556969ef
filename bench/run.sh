#!/usr/bin/env bash
# make bench: every benchmark, each printing its figures side by side.
# Timings are measured, never asserted.  Needs the test cluster (started
# here when it is not running).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
started=""
if [ ! -r "${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}/env" ] || ! sinfo -h >/dev/null 2>&1; then
	bash "$here/../tests/cluster/start.sh"
	started=1
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "N=${BENCH_N:-11} runs per figure, medians"
for b in "$here"/start.sh "$here"/flatten.sh "$here"/srun.sh; do
	echo "== $(basename "$b" .sh)"
	bash "$b"
done
[ -z "$started" ] || bash "$here/../tests/cluster/stop.sh"
