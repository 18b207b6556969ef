#!/bin/bash
# The version matrix's SingularityCE row: the real, setuid SingularityCE
# 3.4.2 (built or reused by tests/harness/cluster/singularity-ce.sh) driven
# by berth on this machine's Slurm (Debian 12: 22.05), through a one-node
# cluster of its own beside the main one (BERTH_CLUSTER_DIR
# /var/tmp/berth-sce, node berth-sce, ports 7617/7618).  The singularity
# suites run twice: with the site's SingularityImageFormat=auto (which
# picks sif for a setuid installation: lz4 SquashFS inside) and with
# sandbox:
#   auto     conformance (singularity, both formats), the SIF checks
#            (tests/pipeline/singularity.bats with the real binary), e2e
#            singularity.bats, runtime.bats and pyxis.bats [singularity],
#            registry.bats, concurrency.bats
#   sandbox  e2e singularity.bats, runtime.bats and pyxis.bats [singularity],
#            registry.bats
# Results: OUTDIR/bookworm-sce.results and .versions, for table.sh.
#   tests/harness/matrix/singularity-ce.sh OUTDIR
# As root; needs the build (make) and the packages (packages.sh).
set -uo pipefail
out=${1:?usage: singularity-ce.sh OUTDIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo" || exit 1
log() { echo "=== matrix[bookworm-sce]: $*"; }
mkdir -p "$out"
results=$out/bookworm-sce.results
: >"$results"
t0=$SECONDS

sing=$(bash tests/harness/cluster/singularity-ce.sh | tail -n1)
if [ ! -x "$sing" ]; then
	echo "common fail" >>"$results"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "common ok" >>"$results"

export BERTH_CLUSTER_DIR=${BERTH_SCE_CLUSTER_DIR:-/var/tmp/berth-sce}
export BERTH_NODE_NAME=berth-sce BERTH_SLURMCTLD_PORT=7617 BERTH_SLURMD_PORT=7618
export SLURM_CONF=$BERTH_CLUSTER_DIR/etc/slurm.conf
export BERTH_TEST_SINGULARITY=$sing BERTH_RESULTS=$results BUILD=${BUILD:-$repo/build}
export BERTH_E2E_RUNTIMES=singularity BERTH_RUNTIMES=singularity
{
	echo "label=SingularityCE 3.4.2 setuid (singularity suites only)"
	bash tests/harness/matrix/versions.sh |
		sed "s|^singularity=.*|singularity=SingularityCE 3.4.2, setuid ($("$sing" --version))|"
} >"$out/bookworm-sce.versions"

start() { # FORMAT: the cluster's berth.conf gets SingularityImageFormat=FORMAT
	mkdir -p "$BERTH_CLUSTER_DIR/etc"
	echo "SingularityImageFormat=$1" >"$BERTH_CLUSTER_DIR/etc/berth.conf.extra"
	BERTH_BUILD=$BUILD bash tests/harness/cluster/start.sh >"$out/bookworm-sce.start.log" 2>&1 ||
		{ tail -n 20 "$out/bookworm-sce.start.log"; return 1; }
}
rc=0
if start auto; then
	log "$("$sing" --version), SingularityImageFormat=auto ($(BERTH_CONFIG=$BERTH_CLUSTER_DIR/etc/berth.conf \
		"$BUILD/berth" config 2>/dev/null | sed -n 's/^# singularity images here: \([a-z]*\).*/\1/p'))"
	BERTH_TESTS="conformance pipeline-singularity e2e" \
		BERTH_E2E_ONLY="singularity.bats runtime.bats pyxis.bats registry.bats concurrency.bats" \
		bash tests/run-all.sh || rc=1
else
	echo "singularity fail" >>"$results"
	rc=1
fi
log "SingularityImageFormat=sandbox"
if start sandbox; then
	BERTH_TESTS=e2e BERTH_E2E_ONLY="singularity.bats runtime.bats pyxis.bats registry.bats" \
		bash tests/run-all.sh || rc=1
else
	echo "singularity fail" >>"$results"
	rc=1
fi
bash tests/harness/cluster/stop.sh >/dev/null 2>&1
log "done in $((SECONDS - t0)) s"
exit "$rc"
