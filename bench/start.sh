#!/usr/bin/env bash
# Warm start: `berth run ... true` against the raw runtime on the same
# cached image, side by side.  berth's own cost is the difference.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BERTH=${BERTH_BUILD:-$REPO/build}/berth
work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
img=$work/img.tar
python3 "$REPO/tests/fixtures/mkimage.py" legacy "$img" >/dev/null
export USER=${USER:-root}
sing=${BERTH_TEST_SINGULARITY:-$REPO/tests/fakes/singularity}
printf 'SingularityPath=%s\nAllowedRuntimes=charliecloud,singularity\n' "$sing" >"$work/berth.conf"
export BERTH_CONFIG=$work/berth.conf
for rt in charliecloud singularity; do
	digest=$("$BERTH" pull --runtime "$rt" --cache-dir "$work/cache" "$img" | cut -d' ' -f1)
	entry=$work/cache/$(id -u)/images/${digest#sha256:}
	if [ "$rt" = charliecloud ]; then
		raw=(/usr/bin/ch-run "$entry/rootfs" -- true)
	else
		raw=("$sing" exec --containall --cleanenv "$entry/image.sif" true)
	fi
	b=$(median_ms "$BERTH" run --runtime "$rt" --cache-dir "$work/cache" --image "$img" -- true)
	r=$(median_ms "${raw[@]}")
	printf '%-44s %8s ms\n' "berth run --runtime $rt IMG true" "$b"
	printf '%-44s %8s ms\n' "raw: ${raw[0]##*/} ... true" "$r"
	printf '%-44s %8s x   (+%s ms; target +5 ms)\n' "ratio" "$(ratio "$b" "$r")" "$((b - r))"
done
