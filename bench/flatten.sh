#!/usr/bin/env bash
# Cold staging of a big image (>= 200 MB, several layers): berth pull (the
# tree, and ImageStorage=squashfs: one SquashFS file, no file of the image
# on disk) against `tar -x` of the same layers and `docker load`, side by
# side in one
# run, as alternating rounds (one of each per round, in a rotating order).
# Medians, spread (min-max), ratios, and berth's peak RSS.  Timings are
# measured, never asserted.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
N=${BENCH_N_FLATTEN:-3}
BERTH=${BERTH_BUILD:-$REPO/build}/berth
out=$REPO/bench/out
mkdir -p "$out"
# BENCH_IMAGE, BENCH_TAG: another docker-save archive (a distribution's
# many small files) and its tag
img=${BENCH_IMAGE:-$out/big.tar}
tag=${BENCH_TAG:-berth/big:1}
[ -e "$img" ] || python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$img" --big-mb 220 --tag berth/big:1 >/dev/null
# BENCH_WORK: where the caches go (/var/tmp: disk; /dev/shm: tmpfs)
work=$(mktemp -d "${BENCH_WORK:-/var/tmp}/berth-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The layer tars, extracted once (not timed), in manifest order.
mkdir -p "$work/layers"
tar -xf "$img" -C "$work/layers"
mapfile -t layers < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[0]["Layers"]))' "$work/layers/manifest.json")

berth_prep() { rm -rf "$work/cache" && mkdir "$work/cache"; }
berth_run() {
	/usr/bin/time -f '%M' -o "$work/rss" "$BERTH" pull --cache-dir "$work/cache" "$img"
}
printf 'ImageStorage=squashfs\n' >"$work/squashfs.conf"
sq_prep() { rm -rf "$work/sqcache" && mkdir "$work/sqcache"; }
sq_run() { BERTH_CONFIG=$work/squashfs.conf "$BERTH" pull --cache-dir "$work/sqcache" "$img"; }
tar_prep() { rm -rf "$work/rootfs" && mkdir "$work/rootfs"; }
tar_run() {
	local l
	for l in "${layers[@]}"; do tar -xf "$work/layers/$l" -C "$work/rootfs"; done
}
docker_prep() { docker rmi -f "$tag" >/dev/null 2>&1 || true; }
docker_run() { docker load -i "$img"; }

contender "berth pull (cold)" berth_prep berth_run
contender "tar -x of the same layers" tar_prep tar_run
contender "berth pull (cold, ImageStorage=squashfs)" sq_prep sq_run
if curl -sf --max-time 2 --unix-socket /var/run/docker.sock http://x/_ping >/dev/null 2>&1; then
	contender "docker load" docker_prep docker_run docker_prep
else
	echo "docker load: skipped (dockerd not running)"
fi
echo "image: $(du -m "$img" | cut -f1) MB, ${#layers[@]} layers; $N alternating rounds"
rounds
report
echo "peak RSS of berth pull: $(($(cat "$work/rss") / 1024)) MB (the last round's)"
rline "ratio berth / tar -x" "$(ratio "${med[0]}" "${med[1]}")" "(target <= 1.3)"
rline "ratio squashfs / tree (berth pull)" "$(ratio "${med[2]}" "${med[0]}")"
[ "${#med[@]}" -lt 4 ] || rline "ratio berth / docker load" "$(ratio "${med[0]}" "${med[3]}")"
[ "${#med[@]}" -lt 4 ] || rline "ratio squashfs / docker load" "$(ratio "${med[2]}" "${med[3]}")"
echo "cache size: tree $(du -sm "$work/cache" | cut -f1) MB, squashfs $(du -sm "$work/sqcache" | cut -f1) MB"
