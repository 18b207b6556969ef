#!/usr/bin/env bats
# Faults under a running job, through the real cluster:
#  - dockerd stopped (SIGTERM) or killed (SIGKILL) while a docker job runs,
#    then started again: the job ends with a message that says what
#    happened, the sweep removes what dockerd kept once it answers, and the
#    next docker job succeeds with nothing left behind;
#  - slurmd restarted while a charliecloud or singularity step runs: the
#    step finishes or is cleaned, nothing is left, the next job succeeds.
# The docker cases use a private dockerd started here (its own data root,
# exec root and socket, no bridge, no iptables), never the machine's: the
# cluster's berth.conf points at it while this file runs, and is restored.

load helpers

FD_SOCK=/run/berth-fault-docker.sock

setup_file() {
	require_cluster
	export IMG FD_DIR="" FD_EXEC=""
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	# The version matrix's chroots use the machine's dockerd and have no
	# dockerd binary of their own: the docker cases are skipped there.
	command -v dockerd >/dev/null || return 0
	FD_DIR=$(mktemp -d /var/tmp/berth-fault-docker.XXXXXX)
	FD_EXEC=$(mktemp -d /run/berth-fault-docker.XXXXXX)
	fault_dockerd_start
	# berth (plugin, monitor, sweep) talks to the private dockerd for now
	set_conf "DockerSocket=$FD_SOCK"
}

teardown_file() {
	# nothing of ours to undo: above all, never unmount with an empty prefix
	[ -n "${FD_DIR:-}" ] && [ -n "${FD_EXEC:-}" ] && [ -d "$FD_DIR" ] || return 0
	conf_restore
	fault_dockerd_stop TERM
	# what dockerd mounted under its roots (its network namespace file, its
	# data root made private) stays after it exits
	local m
	for m in $(awk -v a="$FD_DIR" -v b="$FD_EXEC" 'index($5, a) == 1 || index($5, b) == 1 { print $5 }' \
		/proc/self/mountinfo | sort -r); do
		umount -l "$m"
	done
	rm -rf "$FD_DIR" "$FD_EXEC" "$FD_SOCK"
}

fd_docker() { docker -H "unix://$FD_SOCK" "$@"; }
fd_ping() { curl -sf --max-time 2 --unix-socket "$FD_SOCK" http://x/_ping >/dev/null 2>&1; }

fault_dockerd_start() {
	# The containerd of a killed dockerd dies after it (parent-death
	# signal); a dockerd started before it is gone waits for it in vain.
	local old
	old=$(cat "$FD_EXEC/containerd/containerd.pid" 2>/dev/null) || old=""
	for _ in $(seq 100); do
		[ -n "$old" ] && [ "$(cat "/proc/$old/comm" 2>/dev/null)" = containerd ] || break
		sleep 0.1
	done
	(cd / && exec setsid -f dockerd --data-root "$FD_DIR/data" --exec-root "$FD_EXEC" \
		--pidfile "$FD_DIR/dockerd.pid" -H "unix://$FD_SOCK" --bridge none \
		--iptables=false --ip6tables=false </dev/null >>"$FD_DIR/dockerd.log" 2>&1) &
	for _ in $(seq 300); do
		fd_ping && return 0
		sleep 0.2
	done
	tail -20 "$FD_DIR/dockerd.log" >&2
	return 1
}

# fault_dockerd_stop SIGNAL: signal our dockerd (only ours: its pid file)
# and wait until it is gone.
fault_dockerd_stop() {
	local pid
	pid=$(cat "$FD_DIR/dockerd.pid" 2>/dev/null) || return 0
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 0
	kill "-$1" "$pid"
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then return 1; fi
}

# leftovers and gone_within_10s (helpers.bash) ask the private dockerd
DOCKER_CLI=fd_docker

# start a docker job in the background whose task runs until killed; sets
# JOB and OUT (srun's output), SRUN (its pid)
start_docker_job() {
	local d
	d=$(job_dir)
	mkdir "$d/data" && chown berthtest "$d/data"
	OUT=$d/out
	as_user srun --container-runtime=docker --container-image="$IMG" \
		--container-mounts="$d/data:/data" \
		sh -c 'echo "job=$SLURM_JOB_ID"; sleep 120; echo finished' >"$OUT" 2>&1 &
	SRUN=$!
	for _ in $(seq 600); do grep -q job= "$OUT" && break; sleep 0.1; done
	JOB=$(grep -o 'job=[0-9]*' "$OUT" | cut -d= -f2)
	[ -n "$JOB" ]
	[ -n "$(leftovers "$JOB")" ] # it runs in the private dockerd
}

# nothing of berth's left: no container of any job in the private dockerd,
# no staged bind (folder or mount), no deferred sweep, no build folder
nothing_left() {
	[ -z "$(fd_docker ps -aq --filter label=berth.job)" ]
	[ -z "$(ls -A "$BERTH_CLUSTER_DIR/cache/.docker-binds" 2>/dev/null)" ]
	[ -z "$(grep " $BERTH_CLUSTER_DIR/cache/.docker-binds/" /proc/1/mountinfo)" ]
	[ -z "$(ls -A "$BERTH_CLUSTER_DIR/cache/.docker-sweep" 2>/dev/null)" ]
	[ -z "$(ls -A "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)/tmp" 2>/dev/null)" ]
}

next_docker_job_works() {
	run as_user srun --container-runtime=docker --container-image="$IMG" \
		sh -c 'echo "next-ok $SLURM_JOB_ID"'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *next-ok* ]]
	NEXT_JOB=$(grep -o 'next-ok [0-9]*' <<<"$output" | cut -d' ' -f2)
}

@test "dockerd killed under a docker job: a clear message; once it is back the sweep removes its container; the next job works" {
	[ -n "$FD_DIR" ] || skip "no dockerd binary here (a version-matrix chroot)"
	start_docker_job
	fault_dockerd_stop KILL
	wait "$SRUN" && status=0 || status=$?
	cat "$OUT"
	[ "$status" -ne 0 ]
	grep -q "berth: Docker stopped or restarted while this task ran" "$OUT"
	grep -q "cannot reach Docker at $FD_SOCK" "$OUT"
	[ -z "$(grep -x finished "$OUT")" ]
	wait_job_left "$JOB"
	# the step's and the epilog's sweeps found dockerd down: recorded
	[ -e "$BERTH_CLUSTER_DIR/cache/.docker-sweep/$JOB" ]
	fault_dockerd_start
	[ -n "$(leftovers "$JOB")" ] # dockerd kept the container across its restart
	next_docker_job_works
	gone_within_10s "$JOB"
	wait_job_left "$NEXT_JOB"
	nothing_left
}

@test "dockerd stopped under a docker job: the job ends saying why; nothing left once it is back; the next job works" {
	[ -n "$FD_DIR" ] || skip "no dockerd binary here (a version-matrix chroot)"
	start_docker_job
	fault_dockerd_stop TERM
	wait "$SRUN" && status=0 || status=$?
	cat "$OUT"
	[ "$status" -ne 0 ]
	# dockerd's shutdown stops the container with SIGTERM
	grep -q "berth: the container was ended by signal 15 that the job did not send (dockerd stopping" "$OUT"
	wait_job_left "$JOB"
	fault_dockerd_start
	next_docker_job_works
	gone_within_10s "$JOB"
	wait_job_left "$NEXT_JOB"
	nothing_left
}

# ---- slurmd restarted under a containerised step ---------------------------

# processes of job $1 still alive (the test user's, by their environment)
job_processes() {
	local p
	for p in $(pgrep -u berthtest 2>/dev/null); do
		tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_JOB_ID=$1" && echo "$p"
	done
}

# slurmd_restart_under RUNTIME: a step sleeping 6 s, slurmd restarted in its
# middle; it finishes (or is cleaned), nothing is left, the next job works
slurmd_restart_under() {
	local rt=$1 d out pid job
	d=$(job_dir)
	out=$d/out
	as_user srun --container-runtime="$rt" --container-image="$IMG" \
		sh -c 'echo "job=$SLURM_JOB_ID"; sleep 6; echo finished' >"$out" 2>&1 &
	pid=$!
	for _ in $(seq 600); do grep -q job= "$out" && break; sleep 0.1; done
	job=$(grep -o 'job=[0-9]*' "$out" | cut -d= -f2)
	[ -n "$job" ]
	[ -n "$(job_processes "$job")" ] # the step runs
	run bash "$REPO/tests/harness/cluster/restart-slurmd.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	wait "$pid" && status=0 || status=$?
	cat "$out"
	# the step survived the restart: it finished, exit status and output whole
	[ "$status" -eq 0 ]
	grep -qx finished "$out"
	wait_job_left "$job"
	[ -z "$(job_processes "$job")" ]
	for _ in $(seq 100); do # the step's slurmstepd ends just after the job
		pgrep -f "^slurmstepd: \[$job\." >/dev/null || break
		sleep 0.1
	done
	[ -z "$(pgrep -af "^slurmstepd: \[$job\.")" ]
	# no mount of the image left in the node's namespace, no build folder
	[ -z "$(grep " $BERTH_CLUSTER_DIR/cache/" /proc/1/mountinfo)" ]
	[ -z "$(ls -A "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)/tmp" 2>/dev/null)" ]
	run as_user srun --container-runtime="$rt" --container-image="$IMG" sh -c 'echo next-ok'
	[ "$status" -eq 0 ]
	[[ "$output" == *next-ok* ]]
}

@test "slurmd restarted while a charliecloud step runs: it finishes, nothing is left, the next job works" {
	slurmd_restart_under charliecloud
}

@test "slurmd restarted while a singularity step runs: it finishes, nothing is left, the next job works" {
	slurmd_restart_under singularity
}
