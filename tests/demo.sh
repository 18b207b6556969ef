#!/usr/bin/env bash
# make demo: build (done by make), start a one-node Slurm cluster, and run a
# container job with each runtime this berth can launch; show the output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. packages (apt-get, only what is missing)"
bash "$here/harness/cluster/packages.sh"

say "2. one-node Slurm cluster (munge, slurmctld, slurmd) with berth in plugstack.conf"
bash "$here/harness/cluster/start.sh"
. "${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}/env"
echo "SLURM_CONF=$SLURM_CONF"
sinfo

say "3. a docker-save image built from busybox (no registry needed)"
img_dir=$BERTH_CLUSTER_DIR/e2e/images
mkdir -p "$img_dir" && chmod 755 "$BERTH_CLUSTER_DIR/e2e" "$img_dir"
img=$img_dir/demo.tar
python3 "$here/harness/fixtures/mkimage.py" legacy "$img" --tag berth/demo:1 >/dev/null
chmod 644 "$img"
"$repo/build/berth" inspect "$img"

say "4. dockerd (for the docker runtime)"
bash "$here/harness/cluster/dockerd.sh" start || echo "(the docker job will fail)"

n=5
for runtime in charliecloud singularity docker; do
	say "$n. srun --container-runtime=$runtime --container-image=$img (as user berthtest)"
	n=$((n + 1))
	echo "\$ srun --container-runtime=$runtime --container-image=$img sh -c 'cat /etc/berth-release; id'"
	"$here/harness/cluster/submit.sh" srun --container-runtime="$runtime" --container-image="$img" \
		sh -c 'cat /etc/berth-release; id' || echo "(the $runtime job failed: see above)"
done
echo
echo "singularity here is tests/harness/fakes/singularity (no Debian 12 package); set"
echo "BERTH_TEST_SINGULARITY=/path before make demo to use a real one."

say "done"
echo "The cluster keeps running. Try, as user berthtest:"
echo "  tests/harness/cluster/submit.sh srun --container-image=$img cat /data/hello.txt"
echo "Stop it with: make cluster-stop"
