# Shared by the benchmarks: timing helpers.  Sourced.
BENCH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_HERE/.." && pwd)
BERTH_CLUSTER_DIR=${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}
N=${BENCH_N:-11}

# now_ms: wall clock in milliseconds.
now_ms() { date +%s%3N; }

# median_ms CMD...: run CMD N times, print the median wall time in ms.
median_ms() {
	local i t0 times=()
	for ((i = 0; i < N; i++)); do
		t0=$(now_ms)
		"$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; return 1; }
		times+=($(($(now_ms) - t0)))
	done
	printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((N + 1) / 2))p"
}

# spread TIMES...: "median min max" of the numbers given.
spread() {
	printf '%s\n' "$@" | sort -n |
		awk '{ v[NR] = $1 } END { printf "%d %d %d", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

# pair_ms A B: the commands in the arrays named A and B, one untimed run
# each, then N rounds of both, alternating which goes first (A B, B A, ...)
# so that a machine getting busier or quieter weighs on both alike.  Sets
# PAIR_A and PAIR_B to "median min max" in ms, PAIR_D to that of A - B.
pair_ms() {
	local -n _pa=$1 _pb=$2
	local i t0 w ta=() tb=()
	"${_pa[@]}" >/dev/null 2>&1 && "${_pb[@]}" >/dev/null 2>&1 ||
		{ echo "bench: a command failed: ${_pa[*]} / ${_pb[*]}" >&2; return 1; }
	for ((i = 0; i < N; i++)); do
		for w in $( ((i % 2)) && echo "b a" || echo "a b"); do
			t0=$(now_ms)
			if [ "$w" = a ]; then
				"${_pa[@]}" >/dev/null 2>&1 || return 1
				ta+=($(($(now_ms) - t0)))
			else
				"${_pb[@]}" >/dev/null 2>&1 || return 1
				tb+=($(($(now_ms) - t0)))
			fi
		done
	done
	PAIR_A=$(spread "${ta[@]}")
	PAIR_B=$(spread "${tb[@]}")
	local td=()
	for ((i = 0; i < N; i++)); do td+=($((ta[i] - tb[i]))); done
	PAIR_D=$(spread "${td[@]}") # A - B within each round: "median min max"
}

# show_pair LABEL_A LABEL_B: the two lines of a pair_ms, medians and spreads.
show_pair() {
	local a=($PAIR_A) b=($PAIR_B)
	printf '%-44s %6s ms  (%s-%s)\n' "$1" "${a[0]}" "${a[1]}" "${a[2]}"
	printf '%-44s %6s ms  (%s-%s)\n' "$2" "${b[0]}" "${b[1]}" "${b[2]}"
}

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

die() { echo "bench: $*" >&2; exit 1; }

# clock LOG CMD...: run CMD (its output to LOG), print its wall time in ms;
# on failure, say so with the log's tail and return 1.
clock() {
	local log=$1 t0 t rc=0
	shift
	t0=$(now_ms)
	"$@" >"$log" 2>&1 || rc=$?
	t=$(($(now_ms) - t0))
	if [ $rc -ne 0 ]; then
		echo "bench: failed (exit $rc): $*" >&2
		tail -5 "$log" >&2
		return 1
	fi
	echo "$t"
}
row() { printf '%-52s %7s ms  (spread %s-%s)%s\n' "$1" "$2" "$3" "$4" "${5:+  $5}"; }
rline() { printf '%-52s %7s x%s\n' "$1" "$2" "${3:+   $3}"; }

# Contenders of one comparison: name, prep (not timed), run (timed), post
# (not timed, after the run).  rounds runs them N times each, rotating the
# order every round (A B C, B C A, C A B, ...) so that a machine getting
# busier or quieter weighs on all alike, and leaves "t1 t2 ..." in
# C_TIMES[i]; report prints a row per contender (median, spread) and sets
# med[i].  The run's output goes to $work/run.log.
C_NAME=() C_PREP=() C_RUN=() C_POST=()
declare -A C_TIMES
med=()
contender() { C_NAME+=("$1"); C_PREP+=("$2"); C_RUN+=("$3"); C_POST+=("${4:-:}"); }
reset_contenders() { C_NAME=() C_PREP=() C_RUN=() C_POST=(); C_TIMES=(); }
rounds() {
	local r j i k=${#C_RUN[@]} t
	for ((r = 0; r < N; r++)); do
		for ((j = 0; j < k; j++)); do
			i=$(((j + r) % k))
			${C_PREP[$i]}
			sync # the previous contender's writeback is not the next one's
			t=$(clock "$work/run.log" ${C_RUN[$i]}) || die "${C_NAME[$i]} failed"
			C_TIMES[$i]+="$t "
			${C_POST[$i]}
		done
	done
}
report() {
	local i lo hi m
	med=()
	for i in "${!C_RUN[@]}"; do
		# shellcheck disable=SC2086 # the times, one word each
		read -r m lo hi <<<"$(spread ${C_TIMES[$i]})"
		med[i]=$m
		row "${C_NAME[$i]}" "$m" "$lo" "$hi"
	done
}
