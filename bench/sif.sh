#!/usr/bin/env bash
# Cold conversion of a big image for the singularity runtime, side by side,
# as alternating rounds (one of each per round, rotating): berth's own SIF
# (the layers merged into SquashFS zstd-3 as they stream, with
# /.singularity.d, in a SIF; no tree on disk), the same through the
# flattened tree first (BERTH_SIF_FROM_TREE=1, the way before) and sandbox
# (flatten + metadata), against what `apptainer build` does with the same layers
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
[ -e "$img" ] || python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$img" --big-mb 220 --tag berth/big:1 >/dev/null
work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/layers"
tar -xf "$img" -C "$work/layers"
mapfile -t layers < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[0]["Layers"]))' "$work/layers/manifest.json")
sing=${BERTH_TEST_SINGULARITY:-$REPO/tests/harness/fakes/singularity}

berth_pull() { # format [tree]
	rm -rf "$work/cache" && mkdir "$work/cache"
	printf 'SingularityPath=%s\nSingularityImageFormat=%s\n' "$sing" "$1" >"$work/berth.conf"
	BERTH_SIF_FROM_TREE=$([ "${2:-}" = tree ] && echo 1 || echo 0) \
		BERTH_CONFIG=$work/berth.conf /usr/bin/time -f '%M' -o "$work/rss.$1${2:-}" \
		"$BERTH" pull --runtime singularity --cache-dir "$work/cache" "$img"
}
tar_mksquashfs() { # compressor args...
	rm -rf "$work/rootfs" "$work/out.sqfs" && mkdir "$work/rootfs"
	for l in "${layers[@]}"; do tar -xf "$work/layers/$l" -C "$work/rootfs"; done
	/usr/bin/time -f '%M' -o "$work/rss.mksq.$1" \
		mksquashfs "$work/rootfs" "$work/out.sqfs" -noappend -quiet -all-root -comp "$@"
}

contender "berth SIF (zstd-3)" : "berth_pull sif"
contender "berth sandbox" : "berth_pull sandbox"
contender "tar -x + mksquashfs gzip (apptainer build's)" : "tar_mksquashfs gzip"
contender "tar -x + mksquashfs zstd-3" : "tar_mksquashfs zstd -Xcompression-level 3"
contender "berth SIF through the tree (before)" : "berth_pull sif tree"
echo "image: $(du -m "$img" | cut -f1) MB, ${#layers[@]} layers; $N alternating rounds"
rounds
report
m0=${med[0]} m1=${med[1]} m2=${med[2]} m3=${med[3]} m4=${med[4]}
printf '%-52s %7s MB / %s MB\n' "peak RSS: berth SIF / mksquashfs zstd-3" \
	"$(($(cat "$work/rss.sif") / 1024))" "$(($(cat "$work/rss.mksq.zstd") / 1024))"
printf '%-52s %7s MB / %s MB\n' "peak RSS: berth SIF / through the tree" \
	"$(($(cat "$work/rss.sif") / 1024))" "$(($(cat "$work/rss.siftree") / 1024))"
printf '%-52s %7s x\n' "ratio berth SIF / through the tree (before)" "$(ratio "$m0" "$m4")"
printf '%-52s %7s x\n' "ratio berth SIF / (tar -x + mksquashfs gzip)" "$(ratio "$m0" "$m2")"
printf '%-52s %7s x\n' "ratio berth SIF / (tar -x + mksquashfs zstd-3)" "$(ratio "$m0" "$m3")"
printf '%-52s %7s x\n' "ratio berth sandbox / (tar -x + mksquashfs zstd-3)" "$(ratio "$m1" "$m3")"
