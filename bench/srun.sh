#!/usr/bin/env bash
# srun with and without a container, warm cache, side by side in one run.
# Prints medians of N runs and berth's ratio to plain `srun true`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SUBMIT="$REPO/tests/cluster/submit.sh"
img=$BERTH_CLUSTER_DIR/e2e/images/bench.tar
mkdir -p "$(dirname "$img")"
chmod 755 "$BERTH_CLUSTER_DIR/e2e" "$(dirname "$img")"
[ -e "$img" ] || python3 "$REPO/tests/fixtures/mkimage.py" legacy "$img" >/dev/null
chmod 644 "$img"
"$SUBMIT" srun --container-image="$img" true # warm the cache
plain=$(median_ms "$SUBMIT" srun true)
berth=$(median_ms "$SUBMIT" srun --container-image="$img" true)
printf '%-44s %8s ms\n' "srun true" "$plain"
printf '%-44s %8s ms\n' "srun --container-image=busybox true (warm)" "$berth"
printf '%-44s %8s x  (+%s ms)\n' "ratio container/plain" "$(ratio "$berth" "$plain")" "$((berth - plain))"
