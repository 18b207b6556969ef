#!/usr/bin/env bash
# make bench: every benchmark in bench/, each printing its figures side by
# side, then one table of the ratios.  Timings are measured, never
# asserted.  Needs the test cluster and dockerd (started here when missing,
# stopped again afterwards).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
started=""
if [ ! -r "${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}/env" ] ||
	! SLURM_CONF=${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}/etc/slurm.conf sinfo -h >/dev/null 2>&1; then
	bash "$here/../tests/harness/cluster/start.sh" >/dev/null
	started=1
fi
bash "$here/../tests/harness/cluster/dockerd.sh" start >/dev/null || true
out=$(mktemp)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "N=${BENCH_N:-11} runs per figure, medians"
for b in "$here"/start.sh "$here"/flatten.sh "$here"/sif.sh "$here"/registry.sh "$here"/squash.sh "$here"/srun.sh; do
	echo "== $(basename "$b" .sh)"
	bash "$b" 2>&1 | grep -v '^INFO:' | tee -a "$out"
done
echo "== summary"
grep -E ' x |adds' "$out" || true
rm -f "$out"
[ -z "$started" ] || bash "$here/../tests/harness/cluster/stop.sh" >/dev/null
bash "$here/../tests/harness/cluster/dockerd.sh" stop >/dev/null || true
