#!/usr/bin/env bash
# Cold staging of a big image (>= 200 MB, several layers): berth pull
# against `tar -x` of the same layers and `docker load`, side by side in one
# run.  Prints medians and ratios, and berth's peak RSS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${BENCH_N_FLATTEN:-3}
out=$REPO/bench/out
mkdir -p "$out"
img=$out/big.tar
[ -e "$img" ] || python3 "$REPO/tests/fixtures/mkimage.py" legacy "$img" --big-mb 220 --tag berth/big:1 >/dev/null
work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The layer tars, extracted once (not timed), in manifest order.
mkdir -p "$work/layers"
tar -xf "$img" -C "$work/layers"
mapfile -t layers < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[0]["Layers"]))' "$work/layers/manifest.json")

berth_once() {
	rm -rf "$work/cache" && mkdir "$work/cache"
	/usr/bin/time -f '%M' -o "$work/rss" "$BERTH" pull --cache-dir "$work/cache" "$img" >/dev/null
}
tar_once() {
	rm -rf "$work/rootfs" && mkdir "$work/rootfs"
	for l in "${layers[@]}"; do tar -xf "$work/layers/$l" -C "$work/rootfs"; done
}
docker_once() {
	docker rmi -f berth/big:1 >/dev/null 2>&1 || true
	docker load -i "$img" >/dev/null
}
BERTH=${BERTH_BUILD:-$REPO/build}/berth
echo "image: $(du -m "$img" | cut -f1) MB, ${#layers[@]} layers"
b=$(median_ms berth_once)
rss=$(($(cat "$work/rss") / 1024))
t=$(median_ms tar_once)
printf '%-40s %8s ms  (peak RSS %s MB)\n' "berth pull (cold)" "$b" "$rss"
printf '%-40s %8s ms\n' "tar -x of the same layers" "$t"
printf '%-40s %8s x   (target <= 1.3)\n' "ratio berth / tar -x" "$(ratio "$b" "$t")"
if curl -sf --max-time 2 --unix-socket /var/run/docker.sock http://x/_ping >/dev/null 2>&1; then
	d=$(median_ms docker_once)
	docker rmi -f berth/big:1 >/dev/null 2>&1 || true
	printf '%-40s %8s ms\n' "docker load" "$d"
	printf '%-40s %8s x\n' "ratio berth / docker load" "$(ratio "$b" "$d")"
else
	echo "docker load: skipped (dockerd not running)"
fi
