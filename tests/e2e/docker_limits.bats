#!/usr/bin/env bats
# shellcheck disable=SC2016 # the $ in single quotes are the container's
# Issue 23, item 5: a Docker task's container stays within what Slurm gave
# the step on the node, whatever the job does inside:
#  - memory: each container gets its task's share of the step's memory
#    (step memory / tasks on the node), no swap on top, so two tasks of
#    --mem=300M cannot use more than 300M together;
#  - CPUs: the container runs on the task's CPU binding (a -c1 job sees one
#    CPU; -n2 -c1 puts each task on a CPU of its own);
#  - processes: at most DockerPidsLimit (default 4096) in a container; a
#    fork loop fails inside, and the container and the node carry on.
# Through the real cluster and the real dockerd, as the unprivileged user.

load helpers

setup_file() {
	require_cluster
	curl -sf --unix-socket /var/run/docker.sock http://x/_ping >/dev/null || {
		echo "dockerd is not running (.ci/run starts it)" >&2
		return 1
	}
	export IMG
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	conf_save
}

# the cluster's berth.conf as it was, whatever a test changed
teardown() {
	conf_restore
}

dsrun() { as_user srun -Q --container-runtime=docker --container-image="$IMG" "$@"; }


@test "[docker] two tasks of --mem=300M cannot use more than 300M together" {
	# Each task reads its container's limit, then tries to fill 200M (dd's
	# buffer, touched by reading /dev/zero into it).  One 300M container
	# per task (the old way) let both do it: 400M for a 300M step.
	run dsrun -l -n2 --mem=300M sh -c '
		read lim </sys/fs/cgroup/memory/memory.limit_in_bytes
		read sw </sys/fs/cgroup/memory/memory.memsw.limit_in_bytes
		echo "limit=$lim swap=$sw"
		dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null && echo FILLED'
	echo "$output"
	[ "$(grep -c 'limit=' <<<"$output")" -eq 2 ]
	sum=0
	for l in $(grep -o 'limit=[0-9]*' <<<"$output" | cut -d= -f2); do sum=$((sum + l)); done
	[ "$sum" -le $((300 << 20)) ]
	# no swap on top of it (memsw = mem)
	[ "$(grep -c 'limit=\([0-9]*\) swap=\1$' <<<"$output")" -eq 2 ]
	# behaviour: not both fill 200M
	[ "$(grep -c FILLED <<<"$output")" -le 1 ]
}

@test "[docker] one task alone gets the whole step's memory" {
	run dsrun -n1 --mem=300M sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes
		dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null && echo FILLED'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(sed -n 1p <<<"$output")" = $((300 << 20)) ]
	grep -qx FILLED <<<"$output"
}

@test "[docker] a -c1 job's container sees exactly one CPU" {
	# the node has 2: the old container saw both
	[ "$(nproc)" -ge 2 ] || skip "the node has one CPU"
	run dsrun -n1 -c1 sh -c 'grep Cpus_allowed_list /proc/self/status; nproc'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$(sed -n 1p <<<"$output")" =~ ^Cpus_allowed_list:[[:space:]]*[0-9]+$ ]]
	[ "$(sed -n 2p <<<"$output")" = 1 ]
}

@test "[docker] -n2 -c1: each task's container has a CPU of its own" {
	[ "$(nproc)" -ge 2 ] || skip "the node has one CPU"
	run dsrun -l -n2 -c1 sh -c 'grep Cpus_allowed_list /proc/self/status'
	echo "$output"
	[ "$status" -eq 0 ]
	mapfile -t cpus < <(grep -o 'Cpus_allowed_list:.*' <<<"$output" | awk '{print $2}' | sort)
	[ "${#cpus[@]}" -eq 2 ]
	[[ "${cpus[0]}" =~ ^[0-9]+$ ]] && [[ "${cpus[1]}" =~ ^[0-9]+$ ]]
	[ "${cpus[0]}" != "${cpus[1]}" ]
}

@test "[docker] a container has a process limit by default (DockerPidsLimit=4096)" {
	run dsrun cat /sys/fs/cgroup/pids/pids.max
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(tail -1 <<<"$output")" = 4096 ]
}

@test "[docker] a fork loop stops at DockerPidsLimit; the container and node go on" {
	set_conf DockerPidsLimit=64
	# The loop runs in a subshell (busybox sh ends on a failed fork); it
	# counts what it started in a file, with no fork.  Then the sleeps are
	# killed (kill -1 spares the shell and the container's init) and the
	# shell forks again.
	run dsrun sh -c '
		( i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i + 1)); echo $i >/tmp/n; done ) 2>/dev/null
		read n </tmp/n; echo "started=$n"
		read max </sys/fs/cgroup/pids/pids.max; echo "max=$max"
		kill -9 -1; wait
		sleep 0 && echo forks-again'
	echo "$output"
	[ "$status" -eq 0 ]
	grep -qx max=64 <<<"$output"
	n=$(grep -o 'started=[0-9]*' <<<"$output" | cut -d= -f2)
	[ "$n" -gt 0 ] && [ "$n" -lt 64 ]
	grep -qx forks-again <<<"$output"
	# the node: the next job runs
	run dsrun echo next
	[ "$status" -eq 0 ]
	[ "$(tail -1 <<<"$output")" = next ]
}
