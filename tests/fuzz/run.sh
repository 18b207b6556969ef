#!/usr/bin/env bash
# The libFuzzer targets of tests/fuzz/ (clang, ASan + UBSan), as TAP.
#
#   run.sh            build, replay, then fuzz every target for FUZZ_SECONDS
#                     (default 80) each, FUZZ_JOBS (default 2) at a time;
#                     prints per target executions and exec/s and the total
#   run.sh replay     build and run every committed regression input
#                     (tests/fuzz/regress/TARGET/) and every seed once, no
#                     fuzzing: the unit group runs this
#   FUZZ_TARGETS="fuzz_conf fuzz_sif" limits the targets.
#
# A crash, leak, sanitizer report or failed property aborts the target:
# its "not ok" line names the input, kept under $BUILD/fuzz/findings/TARGET/.
# Fix the bug, then commit the input as tests/fuzz/regress/TARGET/NAME so
# the replay keeps checking it.  The corpus grown by earlier runs is kept in
# $BUILD/fuzz/corpus/TARGET (seeded by seeds.py).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(mkdir -p "${BUILD:-$repo/build}" && cd "${BUILD:-$repo/build}" && pwd)
out=$build/fuzz
mode=${1:-fuzz}
seconds=${FUZZ_SECONDS:-80}
jobs=${FUZZ_JOBS:-2}
targets=${FUZZ_TARGETS:-$(cd "$here" && ls fuzz_*.c | sed 's/\.c$//' | tr '\n' ' ')}
# Largest input per target: archives and layers are kB-sized seeds; text
# parsers get what users or daemons plausibly send.
declare -A max_len=([fuzz_image]=262144 [fuzz_flatten]=131072 [fuzz_registry]=65536
	[fuzz_docker_api]=65536 [fuzz_sif]=16384 [fuzz_conf]=8192 [fuzz_imageref]=1100)

scratch=$(mktemp -d /dev/shm/berth-fuzz-run.XXXXXX) || exit 1
trap 'rm -rf "$scratch"' EXIT
export BERTH_FUZZ_SCRATCH=$scratch
# Leaks are findings too; a slow input (> 10 s) is one as well.  The image
# targets cap file sizes (RLIMIT_FSIZE, a gzip bomb then fails with EFBIG):
# -handle_xfsz=0 leaves SIGXFSZ ignored instead of calling it a crash.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if ! (cd "$repo" && make -s -f tests/fuzz/fuzz.mk OUT="$out" -j"$jobs" \
	$(for t in $targets; do echo "$out/$t"; done)); then
	echo "not ok - fuzz: build of the fuzz targets failed"
	exit 1
fi
python3 "$here/seeds.py" "$out/seeds" || { echo "not ok - fuzz: seeds.py failed"; exit 1; }

# replay TARGET: every regression input and seed, once each.
replay() {
	local t=$1 log=$scratch/$1.replay f inputs=()
	for f in "$out/seeds/$t"/* "$here/regress/$t"/*; do
		[ -f "$f" ] && inputs+=("$f")
	done
	if "$out/$t" -runs=1 -handle_xfsz=0 "${inputs[@]}" >"$log" 2>&1; then
		echo "ok - replay $t: ${#inputs[@]} inputs (seeds and tests/fuzz/regress/$t)"
	else
		echo "not ok - replay $t: an input fails"
		grep -E 'Running:|ERROR|SUMMARY|runtime error' "$log" | tail -5 | sed 's/^/#   /'
		return 1
	fi
}

# fuzz TARGET: FUZZ_SECONDS of fuzzing; one TAP line with the figures.
fuzz() {
	local t=$1 log=$scratch/$1.log rc units rate cpu TIMEFORMAT='%U %S'
	mkdir -p "$out/corpus/$t" "$out/findings/$t"
	cp -n "$out/seeds/$t"/* "$out/corpus/$t/" 2>/dev/null
	# CPU seconds as well as wall seconds: on a shared machine exec/s
	# falls with the load, executions per CPU second do not.
	{ time "$out/$t" -max_total_time="$seconds" -max_len="${max_len[$t]:-65536}" -timeout=10 \
		-rss_limit_mb=1536 -handle_xfsz=0 -artifact_prefix="$out/findings/$t/" \
		-print_final_stats=1 "$out/corpus/$t" >"$log" 2>&1; } 2>"$scratch/$t.cpu"
	rc=$?
	units=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cpu=$(awk -v u="${units:-0}" '{ c = $1 + $2; printf "%.0f", (c > 0 ? u / c : 0) }' "$scratch/$t.cpu")
	if [ "$rc" -eq 0 ] && [ -n "$units" ]; then
		echo "ok - fuzz $t: ${units} executions in ${seconds} s, ${rate}/s" \
			"(${cpu} per CPU second)"
	else
		echo "not ok - fuzz $t: finding after ${units:-?} executions (exit $rc)"
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -6 | sed 's/^/#   /'
		echo "#   reproduce: $out/$t FILE; keep it as tests/fuzz/regress/$t/NAME once fixed"
	fi
	echo "$t ${units:-0}" >>"$scratch/units"
	return "$rc"
}

failed=0
for t in $targets; do replay "$t" || failed=1; done
[ "$mode" = replay ] && exit "$failed"

export -f fuzz
export out seconds scratch
export max_len_decl
max_len_decl=$(declare -p max_len)
start=$(date +%s)
load=$(cut -d' ' -f1 /proc/loadavg)
# FUZZ_JOBS targets at a time; each lane takes the next when one ends.
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'eval "$max_len_decl"; fuzz {}' || failed=1
total=$(awk '{ s += $2 } END { print s + 0 }' "$scratch/units" 2>/dev/null)
echo "# fuzz: $total executions in total, $(($(date +%s) - start)) s of wall time ($jobs at a time," \
	"load average before: $load)"
exit "$failed"
