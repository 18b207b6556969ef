#!/usr/bin/env bats
# Jobs across the 4 nodes of tests/harness/cluster/multinode.sh, once per runtime
# (BERTH_RUNTIME: charliecloud, singularity, docker).  Docker containers run
# on the one dockerd of the machine: each node's containers carry its name
# (berth.node), and a node's cleanup takes only its own.

load helpers

setup_file() {
	require_mcluster
}

setup() {
	RT=${BERTH_RUNTIME:-charliecloud}
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	for n in $(seq "$NODES"); do "$MNODE" set-cache "bn$n" local; done
}

teardown() {
	chmod 0700 "$BERTH_CLUSTER_DIR"/nodes/*/cache/"$TUID"/tmp 2>/dev/null || true
	chown "$TUID" "$BERTH_CLUSTER_DIR"/nodes/*/cache/"$TUID"/tmp 2>/dev/null || true
}

@test "[$BERTH_RUNTIME] srun -N 4 -n 8: every task in the container, with its own SLURM_NODEID and SLURM_PROCID" {
	# shellcheck disable=SC2016 # expanded in the container
	run as_user srun -N "$NODES" -n $((2 * NODES)) --container-runtime="$RT" --container-image="$IMG" \
		sh -c 'echo "proc=$SLURM_PROCID node=$SLURM_NODEID $(cat /etc/only-in-image)"'
	[ "$status" -eq 0 ]
	# block distribution: tasks 2K and 2K+1 on node K; the file only the
	# image has says each ran inside it
	want=$(for p in $(seq 0 $((2 * NODES - 1))); do echo "proc=$p node=$((p / 2)) only-in-image"; done)
	got=$(grep '^proc=' <<<"$output" | sort -t= -k2 -n)
	[ "$got" = "$want" ]
}

@test "[$BERTH_RUNTIME] every node stages a new image exactly once, in its own cache" {
	[ "$RT" != docker ] || skip "docker: the image lives in the one dockerd every test node shares"
	img=$(fresh_image once)
	digest=$(image_digest "$img")
	for _ in 1 2; do
		run as_user srun -N "$NODES" -n $((2 * NODES)) --container-runtime="$RT" --container-image="$img" true
		[ "$status" -eq 0 ]
	done
	# the tree, or one SquashFS file (the default, ImageStorage=auto,
	# where squashfuse works)
	kind='rootfs(\.sqfs)?'
	[ "$RT" = singularity ] && kind=sandbox
	for n in $(seq "$NODES"); do
		c=$(user_cache "bn$n")
		echo "bn$n: $(conversions "$c" "$digest")"
		[ "$(grep -cE " $digest $kind " "$c/conversions.log")" -eq 1 ]
		[ -d "$c/images/${digest#sha256:}" ]
	done
	no_builds_left
}

@test "[$BERTH_RUNTIME] sbatch -N 4: the script's srun steps run in the container on every node" {
	d=$(job_dir)
	cat >"$d/job.sh" <<SCRIPT
#!/bin/sh
srun -n $((2 * NODES)) --container-runtime=$RT --container-image=$IMG sh -c 'echo "\$SLURM_NODEID \$(cat /etc/berth-release)"' | sort -u
srun -N $NODES --container-runtime=$RT --container-image=$IMG sh -c 'echo "step2 \$SLURM_NODEID"' | sort
SCRIPT
	chmod 755 "$d/job.sh"
	run as_user sbatch --wait -N "$NODES" -n $((2 * NODES)) -o "$d/out" "$d/job.sh"
	cat "$d/out"
	[ "$status" -eq 0 ]
	for n in $(seq 0 $((NODES - 1))); do
		grep -qx "$n berth test image" "$d/out"
		grep -qx "step2 $n" "$d/out"
	done
}

@test "[$BERTH_RUNTIME] tasks that end at different times on different nodes keep their containers until they end" {
	# node 0's tasks end at once; its step cleanup must not take node 3's
	run as_user srun -N "$NODES" --container-runtime="$RT" --container-image="$IMG" \
		sh -c '[ "$SLURM_NODEID" = 0 ] || sleep 3; echo "done $SLURM_NODEID"'
	[ "$status" -eq 0 ]
	[ "$(grep -c '^done ' <<<"$output")" -eq "$NODES" ]
}

@test "[$BERTH_RUNTIME] staging that fails on one node fails the step, names the node, leaves nothing on the others" {
	[ "$RT" != docker ] || skip "docker: staging is a load into the dockerd every test node shares"
	img=$(fresh_image fail)
	# bn3's cache cannot hold a build: its tmp/ is root's
	c3=$(user_cache bn3)
	mkdir -p "$c3/tmp"
	chown root "$c3/tmp"
	chmod 0755 "$c3/tmp"
	run as_user srun -N "$NODES" -n "$NODES" --container-runtime="$RT" --container-image="$img" true
	echo "$output"
	[ "$status" -ne 0 ]
	grep -q 'bn3' <<<"$output"
	grep -q 'berth: ' <<<"$output"
	for _ in $(seq 100); do
		[ -z "$(user_procs)" ] && break
		sleep 0.1
	done
	ps -o pid,args -u "${BERTH_TEST_USER:-berthtest}" || true
	[ -z "$(user_procs)" ]
	no_builds_left
	[ -z "$(ls -A "$c3/tmp")" ]
}

@test "[$BERTH_RUNTIME] scancel of a 4-node job cleans every node" {
	d=$(job_dir)
	job=$(as_user sbatch --parsable -N "$NODES" -o "$d/out" \
		--wrap="srun -N $NODES --container-runtime=$RT --container-image=$IMG sh -c 'echo up \$SLURM_NODEID; exec sleep 300'")
	for _ in $(seq 300); do
		[ "$(grep -c '^up ' "$d/out" 2>/dev/null)" = "$NODES" ] && break
		sleep 0.1
	done
	[ "$(grep -c '^up ' "$d/out")" -eq "$NODES" ]
	[ "$RT" != docker ] || [ "$(job_containers "$job")" -eq "$NODES" ]
	scancel "$job"
	wait_job_left "$job"
	for _ in $(seq 100); do
		[ -z "$(user_procs)" ] && break
		sleep 0.1
	done
	[ -z "$(user_procs)" ]
	[ "$(job_containers "$job")" -eq 0 ]
	no_builds_left
}
