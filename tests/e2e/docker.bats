#!/usr/bin/env bats
# Docker is root-equivalent: a job gets a container and nothing more.
# Through the real cluster and the real dockerd.

load helpers

setup_file() {
	require_cluster
	curl -sf --unix-socket /var/run/docker.sock http://x/_ping >/dev/null || {
		echo "dockerd is not running (.ci/run starts it)" >&2
		return 1
	}
	export IMG
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
}

dsrun() { as_user srun --container-runtime=docker --container-image="$IMG" "$@"; }

@test "the container runs as the job user, never uid 0" {
	run dsrun id -u
	[ "$status" -eq 0 ]
	[ "$(tail -1 <<<"$output")" = "$(id -u berthtest)" ]
}

@test "no capabilities, no new privileges" {
	run dsrun sh -c 'grep -E "^(CapEff|CapPrm|NoNewPrivs)" /proc/self/status'
	[ "$status" -eq 0 ]
	grep -q 'CapEff:.0000000000000000' <<<"$output"
	grep -q 'CapPrm:.0000000000000000' <<<"$output"
	grep -q 'NoNewPrivs:.1' <<<"$output"
}

@test "the Docker socket is not in the container" {
	run dsrun sh -c 'test -e /var/run/docker.sock && echo present || echo absent'
	[[ "$output" == *absent* ]]
}

@test "binding /etc/shadow or /root is refused (outside DockerAllowedMounts)" {
	run dsrun --container-mounts=/etc/shadow:/x true
	[ "$status" -ne 0 ]
	[[ "$output" == *"DockerAllowedMounts"* ]]
	run dsrun --container-mounts=/root:/x true
	[ "$status" -ne 0 ]
	[[ "$output" == *"DockerAllowedMounts"* ]]
}

@test "an allowed folder the user may not read is refused" {
	d=$(job_dir)
	mkdir "$d/secret"
	chmod 700 "$d/secret" # root's, inside an allowed folder
	run dsrun --container-mounts="$d/secret:/x" true
	[ "$status" -ne 0 ]
	[[ "$output" == *"may not read it"* ]]
}

@test "an archive the user cannot read is not loaded" {
	d=$(job_dir)
	cp "$IMG" "$d/private.tar"
	chmod 600 "$d/private.tar" # root's
	run as_user srun --container-runtime=docker --container-image="$d/private.tar" true
	[ "$status" -ne 0 ]
	[[ "$output" == *"cannot read"* ]]
}

@test "the container is removed after a normal exit" {
	run dsrun sh -c 'echo "job=$SLURM_JOB_ID"'
	[ "$status" -eq 0 ]
	job=$(grep -o 'job=[0-9]*' <<<"$output" | cut -d= -f2)
	[ -n "$job" ]
	gone_within_10s "$job"
}

@test "scancel: the container is removed" {
	d=$(job_dir)
	run as_user sbatch --container-runtime=docker --container-image="$IMG" -o "$d/out" \
		--wrap='echo started; sleep 300'
	job=$(grep -o '[0-9]*$' <<<"$output")
	for _ in $(seq 300); do grep -q started "$d/out" 2>/dev/null && break; sleep 0.1; done
	[ -n "$(leftovers "$job")" ] # it was running in Docker
	as_user scancel "$job"
	gone_within_10s "$job"
}

@test "time limit: the container is removed" {
	d=$(job_dir)
	run as_user sbatch --time=0:05 --container-runtime=docker --container-image="$IMG" \
		-o "$d/out" --wrap='sleep 300'
	job=$(grep -o '[0-9]*$' <<<"$output")
	# Slurm enforces limits once a minute or so: allow for it.
	wait_job_left "$job"
	gone_within_10s "$job"
}

@test "the task SIGKILLed: the container is removed" {
	d=$(job_dir)
	as_user srun --container-runtime=docker --container-image="$IMG" \
		sh -c 'echo "job=$SLURM_JOB_ID"; exec sleep 300' >"$d/out" 2>&1 &
	for _ in $(seq 300); do grep -q job= "$d/out" && break; sleep 0.1; done
	job=$(grep -o 'job=[0-9]*' "$d/out" | cut -d= -f2)
	[ -n "$(leftovers "$job")" ]
	# the user-side task of this job: the launcher relaying for the container
	pid=""
	for p in $(pgrep -u berthtest -f "berth launch --runtime docker"); do
		tr '\0' '\n' <"/proc/$p/environ" | grep -qx "SLURM_JOB_ID=$job" && pid=$p
	done
	[ -n "$pid" ]
	kill -KILL "$pid"
	gone_within_10s "$job"
	wait || true
}

@test "the step's memory limit and CPU count reach the container" {
	# -Q: srun's "queued and waiting" lines (a busy node) are not output
	run dsrun -Q --mem=500M -c 1 sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(sed -n 1p <<<"$output")" = 524288000 ]
	[ "$(sed -n 2p <<<"$output")" = "$(sed -n 3p <<<"$output")" ] # 1 CPU
}

@test "the job epilog sweeps containers labelled with the finished job" {
	d=$(job_dir)
	run as_user sbatch -o "$d/out" --wrap='sleep 3'
	job=$(grep -o '[0-9]*$' <<<"$output")
	# a container left behind by that job (as if its slurmstepd had died)
	docker create --label "berth.job=$job" --label berth.step=stray "$(docker images -q | head -1)" true
	[ -n "$(leftovers "$job")" ]
	wait_job_left "$job" 300
	gone_within_10s "$job"
}

@test "berth docker sweep is root's: a user is refused" {
	run as_user "$BERTH_CLUSTER_DIR/bin/berth" docker sweep --job 1
	[ "$status" -ne 0 ]
	[[ "$output" == *"root side of the Docker runtime"* ]]
}

# dockerd resolves a bind's source itself: berth gives it the object it
# checked (opened as the user, staged under CacheDir/.docker-binds), so a symlink
# the user swaps between an allowed folder and /etc while jobs start never
# gets /etc into a container.
@test "a bind whose path the user swaps during start-up never binds what was not checked" {
	d=$(job_dir)
	mkdir "$d/safe" && touch "$d/safe/marker-safe" && chown -R berthtest "$d/safe"
	ln -s safe "$d/link" && chown -h berthtest "$d/link"
	# the user's swapping loop: link -> safe, link -> /etc, as fast as it goes
	su berthtest -s /bin/sh -c "while :; do ln -sfn /etc '$d/l2' && mv -T '$d/l2' '$d/link';
		ln -sfn safe '$d/l2' && mv -T '$d/l2' '$d/link'; done" &
	swapper=$!
	safe=0
	for i in $(seq 12); do
		run dsrun --container-mounts="$d/link:/mnt" sh -c 'ls /mnt'
		if [[ "$output" == *passwd* ]]; then
			kill "$swapper"
			echo "job $i bound /etc: $output"
			false
		fi
		[[ "$output" == *marker-safe* ]] && safe=$((safe + 1))
		# else refused: the link pointed outside DockerAllowedMounts then
		[ "$status" -eq 0 ] || [[ "$output" == *DockerAllowedMounts* ]]
	done
	kill "$swapper"
	wait "$swapper" 2>/dev/null || true
	echo "safe binds: $safe of 12"
	# nothing staged is left: no folder, no mount
	[ -z "$(ls -A "$BERTH_CLUSTER_DIR/cache/.docker-binds" 2>/dev/null)" ]
	! grep -q " $BERTH_CLUSTER_DIR/cache/.docker-binds/" /proc/self/mountinfo
}

@test "an archive rewritten in place, its old mtime put back, is read again: the memo of its digest does not hide the change" {
	local d img old
	d=$(job_dir)
	img=$d/memo.tar
	docker rmi -f berth/memo:1 >/dev/null 2>&1 || true
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$img" --tag berth/memo:1 --workdir /aa >/dev/null
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$d/new.tar" --tag berth/memo:1 --workdir /bb >/dev/null
	# the same size: only the change time can tell the two files apart
	[ "$(stat -c %s "$img")" = "$(stat -c %s "$d/new.tar")" ]
	chmod 644 "$img"
	run as_user srun --container-runtime=docker --container-image="$img" pwd
	[ "$status" -eq 0 ]
	[ "$(tail -1 <<<"$output")" = /aa ]
	old=$(stat -c %y "$img")
	touch -r "$img" "$d/stamp"
	cat "$d/new.tar" >"$img" # same inode, same size
	touch -r "$d/stamp" "$img" # the old mtime, to the nanosecond
	[ "$(stat -c %y "$img")" = "$old" ]
	run as_user srun --container-runtime=docker --container-image="$img" pwd
	[ "$status" -eq 0 ]
	[ "$(tail -1 <<<"$output")" = /bb ]
	docker rmi -f berth/memo:1 >/dev/null 2>&1 || true
	rm -rf "$d"
}
