# Shared by the multi-node tests: jobs as the test user through the cluster
# of tests/harness/cluster/multinode.sh (4 slurmd, each in its own network, UTS and
# mount namespaces; node K's CacheDir is nodes/bnK/cache).
export BERTH_CLUSTER_DIR=${BERTH_MCLUSTER_DIR:-/var/tmp/berth-mcluster}
export SLURM_CONF=$BERTH_CLUSTER_DIR/etc/slurm.conf
# shellcheck source=tests/e2e/helpers.bash
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../e2e" && pwd)/helpers.bash"
MNODE=$REPO/tests/harness/cluster/multinode.sh
NODES=${BERTH_NODES:-4}
TUID=$(id -u "${BERTH_TEST_USER:-berthtest}")

require_mcluster() {
	[ -r "$BERTH_CLUSTER_DIR/env" ] && sinfo -h >/dev/null 2>&1 || {
		echo "no multi-node cluster: run tests/harness/cluster/multinode.sh start (make mcluster-start)" >&2
		return 1
	}
}

# The test user's cache on node $1 (bn1..), or the shared one ("shared").
user_cache() {
	if [ "$1" = shared ]; then
		echo "$BERTH_CLUSTER_DIR/shared-cache/$TUID"
	else
		echo "$BERTH_CLUSTER_DIR/nodes/$1/cache/$TUID"
	fi
}

# conversions CACHE DIGEST: how many conversions of DIGEST the cache logged.
conversions() {
	grep -c " $2 " "$1/conversions.log" 2>/dev/null || true
}

# A fresh image (its own digest, so nothing is cached yet): fresh_image NAME
# [mkimage options].
fresh_image() {
	local name=$1
	shift
	make_image "$name-$$-$RANDOM.tar" legacy --label "berth.test.fresh=$$-$RANDOM$RANDOM" "$@"
}

# The config digest of a docker-save archive (berth's image identity).
image_digest() {
	local cfg
	cfg=$(tar -xOf "$1" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Config"])')
	echo "sha256:$(tar -xOf "$1" "$cfg" | sha256sum | cut -d' ' -f1)"
}

# Nothing of a build left in any node's cache (tmp/ holds builds in progress).
no_builds_left() {
	local node c
	for c in "$BERTH_CLUSTER_DIR"/nodes/*/cache/"$TUID" "$BERTH_CLUSTER_DIR/shared-cache/$TUID"; do
		[ -d "$c/tmp" ] || continue
		if [ -n "$(ls -A "$c/tmp")" ]; then
			echo "left in $c/tmp: $(ls -A "$c/tmp")"
			return 1
		fi
	done
}

# The test user's processes of this cluster (none must outlive a job).
# Other clusters on the machine run jobs as the same user: ours are those
# with an ancestor (slurmstepd, srun) whose environment holds
# SLURM_CONF=<our slurm.conf> (berth's own children get a clean one).
user_procs() {
	local p a i
	for p in $(pgrep -u "${BERTH_TEST_USER:-berthtest}" || true); do
		a=$p
		for ((i = 0; i < 16 && a > 1; i++)); do
			if tr '\0' '\n' 2>/dev/null <"/proc/$a/environ" | grep -qxF "SLURM_CONF=$SLURM_CONF"; then
				echo "$p"
				break
			fi
			a=$(ps -o ppid= -p "$a" 2>/dev/null | tr -d " ")
			a=${a:-0}
		done
	done
	return 0
}

# Docker containers of job $1, on any node.
job_containers() {
	curl -s --unix-socket /var/run/docker.sock \
		"http://x/containers/json?all=1&filters=%7B%22label%22%3A%5B%22berth.job%3D$1%22%5D%7D" |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
