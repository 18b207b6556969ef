#!/usr/bin/env bash
# Cold conversion of a big image for the singularity runtime, side by side,
# as alternating rounds (one of each per round): berth's own SIF (flatten +
# /.singularity.d + SquashFS zstd-3 in a SIF) and sandbox (flatten +
# metadata), against what `apptainer build` does with the same layers
# (`tar -x` of them, then `mksquashfs -comp gzip -all-root`, its defaults)
# and the same with zstd-3.  Medians, spread (min-max), peak RSS.  Timings
# are measured, never asserted.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${BENCH_N_SIF:-3}
BERTH=${BERTH_BUILD:-$REPO/build}/berth
out=$REPO/bench/out
mkdir -p "$out"
img=$out/big.tar
[ -e "$img" ] || python3 "$REPO/tests/fixtures/mkimage.py" legacy "$img" --big-mb 220 --tag berth/big:1 >/dev/null
work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/layers"
tar -xf "$img" -C "$work/layers"
mapfile -t layers < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[0]["Layers"]))' "$work/layers/manifest.json")
sing=${BERTH_TEST_SINGULARITY:-$REPO/tests/fakes/singularity}

berth_pull() { # format
	rm -rf "$work/cache" && mkdir "$work/cache"
	printf 'SingularityPath=%s\nSingularityImageFormat=%s\n' "$sing" "$1" >"$work/berth.conf"
	BERTH_CONFIG=$work/berth.conf /usr/bin/time -f '%M' -o "$work/rss.$1" \
		"$BERTH" pull --runtime singularity --cache-dir "$work/cache" "$img" >/dev/null
}
tar_mksquashfs() { # compressor args...
	rm -rf "$work/rootfs" "$work/out.sqfs" && mkdir "$work/rootfs"
	for l in "${layers[@]}"; do tar -xf "$work/layers/$l" -C "$work/rootfs"; done
	/usr/bin/time -f '%M' -o "$work/rss.mksq.$1" \
		mksquashfs "$work/rootfs" "$work/out.sqfs" -noappend -quiet -all-root -comp "$@" >/dev/null
}

names=("berth SIF (zstd-3)" "berth sandbox" "tar -x + mksquashfs gzip (apptainer build's)" "tar -x + mksquashfs zstd-3")
runs=("berth_pull sif" "berth_pull sandbox" "tar_mksquashfs gzip" "tar_mksquashfs zstd -Xcompression-level 3")
declare -A times
for ((r = 0; r < N; r++)); do
	for i in "${!runs[@]}"; do
		t0=$(now_ms)
		${runs[$i]}
		times[$i]+="$(($(now_ms) - t0)) "
	done
done
stat() { # "t1 t2 ..." -> "median min max"
	tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)], v[1], v[NR]}'
}
echo "image: $(du -m "$img" | cut -f1) MB, ${#layers[@]} layers; $N alternating rounds"
for i in "${!runs[@]}"; do
	read -r med lo hi <<<"$(stat "${times[$i]}")"
	printf '%-46s %7s ms  (spread %s-%s)\n' "${names[$i]}" "$med" "$lo" "$hi"
	eval "m$i=$med"
done
printf '%-46s %7s MB / %s MB\n' "peak RSS: berth SIF / mksquashfs zstd-3" \
	"$(($(cat "$work/rss.sif") / 1024))" "$(($(cat "$work/rss.mksq.zstd") / 1024))"
printf '%-46s %7s x\n' "ratio berth SIF / (tar -x + mksquashfs gzip)" "$(ratio "$m0" "$m2")"
printf '%-46s %7s x\n' "ratio berth SIF / (tar -x + mksquashfs zstd-3)" "$(ratio "$m0" "$m3")"
printf '%-46s %7s x\n' "ratio berth sandbox / (tar -x + mksquashfs zstd-3)" "$(ratio "$m1" "$m3")"
