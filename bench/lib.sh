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

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
