#!/usr/bin/env bash
# Warm start: `berth run ... true` against the raw runtime on the same
# cached image, side by side.  berth's own cost is the difference.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BERTH=${BERTH_BUILD:-$REPO/build}/berth
work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/cache"
img=$work/img.tar
python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$img" >/dev/null
export USER=${USER:-root}
sing=${BERTH_TEST_SINGULARITY:-$REPO/tests/harness/fakes/singularity}
printf 'SingularityPath=%s\nAllowedRuntimes=charliecloud,singularity\n' "$sing" >"$work/berth.conf"
export BERTH_CONFIG=$work/berth.conf
for rt in charliecloud singularity; do
	digest=$("$BERTH" pull --runtime "$rt" --cache-dir "$work/cache" "$img" | cut -d' ' -f1)
	entry=$work/cache/$(id -u)/images/${digest#sha256:}
	if [ "$rt" = charliecloud ]; then
		raw=(/usr/bin/ch-run "$entry/rootfs" -- true)
	else
		# the image berth made: a SIF, or a sandbox folder
		made=$entry/sandbox
		[ -e "$entry/image.sif" ] && made=$entry/image.sif
		raw=("$sing" -q exec --containall --cleanenv "$made" true)
	fi
	cmd=("$BERTH" run --runtime "$rt" --cache-dir "$work/cache" --image "$img" -- true)
	pair_ms cmd raw
	show_pair "berth run --runtime $rt IMG true" "raw: ${raw[0]##*/} ... true"
	b=${PAIR_A%% *} r=${PAIR_B%% *}
	printf '%-44s %6s x   (+%s ms; target +5 ms)\n' "ratio" "$(ratio "$b" "$r")" "$((b - r))"
done
# Docker: berth run (as root for a user, the way the plugin's root side
# does) against `docker run --rm --network host`, same image, warm.
if curl -sf --max-time 2 --unix-socket /var/run/docker.sock http://x/_ping >/dev/null 2>&1; then
	printf 'AllowedRuntimes=charliecloud,singularity,docker\n' >"$work/berth.conf"
	"$BERTH" pull --runtime docker --cache-dir "$work/cache" "$img" >/dev/null
	tag=$(docker load -i "$img" | sed -n 's/^Loaded image: //p')
	u=$(id -u nobody):$(id -g nobody)
	cmd=("$BERTH" run --runtime docker --user "$u" --cache-dir "$work/cache" --image "$img" -- true)
	raw=(docker run --rm --network host --user "$u" "$tag" true)
	pair_ms cmd raw
	show_pair "berth run --runtime docker IMG true" "docker run --rm --network host IMG true"
	b=${PAIR_A%% *} r=${PAIR_B%% *}
	printf '%-44s %6s x   (docker/berth; target >= 1.5)\n' "speed-up" "$(ratio "$r" "$b")"
else
	echo "docker: skipped (dockerd not running)"
fi
