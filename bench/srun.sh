#!/usr/bin/env bash
# srun with and without a container, warm cache, per runtime, side by side
# in one run; berth's own added time = (srun with container - srun) - the
# raw runtime's own start on the same image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SUBMIT="$REPO/tests/cluster/submit.sh"
BERTH=$BERTH_CLUSTER_DIR/bin/berth
img=$BERTH_CLUSTER_DIR/e2e/images/bench.tar
mkdir -p "$(dirname "$img")"
chmod 755 "$BERTH_CLUSTER_DIR/e2e" "$(dirname "$img")"
[ -e "$img" ] || python3 "$REPO/tests/fixtures/mkimage.py" legacy "$img" >/dev/null
chmod 644 "$img"
plain_cmd=("$SUBMIT" srun true)
cache=$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)
for rt in charliecloud singularity docker; do
	"$SUBMIT" srun --container-runtime="$rt" --container-image="$img" true >/dev/null 2>&1 || {
		echo "$rt: skipped (the job failed)"
		continue
	}
	with_cmd=("$SUBMIT" srun --container-runtime="$rt" --container-image="$img" true)
	digest=$("$REPO/build/berth" inspect "$img" | awk '/^digest/ {print $2}')
	case $rt in
	charliecloud) raw=(runuser -u berthtest -- env USER=berthtest /usr/bin/ch-run "$cache/images/${digest#sha256:}/rootfs" -- true) ;;
	singularity) raw=(runuser -u berthtest -- "$BERTH_CLUSTER_DIR/bin/singularity" -q exec --containall --cleanenv "$(ls -d "$cache/images/${digest#sha256:}/sandbox" "$cache/images/${digest#sha256:}/image.sif" 2>/dev/null | head -n1)" true) ;;
	docker) raw=(docker run --rm --network host --user "$(id -u berthtest)" "$digest" true) ;;
	esac
	# srun with the container against plain srun, alternating; then the
	# raw runtime alone against plain srun's own client, alternating too
	pair_ms with_cmd plain_cmd
	show_pair "srun --container-runtime=$rt --container-image=I true" "srun true"
	with=${PAIR_A%% *} plain=${PAIR_B%% *}
	r=$(median_ms "${raw[@]}")
	printf '%-52s %6s ms   (berth adds %s ms: with - plain - raw)\n' "raw $rt start" "$r" \
		"$((with - plain - r))"
done
