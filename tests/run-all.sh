#!/usr/bin/env bash
# Run every test of berth and end with one line "N passed, N failed".
#   lint            cppcheck and clang-tidy over the C sources
#   unit            cmocka tests under ASan/UBSan, then again under valgrind;
#                   every fuzz target replays its seeds and its committed
#                   findings (tests/fuzz/regress/) once, without fuzzing
#   pipeline        image reader/flattener/cache against generated archives
#   fakes           the singularity stand-in's own self-test (it must keep
#                   behaving like the real Apptainer it was compared with)
#   conformance     one executor suite, run unchanged against every runtime
#   e2e             jobs through the real one-node Slurm (tests/harness/cluster/)
#   packaging       man pages (groff -ww), the RPM spec, the .deb built,
#                   installed and used for a job on the cluster
#   multinode       (only when named; .ci/run does) jobs across the 4 nodes
#                   of tests/harness/cluster/multinode.sh, once per runtime, and the
#                   cache shared by all nodes
#   soak            (only when named) 300 mixed jobs; the node's resources
#                   counted before and after must agree
#   fuzz            (only when named; .ci/run runs it after make test) every
#                   libFuzzer target for FUZZ_SECONDS (80) each, two at a
#                   time: executions and exec/s per target, a finding fails
# BERTH_TESTS="unit pipeline" limits the groups; BERTH_E2E_ONLY="pyxis.bats
# ..." limits the e2e files (a developer's quick look, also in the matrix).
# BERTH_RESULTS=FILE appends one line per check, "RUNTIME ok|fail", where
# RUNTIME is the runtime the check ran (charliecloud, singularity, docker)
# or "common" for checks of no one runtime: tests/harness/matrix/ adds them up into
# the Slurm release x runtime table.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export BUILD=${BUILD:-$here/../build}
BUILD=$(cd "$BUILD" && pwd)
groups=${BERTH_TESTS:-lint unit pipeline fakes conformance e2e packaging}
passed=0
failed=0
failures=()

# The cluster and dockerd: started here when a group needs them and they are
# not running (so `make test` alone works on a fresh machine), and stopped
# at the end only if started here.
started=()
cleanup() {
	for what in "${started[@]}"; do
		case $what in
		cluster) bash "$here/harness/cluster/stop.sh" >/dev/null ;;
		mcluster) BERTH_CLUSTER_DIR=${BERTH_MCLUSTER_DIR:-/var/tmp/berth-mcluster} \
			bash "$here/harness/cluster/multinode.sh" stop >/dev/null ;;
		dockerd) bash "$here/harness/cluster/dockerd.sh" stop >/dev/null ;;
		esac
	done
}
trap cleanup EXIT
case " $groups " in
*" e2e "* | *" conformance "* | *" packaging "* | *" soak "*)
	if [ "$(id -u)" -eq 0 ]; then
		if ! curl -sf --max-time 2 --unix-socket /var/run/docker.sock http://x/_ping >/dev/null 2>&1; then
			bash "$here/harness/cluster/dockerd.sh" start && started+=(dockerd)
		fi
		if ! { [ -r "${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}/env" ] &&
			SLURM_CONF=${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}/etc/slurm.conf sinfo -h >/dev/null 2>&1; }; then
			BERTH_BUILD=$BUILD bash "$here/harness/cluster/start.sh" && started+=(cluster)
		fi
	fi
	;;
esac

# The multi-node cluster (and dockerd) for the multinode group, likewise.
case " $groups " in
*" multinode "*)
	if [ "$(id -u)" -eq 0 ]; then
		if ! curl -sf --max-time 2 --unix-socket /var/run/docker.sock http://x/_ping >/dev/null 2>&1; then
			bash "$here/harness/cluster/dockerd.sh" start && started+=(dockerd)
		fi
		if ! SLURM_CONF=${BERTH_MCLUSTER_DIR:-/var/tmp/berth-mcluster}/etc/slurm.conf sinfo -h >/dev/null 2>&1; then
			BERTH_CLUSTER_DIR=${BERTH_MCLUSTER_DIR:-/var/tmp/berth-mcluster} BERTH_BUILD=$BUILD \
				bash "$here/harness/cluster/multinode.sh" start && started+=(mcluster)
		fi
	fi
	;;
esac

RUNTIMES="charliecloud singularity docker"

# record LABEL LINE ok|fail: one line in BERTH_RESULTS, under the runtime
# the label or the test's name names ("[docker]", "(singularity)"), else
# "common".
record() {
	[ -n "${BERTH_RESULTS:-}" ] || return 0
	local rt where="$1 $2"
	case $1 in
	docker.bats*) echo "docker $3" >>"$BERTH_RESULTS"; return 0 ;;
	singularity.bats*) echo "singularity $3" >>"$BERTH_RESULTS"; return 0 ;;
	esac
	for rt in $RUNTIMES; do
		case $where in *"[$rt]"* | *"($rt)"*) echo "$rt $3" >>"$BERTH_RESULTS"; return 0 ;; esac
	done
	echo "common $3" >>"$BERTH_RESULTS"
}

# record_n LABEL N ok|fail: N checks of no one runtime.
record_n() {
	local i
	for ((i = 0; i < $2; i++)); do record "$1" "" "$3"; done
}

tally() { # name rc
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
		record "$1" "" ok
	else
		failed=$((failed + 1))
		failures+=("$1")
		record "$1" "" fail
	fi
}

# run_tap LABEL CMD...: run a command that prints TAP, show its output, and
# count it: every "ok" passes, every "not ok" fails, and a command that
# fails without saying "not ok" is one failure more.
run_tap() {
	local label=$1 out rc ok nok line
	shift
	out=$(mktemp)
	"$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	ok=$(grep -c '^ok ' "$out")
	nok=$(grep -c '^not ok ' "$out")
	passed=$((passed + ok))
	failed=$((failed + nok))
	while read -r line; do
		echo "FAILED: $line"
		failures+=("$label: $line")
		record "$label" "$line" fail
	done < <(grep '^not ok ' "$out")
	while read -r line; do
		record "$label" "$line" ok
	done < <(grep '^ok ' "$out")
	if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
		tally "$label (exited $rc)" 1
	fi
	rm -f "$out"
}

for group in $groups; do
	echo "=== $group"
	case $group in
	lint)
		bash "$here/lint.sh" cppcheck; tally "lint: cppcheck" $?
		bash "$here/lint.sh" clang-tidy; tally "lint: clang-tidy" $?
		bash "$here/lint.sh" exports; tally "lint: plugin exports only slurm_spank_*" $?
		bash "$here/lint.sh" layers; tally "lint: includes point downward, no import circle" $?
		;;
	unit)
		for t in "$BUILD"/unit/test_*; do
			name=$(basename "$t")
			out=$(mktemp)
			"$t" 2>&1 | tee "$out"
			rc=${PIPESTATUS[0]}
			ok=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
			nok=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
			passed=$((passed + ${ok:-0}))
			failed=$((failed + ${nok:-0}))
			record_n "unit: $name" "${ok:-0}" ok
			record_n "unit: $name" "${nok:-0}" fail
			[ -n "$nok" ] && [ "$nok" -gt 0 ] && failures+=("unit: $name ($nok)")
			if [ "$rc" -ne 0 ] && [ -z "$nok" ]; then tally "unit: $name crashed (rc $rc)" 1; fi
			rm -f "$out"
			valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
				"$BUILD/unit-vg/$name" >/dev/null 2>"$BUILD/unit-vg/$name.log"
			rc=$?
			[ "$rc" -ne 0 ] && cat "$BUILD/unit-vg/$name.log"
			tally "valgrind: $name" "$rc"
		done
		# The version matrix's chroots have no clang: their unit group
		# is release-specific; the replay runs on the host's row.
		if command -v clang >/dev/null; then
			run_tap "fuzz replay" bash "$here/fuzz/run.sh" replay
		else
			echo "# fuzz replay not run: no clang here"
		fi
		;;
	fuzz) # not in the default groups: make fuzz, .ci/run
		run_tap fuzz bash "$here/fuzz/run.sh"
		;;
	packaging)
		for script in man.sh rpm.sh deb-install.sh; do
			run_tap "packaging/$script" bash "$here/packaging/$script"
		done
		;;
	conformance)
		run_tap conformance bash "$here/conformance/run.sh"
		;;
	multinode) # not in the default groups: .ci/run and make test-multinode
		for f in "$here"/multinode/*.bats; do
			case $f in
			*/multinode/multinode.bats)
				for rt in $RUNTIMES; do
					BERTH_RUNTIME=$rt run_tap "multinode/$(basename "$f") [$rt]" bats --tap "$f"
				done
				;;
			*) run_tap "multinode/$(basename "$f")" bats --tap "$f" ;;
			esac
		done
		;;
	soak) # not in the default groups: make soak
		run_tap soak bash "$here/soak/soak.sh"
		;;
	fakes)
		# PASS/FAIL lines, one per case, as TAP
		run_tap "harness/fakes/test_fake.sh [singularity]" bash -c \
			"bash '$here/harness/fakes/test_fake.sh' 2>&1 | sed -e 's/^PASS /ok - /' -e 's/^FAIL /not ok - /'; exit \${PIPESTATUS[0]}"
		;;
	pipeline-singularity) # the version matrix: berth's SIF/sandbox, the real Apptainer
		run_tap "singularity.bats [singularity]" bats --tap "$here/pipeline/singularity.bats"
		;;
	pipeline | e2e)
		for f in "$here/$group"/*.bats; do
			[ -e "$f" ] || continue
			if [ "$group" = e2e ] && [ -n "${BERTH_E2E_ONLY:-}" ] &&
				[[ " $BERTH_E2E_ONLY " != *" $(basename "$f") "* ]]; then
				continue
			fi
			case $f in
			*/e2e/runtime.bats | */e2e/pyxis*.bats) # once per runtime the cluster enables
				for rt in ${BERTH_E2E_RUNTIMES:-charliecloud singularity docker}; do
					BERTH_RUNTIME=$rt run_tap "$(basename "$f") [$rt]" bats --tap "$f"
				done
				;;
			*) run_tap "$(basename "$f")" bats --tap "$f" ;;
			esac
		done
		;;
	esac
done

if [ ${#failures[@]} -gt 0 ]; then
	echo "=== failures"
	printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
