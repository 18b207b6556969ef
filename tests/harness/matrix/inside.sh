#!/bin/bash
# Inside a matrix chroot (tests/harness/matrix/enter.sh), as root: build berth
# against this release's Slurm, start a one-node cluster of it, run the
# unit, conformance and end-to-end suites for every runtime, build the
# Debian package, and stop the cluster.  Started by tests/harness/matrix/run.sh.
#
#   inside.sh SUITE RESULTS_FILE USER:UID:GID...
#
# The test users get the uids the host gave them: files the tests hand to
# the host's dockerd (bind mounts) must belong to the same user there.
# Ports and the node name are the suite's own, so this cluster runs beside
# the host's (Slurm names its cgroup v1 folders slurm_<node>).
set -uo pipefail
suite=${1:?usage: inside.sh SUITE RESULTS USER:UID:GID...}
results=${2:?}
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo" || exit 1
log() { echo "=== matrix[$suite]: $*"; }

for spec in "$@"; do
	IFS=: read -r name uid gid <<<"$spec"
	getent group "$name" >/dev/null || groupadd -g "$gid" "$name"
	id -u "$name" >/dev/null 2>&1 || useradd -m -s /bin/bash -u "$uid" -g "$gid" "$name"
done

case $suite in
trixie) port=7817 ;;
sid) port=7917 ;;
*) port=7717 ;;
esac
export BUILD=$repo/build/matrix-$suite
export BERTH_CLUSTER_DIR=/var/tmp/berth-matrix-$suite
export BERTH_NODE_NAME=berth-$suite
export BERTH_SLURMCTLD_PORT=$port BERTH_SLURMD_PORT=$((port + 1))
export BERTH_RESULTS=$results
if command -v apptainer >/dev/null; then
	export BERTH_TEST_SINGULARITY=$(command -v apptainer)
fi

bash "$here/versions.sh" >"${results%.results}.versions"

log "build against Slurm $(slurmd -V) with gcc $(gcc -dumpfullversion)"
unit=$(cd tests/unit && ls test_*.c | sed 's/\.c$//')
# shellcheck disable=SC2046,SC2086 # one target per word
if ! make -s -j"$(nproc)" BUILD="$BUILD" unit-build; then
	echo "common fail" >>"$results"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "common ok" >>"$results"

log "unit, conformance and end-to-end suites"
BERTH_TESTS="unit conformance e2e" bash tests/run-all.sh
rc=$?

# BERTH_E2E_ONLY (a developer's quick look at some e2e files): no more
if [ -n "${BERTH_E2E_ONLY:-}" ]; then
	exit "$rc"
fi

log "singularity images made by berth, run by this release's Apptainer"
BERTH_RESULTS=$results BERTH_TESTS=pipeline-singularity bash tests/run-all.sh || rc=1

log "Debian package built against this Slurm"
if bash tests/harness/matrix/deb-check.sh "$BUILD/deb"; then
	echo "common ok" >>"$results"
else
	echo "common fail" >>"$results"
	rc=1
fi
exit "$rc"
