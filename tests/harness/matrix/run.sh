#!/bin/bash
# The version matrix: the unit, conformance and end-to-end suites for every
# runtime, once per Slurm release, each with berth built against that
# release's own Slurm.
#
#   tests/harness/matrix/run.sh [SUITE...]      default: bookworm trixie sid
#
#   bookworm  this machine (Debian 12, Slurm 22.05), with its cluster
#   trixie    a debootstrap chroot (Slurm 24.11; Apptainer from sid's .deb)
#   sid       a debootstrap chroot (Slurm 26.05, Apptainer)
#
# Chroots come from tests/harness/matrix/chroot.sh (cached; built when missing).
# Each row writes BERTH_MATRIX_OUT/SUITE.results and .versions and its log;
# at the end tests/harness/matrix/table.sh prints the Slurm release x runtime table
# and, last, "N passed, N failed" over all the rows.  Run as root.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${BERTH_MATRIX_OUT:-/var/tmp/berth-matrix-results}
suites=${*:-bookworm trixie sid}
[ "$(id -u)" -eq 0 ] || { echo "run.sh: run as root" >&2; exit 1; }
mkdir -p "$out"
rc=0

# The test users, on the host first: their uids are given to the chroots.
users=()
for name in "${BERTH_TEST_USER:-berthtest}" "${BERTH_OTHER_USER:-berthother}"; do
	id -u "$name" >/dev/null 2>&1 || useradd -m -s /bin/bash "$name"
	users+=("$name:$(id -u "$name"):$(id -g "$name")")
done

for suite in $suites; do
	results=$out/$suite.results
	rm -f "$results" "$out/$suite.versions"
	t0=$SECONDS
	echo "=== matrix: $suite"
	case $suite in
	bookworm)
		bash "$here/versions.sh" >"$out/$suite.versions"
		unit=$(cd "$repo/tests/unit" && ls test_*.c | sed 's/\.c$//')
		# shellcheck disable=SC2046 # one target per word
		if make -C "$repo" -s -j"$(nproc)" unit-build; then
			echo "common ok" >>"$results"
			BERTH_RESULTS=$results BERTH_TESTS="unit conformance e2e" \
				bash "$repo/tests/run-all.sh" 2>&1 | tee "$out/$suite.log" || rc=1
		else
			echo "common fail" >>"$results"
			rc=1
		fi
		;;
	*)
		if ! root=$(bash "$here/chroot.sh" "$suite"); then
			echo "common fail" >>"$results"
			rc=1
			continue
		fi
		bash "$here/enter.sh" "$root" /usr/bin/env BERTH_E2E_ONLY="${BERTH_E2E_ONLY:-}" \
			/bin/bash "$here/inside.sh" "$suite" "$results" "${users[@]}" \
			2>&1 | tee "$out/$suite.log" || rc=1
		;;
	esac
	echo "=== matrix: $suite done in $((SECONDS - t0)) s"
done
# BERTH_MATRIX_TABLE=0: the caller prints the table (.ci/run, over its rows).
if [ "${BERTH_MATRIX_TABLE:-1}" != 0 ]; then
	bash "$here/table.sh" "$out" $suites || rc=1
fi
exit $rc
