#!/usr/bin/env bats
# A CacheDir every node sees (shared-cache/ of tests/harness/cluster/multinode.sh,
# the same host folder in each node's mount namespace, as an NFS or Lustre
# mount would be): an image is converted once for all nodes, concurrent
# conversions on 4 nodes make one, and a conversion killed half-way leaves
# nothing another node takes for complete.  The nodes share one kernel here,
# so these tests check berth's protocol (flock + rename), not a network file
# system's locking: README "A CacheDir shared by several nodes" says which ones keep it.

load helpers

setup_file() {
	require_mcluster
}

setup() {
	for n in $(seq "$NODES"); do "$MNODE" set-cache "bn$n" shared; done
	SC=$(user_cache shared)
}

teardown() {
	for n in $(seq "$NODES"); do "$MNODE" set-cache "bn$n" local; done
}

# The cache entry each runtime converts to (an extended regex): charliecloud's
# tree, or its one SquashFS file (the default, ImageStorage=auto, where
# squashfuse works).
kind_of() { if [ "$1" = singularity ]; then echo sandbox; else echo 'rootfs(\.sqfs)?'; fi; }

for_rt() {
	local rt=$1 img digest kind
	img=$(fresh_image shared)
	digest=$(image_digest "$img")
	kind=$(kind_of "$rt")
	run as_user srun -N1 -w bn1 --container-runtime="$rt" --container-image="$img" cat /etc/only-in-image
	[ "$status" -eq 0 ]
	[ "$(grep -cE " $digest $kind " "$SC/conversions.log")" -eq 1 ]
	run as_user srun -N "$NODES" --container-runtime="$rt" --container-image="$img" cat /etc/only-in-image
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -cx only-in-image <<<"$output")" -eq "$NODES" ]
	[ "$(grep -cE " $digest $kind " "$SC/conversions.log")" -eq 1 ]
	for n in $(seq "$NODES"); do
		[ ! -e "$(user_cache "bn$n")/images/${digest#sha256:}" ]
	done
	no_builds_left
}

@test "[charliecloud] converted on one node, used by the 3 others without converting again" {
	for_rt charliecloud
}

@test "[singularity] converted on one node, used by the 3 others without converting again" {
	for_rt singularity
}

@test "[charliecloud] 4 nodes asking for the same cold image at once make one conversion" {
	img=$(fresh_image conc --big-mb 30)
	digest=$(image_digest "$img")
	run as_user srun -N "$NODES" -n "$NODES" --container-runtime=charliecloud --container-image="$img" \
		sh -c 'echo "ran $SLURM_NODEID"'
	[ "$status" -eq 0 ]
	[ "$(grep -c '^ran ' <<<"$output")" -eq "$NODES" ]
	[ "$(grep -cE " $digest rootfs(\.sqfs)? " "$SC/conversions.log")" -eq 1 ]
	no_builds_left
}

@test "[charliecloud] a node killed mid-conversion leaves nothing another node takes for complete" {
	img=$(fresh_image killed --big-mb 300)
	digest=$(image_digest "$img")
	d=$(job_dir)
	job=$(as_user sbatch --parsable -N1 -w bn1 -o "$d/out" \
		--wrap="srun --container-runtime=charliecloud --container-image=$img true")
	# bn1's conversion: its berth pull, once its build folder exists
	pull=""
	for _ in $(seq 1500); do
		pull=$(pgrep -u "${BERTH_TEST_USER:-berthtest}" -f "berth pull .*--cache-dir $BERTH_CLUSTER_DIR/shared-cache" || true)
		[ -n "$pull" ] && [ -n "$(ls -A "$SC/tmp" 2>/dev/null)" ] && break
		sleep 0.02
	done
	[ -n "$pull" ]
	[ -n "$(ls -A "$SC/tmp")" ]
	# the node dies mid-conversion: no clean-up of its own
	# shellcheck disable=SC2086 # one pid per word
	kill -KILL $pull
	scancel "$job"
	wait_job_left "$job"
	[ ! -e "$SC/images/${digest#sha256:}/rootfs" ]
	[ ! -e "$SC/images/${digest#sha256:}/rootfs.sqfs" ]
	[ "$(grep -cE " $digest rootfs(\.sqfs)? " "$SC/conversions.log")" -eq 0 ]
	# another node converts it afresh, completely, and sweeps the dead build
	run as_user srun -N1 -w bn2 --container-runtime=charliecloud --container-image="$img" \
		sh -c 'cat /etc/only-in-image && du -sm /data 2>/dev/null | cut -f1'
	[ "$status" -eq 0 ]
	[ "$(grep -cE " $digest rootfs(\.sqfs)? " "$SC/conversions.log")" -eq 1 ]
	[ -d "$SC/images/${digest#sha256:}/rootfs" ] || [ -f "$SC/images/${digest#sha256:}/rootfs.sqfs" ]
	no_builds_left
}

@test "[charliecloud] a fresh shared CacheDir: 4 nodes making the user's folder at once all take it" {
	local img round
	img=$(fresh_image fresh-dir)
	for round in 1 2 3; do
		rm -rf "$SC"
		run as_user srun -N "$NODES" -n "$NODES" --container-runtime=charliecloud \
			--container-image="$img" true
		echo "round $round: $output"
		[ "$status" -eq 0 ]
		[ "$(stat -c %u "$SC")" = "$(id -u "${BERTH_TEST_USER:-berthtest}")" ]
		[ "$(stat -c %a "$SC")" = 700 ]
		# no half-made folder left beside it
		[ -z "$(find "$(dirname "$SC")" -maxdepth 1 -name '.new-*')" ]
	done
}
