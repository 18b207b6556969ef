#!/usr/bin/env bash
# srun with and without a container, warm cache, per runtime, side by side
# in one run; berth's own added time: srun with the container against srun
# followed by the raw runtime's own start on the same image, as alternating
# pairs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SUBMIT="$REPO/tests/harness/cluster/submit.sh"
BERTH=$BERTH_CLUSTER_DIR/bin/berth
img=$BERTH_CLUSTER_DIR/e2e/images/bench.tar
mkdir -p "$(dirname "$img")"
chmod 755 "$BERTH_CLUSTER_DIR/e2e" "$(dirname "$img")"
[ -e "$img" ] || python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$img" >/dev/null
chmod 644 "$img"
plain_cmd=("$SUBMIT" srun true)
plain_then_raw=(srun_then_raw)
srun_then_raw() { "$SUBMIT" srun true && "${raw[@]}"; }
cache=$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)
for rt in ${BENCH_RUNTIMES:-charliecloud singularity docker}; do
	"$SUBMIT" srun --container-runtime="$rt" --container-image="$img" true >/dev/null 2>&1 || {
		echo "$rt: skipped (the job failed)"
		continue
	}
	with_cmd=("$SUBMIT" srun --container-runtime="$rt" --container-image="$img" true)
	digest=$("$REPO/build/berth" inspect "$img" | awk '/^digest/ {print $2}')
	case $rt in
	charliecloud) raw=(runuser -u berthtest -- env USER=berthtest /usr/bin/ch-run "$cache/images/${digest#sha256:}/rootfs" -- true) ;;
	singularity)
		made=$cache/images/${digest#sha256:}/sandbox # or the SIF berth made
		[ -e "$cache/images/${digest#sha256:}/image.sif" ] && made=$cache/images/${digest#sha256:}/image.sif
		raw=(runuser -u berthtest -- "$BERTH_CLUSTER_DIR/bin/singularity" -q exec --containall --cleanenv "$made" true)
		;;
	docker) raw=(docker run --rm --network host --user "$(id -u berthtest)" "$digest" true) ;;
	esac
	# srun with the container against plain srun followed by the raw
	# runtime on the same image, alternating: the difference of the pair
	# is berth's own share of the step, measured side by side.
	pair_ms with_cmd plain_cmd
	show_pair "srun --container-runtime=$rt --container-image=I true" "srun true"
	pair_ms with_cmd plain_then_raw
	show_pair "srun --container-runtime=$rt --container-image=I true" "srun true; then raw $rt start"
	d=(${PAIR_D})
	printf '%-52s %6s ms   (median of the pairs'"'"' differences, %s to %s; target <= 10 ms)\n' \
		"berth's own share ($rt)" "${d[0]}" "${d[1]}" "${d[2]}"
done
