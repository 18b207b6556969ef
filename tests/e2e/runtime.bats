#!/usr/bin/env bats
# Jobs through the real Slurm, once per runtime (BERTH_RUNTIME, set by
# tests/run-all.sh): the same behaviour whatever runs the container.

load helpers
bats_require_minimum_version 1.5.0 # run -N (the exit status checks)

setup_file() {
	require_cluster
	export IMG RT=${BERTH_RUNTIME:-charliecloud}
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	# The time-limit case starts here and is checked by the last test:
	# Slurm enforces limits about once a minute, so the other tests run
	# while it waits.
	export TL_DIR TL_SLEEP=$((300000 + RANDOM)) TL_JOB
	TL_DIR=$(job_dir)
	TL_JOB=$(as_user sbatch --parsable --time=1 --container-runtime="$RT" \
		--container-image="$IMG" -o "$TL_DIR/out" --wrap="echo started; exec sleep $TL_SLEEP")
}

# The Slurm release the cluster runs, as MAJOR*100+MINOR (2205, 2411, ...).
slurm_release() {
	sinfo -V | awk '{ split($2, v, "."); print v[1] * 100 + v[2] }'
}

@test "[$BERTH_RUNTIME] srun prints a file only the image has, as the job user" {
	run as_user srun --container-runtime="$RT" --container-image="$IMG" \
		sh -c 'cat /etc/only-in-image; id -u'
	[ "$status" -eq 0 ]
	[[ "$output" == *"only-in-image"* ]]
	[[ "$output" == *"$(id -u berthtest)"* ]]
}

@test "[$BERTH_RUNTIME] --container-writable: the job writes its root, the image and the cache stay as they were" {
	img=$(make_image writable.tar legacy --tag berth/writable:1 --label writable=1)
	if [ "$RT" = singularity ] && singularity_ce && [ "$(BERTH_CONFIG=$BERTH_CLUSTER_DIR/etc/berth.conf \
		"$BERTH_CLUSTER_DIR/bin/berth" config | sed -n 's/^# singularity images here: \([a-z]*\) .*/\1/p')" = sif ]; then
		# a setuid SingularityCE's SIF: its files are root's, as a SIF from
		# `singularity build`; the overlay takes new files, the
		# permissions still hold
		run as_user srun --container-runtime="$RT" --container-image="$img" \
			--container-writable sh -c 'echo new >/newfile && cat /newfile; echo x >/etc/only-in-image'
		[[ "$output" == *new* ]]
		[[ "$output" == *"Permission denied"* ]]
		run as_user srun --container-runtime="$RT" --container-image="$img" sh -c 'touch /newfile'
		[[ "$output" == *"Read-only file system"* ]]
		return 0
	fi
	if [ "$RT" = docker ]; then
		# the image's files are root's and Docker keeps their owners: the
		# root is writable, the permissions still hold
		run as_user srun --container-runtime="$RT" --container-image="$img" \
			--container-writable sh -c 'touch /newfile'
		[[ "$output" == *"Permission denied"* ]]
		run as_user srun --container-runtime="$RT" --container-image="$img" sh -c 'touch /newfile'
		[[ "$output" == *"Read-only file system"* ]]
		return 0
	fi
	# the cached tree's checksum (every file's path, mode and content), or
	# the cached SquashFS file's (charliecloud's default, ImageStorage=auto,
	# where squashfuse works)
	tree_sum() {
		local root
		for root in "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)"/images/*/rootfs.sqfs; do
			[ -f "$root" ] && sha256sum <"$root"
		done
		for root in "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)"/images/*/rootfs \
			"$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)"/images/*/sandbox; do
			[ -d "$root" ] || continue
			(cd "$root" && find . -printf '%p %m %y\n' | sort && find . -type f -print0 |
				sort -z | xargs -0 -r cat) | sha256sum
		done
	}
	as_user srun --container-runtime="$RT" --container-image="$img" true
	before=$(tree_sum)
	run as_user srun --container-runtime="$RT" --container-image="$img" --container-writable \
		sh -c 'echo changed >/etc/only-in-image && echo new >/newfile && cat /etc/only-in-image /newfile'
	[ "$status" -eq 0 ]
	[[ "$output" == *$'changed\nnew'* ]]
	# the next job sees the image itself
	run as_user srun --container-runtime="$RT" --container-image="$img" --container-writable \
		sh -c 'cat /etc/only-in-image; test -e /newfile && echo leaked; true'
	[ "$status" -eq 0 ]
	[[ "$output" == *only-in-image* ]]
	[[ "$output" != *leaked* ]]
	# the cached tree (charliecloud's and singularity's sandbox) was not written
	[ "$(tree_sum)" = "$before" ]
	for root in "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)"/images/*/rootfs \
		"$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)"/images/*/sandbox; do
		[ -d "$root" ] || continue
		[ ! -e "$root/newfile" ]
		if [ -f "$root/etc/only-in-image" ]; then
			! grep -q changed "$root/etc/only-in-image"
		fi
	done
	# without it: read-only, or (ch-run 0.38 may overlay a tmpfs of its
	# own) writable but private: the cache and the next job never see it
	run as_user srun --container-runtime="$RT" --container-image="$img" sh -c 'touch /x'
	if [ "$status" -eq 0 ]; then
		run as_user srun --container-runtime="$RT" --container-image="$img" sh -c 'test ! -e /x'
		[ "$status" -eq 0 ]
		for root in "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)"/images/*/rootfs; do
			[ ! -e "$root/x" ]
		done
	fi
}

@test "[$BERTH_RUNTIME] srun's exit status is the command's (0, 3, 137 after SIGKILL)" {
	run as_user srun --container-runtime="$RT" --container-image="$IMG" true
	[ "$status" -eq 0 ]
	run as_user srun --container-runtime="$RT" --container-image="$IMG" sh -c 'exit 3'
	[ "$status" -eq 3 ]
	run as_user srun --container-runtime="$RT" --container-image="$IMG" sh -c 'kill -9 $$'
	[ "$status" -eq 137 ] || [ "$status" -eq 9 ] # srun reports signals its own way
}

@test "[$BERTH_RUNTIME] srun's exit status: 127 not found, 126 not executable, 125 berth's own failure" {
	local bad
	run -127 as_user srun --container-runtime="$RT" --container-image="$IMG" no-such-command-berth
	echo "# $output"
	[ "$status" -eq 127 ]
	[[ "$output" == *no-such-command-berth* ]]
	run -126 as_user srun --container-runtime="$RT" --container-image="$IMG" /etc/only-in-image
	echo "# $output"
	[ "$status" -eq 126 ]
	[[ "$output" == */etc/only-in-image* ]]
	# an archive that passes submission and fails staging on the node
	bad=$(job_dir)/bad.tar
	echo "not an archive" >"$bad"
	chmod a+r "$bad"
	run as_user srun --container-runtime="$RT" --container-image="$bad" true
	echo "# $output"
	[ "$status" -eq 125 ]
	[[ "$output" == *"berth: "* ]]
}

@test "[$BERTH_RUNTIME] SLURM_* reaches the task, the image's Env wins for its names" {
	run as_user env PATH_MARK=host srun --container-runtime="$RT" --container-image="$IMG" \
		sh -c 'echo "job=$SLURM_JOB_ID path=$PATH"'
	[ "$status" -eq 0 ]
	[[ "$output" == *"job="[0-9]*" path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"* ]]
}

@test "[$BERTH_RUNTIME] srun -n 4: every task in the container with its own SLURM_PROCID" {
	run as_user srun --overcommit -n 4 --container-runtime="$RT" --container-image="$IMG" \
		sh -c 'test -e /etc/only-in-image && echo "task $SLURM_PROCID"'
	[ "$status" -eq 0 ]
	for i in 0 1 2 3; do grep -qx "task $i" <<<"$output"; done
}

@test "[$BERTH_RUNTIME] sbatch: the script runs in the container, stderr apart" {
	d=$(job_dir)
	run as_user sbatch --wait --container-runtime="$RT" --container-image="$IMG" \
		-o "$d/out" -e "$d/err" --wrap='cat /etc/berth-release; echo oops >&2'
	[ "$status" -eq 0 ]
	grep -qx "berth test image" "$d/out"
	grep -qx oops "$d/err"
	! grep -q oops "$d/out"
}

@test "[$BERTH_RUNTIME] --container-mounts: rw output folder, files owned and deletable by the user" {
	d=$(job_dir)
	run as_user srun --container-runtime="$RT" --container-image="$IMG" \
		--container-mounts="$d:/output" sh -c 'mkdir /output/sub && echo data > /output/sub/result.txt'
	[ "$status" -eq 0 ]
	[ "$(stat -c '%U:%G' "$d/sub/result.txt")" = "berthtest:berthtest" ]
	[ "$(cat "$d/sub/result.txt")" = data ]
	run as_user rm -r "$d/sub"
	[ "$status" -eq 0 ]
	[ ! -e "$d/sub" ]
}

@test "[$BERTH_RUNTIME] --container-mounts :ro refuses writes, the host file stays" {
	d=$(job_dir)
	echo original >"$d/input.txt"
	chown berthtest "$d/input.txt"
	run as_user srun --container-runtime="$RT" --container-image="$IMG" \
		--container-mounts="$d:/input:ro" sh -c 'cat /input/input.txt; echo changed > /input/input.txt'
	[ "$status" -ne 0 ]
	[[ "$output" == *"original"* ]]
	[[ "$output" == *"Read-only file system"* ]]
	[ "$(cat "$d/input.txt")" = original ]
}

@test "[$BERTH_RUNTIME] a FUSE mount (bindfs) bound in is readable" {
	d=$(job_dir)
	mkdir "$d/src" "$d/fuse"
	echo through-fuse >"$d/src/f.txt"
	chown -R berthtest "$d/src" "$d/fuse"
	as_user bindfs "$d/src" "$d/fuse"
	run as_user srun --container-runtime="$RT" --container-image="$IMG" \
		--container-mounts="$d/fuse:/fuse:ro" cat /fuse/f.txt
	as_user fusermount -u "$d/fuse" || umount -l "$d/fuse" || true
	[ "$status" -eq 0 ]
	[[ "$output" == *"through-fuse"* ]]
}

@test "[$BERTH_RUNTIME] --container-workdir sets the starting folder" {
	run as_user srun --container-runtime="$RT" --container-image="$IMG" \
		--container-workdir=/data cat hello.txt
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from the image"* ]]
}

@test "[$BERTH_RUNTIME] --container-env=PATH: the job's PATH exactly; without it, the image's" {
	# The image sets PATH (mkimage's default Env): with --container-env the
	# task sees the job's value, byte for byte, and nothing merged into it.
	image_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	job_path=/bin:/usr/bin:/berth-marker
	run as_user env PATH="$job_path" srun --container-runtime="$RT" \
		--container-image="$IMG" --container-env=PATH sh -c 'echo "PATH=$PATH"'
	[ "$status" -eq 0 ]
	[ "$(grep '^PATH=' <<<"$output")" = "PATH=$job_path" ]
	run as_user env PATH="$job_path" srun --container-runtime="$RT" \
		--container-image="$IMG" sh -c 'echo "PATH=$PATH"'
	[ "$status" -eq 0 ]
	[ "$(grep '^PATH=' <<<"$output")" = "PATH=$image_path" ]
}

@test "[$BERTH_RUNTIME] --container-unshare=net: loopback alone, slurmctld's port free inside; BERTH_CONTAINER_UNSHARE too" {
	local port
	port=$(scontrol show config | awk '$1 == "SlurmctldPort" { print $3 }')
	[ -n "$port" ]
	# listen on the port slurmctld holds on the node, and come in through lo
	local listen='sed -n "s/^ *\([^:|]*\):.*/if=\1/p" /proc/net/dev
		(busybox nc -l -p "$1" && echo listened) &
		for i in $(seq 100); do echo hi | busybox nc 127.0.0.1 "$1" && break; sleep 0.05; done
		wait'
	run as_user srun --container-runtime="$RT" --container-image="$IMG" \
		--container-unshare=net sh -c "$listen" sh "$port"
	[ "$status" -eq 0 ]
	[ "$(grep '^if=' <<<"$output")" = "if=lo" ]
	[[ "$output" == *listened* ]]
	run as_user env BERTH_CONTAINER_UNSHARE=uts,net srun --container-runtime="$RT" \
		--container-image="$IMG" sh -c 'sed -n "s/^ *\([^:|]*\):.*/if=\1/p" /proc/net/dev; hostname'
	[ "$status" -eq 0 ]
	[ "$(grep '^if=' <<<"$output")" = "if=lo" ]
	[[ "$output" == *"$(hostname)"* ]]
}

@test "[$BERTH_RUNTIME] a dispatcher's plain job with BERTH_CONTAINER_IMAGE runs containerised" {
	d=$(job_dir)
	run as_user env BERTH_CONTAINER_IMAGE="$IMG" BERTH_CONTAINER_RUNTIME="$RT" \
		sbatch --wait -o "$d/out" --wrap='cat /etc/only-in-image'
	[ "$status" -eq 0 ]
	grep -qx only-in-image "$d/out"
}

@test "[$BERTH_RUNTIME] salloc, then srun --container-image inside the allocation" {
	run as_user salloc -N1 srun --container-runtime="$RT" --container-image="$IMG" cat /etc/only-in-image
	[ "$status" -eq 0 ]
	[[ "$output" == *"only-in-image"* ]]
}

@test "[$BERTH_RUNTIME] a slow download shows progress to srun's user, not silence" {
	[ "$RT" != docker ] || skip "docker fetches through the same berth fetch; one runtime is enough"
	mkdir -p "$E2E_DIR/www"
	coproc HTTPD { exec python3 "$REPO/tests/harness/fixtures/httpd.py" --port 0 --dir "$E2E_DIR/www"; }
	read -r port <&"${HTTPD[0]}"
	# /stall sends headers and a few bytes, then nothing for a minute
	E2E_TIMEOUT=12 run as_user srun --container-runtime="$RT" \
		--container-image="http://127.0.0.1:$port/stall" true
	kill "$HTTPD_PID" 2>/dev/null || true
	echo "$output"
	[[ "$output" == *"berth: downloading: "* ]]
	# throttled: about one line per 5 s, not one per second (counted until
	# timeout stops srun: newer sruns then wait up to 7 s for the step)
	[ "$(sed -n '/^srun: \(got SIG\|forcing\)/q; /berth: downloading/p' <<<"$output" | wc -l)" -le 4 ]
}

@test "[$BERTH_RUNTIME] a host batch script: srun with container options runs contained, without runs on the host" {
	d=$(job_dir)
	run as_user sbatch --wait -o "$d/out" --wrap="srun --container-runtime=$RT \
		--container-image=$IMG cat /etc/only-in-image; srun sh -c 'test -e /etc/only-in-image || echo on-host'"
	[ "$status" -eq 0 ]
	grep -qx only-in-image "$d/out"
	grep -qx on-host "$d/out"
}

@test "[$BERTH_RUNTIME] scancel: no process, container or build folder left" {
	d=$(job_dir)
	n=$((200000 + RANDOM))
	run as_user sbatch --container-runtime="$RT" --container-image="$IMG" -o "$d/out" \
		--wrap="echo started; exec sleep $n"
	job=$(grep -o '[0-9]*$' <<<"$output")
	for _ in $(seq 300); do grep -q started "$d/out" 2>/dev/null && break; sleep 0.1; done
	pgrep -f "sleep $n" >/dev/null
	as_user scancel "$job"
	for _ in $(seq 100); do pgrep -f "sleep $n" >/dev/null || break; sleep 0.1; done
	! pgrep -af "sleep $n"
	# docker: the step's clean-up removes the container within 10 s
	for _ in $(seq 100); do
		[ -z "$(docker ps -aq --filter "label=berth.job=$job" 2>/dev/null)" ] && break
		sleep 0.1
	done
	[ -z "$(docker ps -aq --filter "label=berth.job=$job" 2>/dev/null)" ]
	[ -z "$(ls "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)/tmp")" ]
}

@test "[$BERTH_RUNTIME] stdin reaches the task; stdout and stderr stay apart" {
	d=$(job_dir)
	feed() {
		printf 'one\ntwo\n' | as_user srun --container-runtime="$RT" --container-image="$IMG" \
			sh -c 'cat; echo to-stderr >&2' 2>"$d/err"
	}
	run feed
	[ "$status" -eq 0 ]
	[ "$output" = $'one\ntwo' ]
	grep -qx to-stderr "$d/err"
}

# user_sif DIR: the test image as a SIF file the test user gives (berth
# writes it, with the cluster's singularity binary).
user_sif() {
	local sing
	sing=$(sed -n 's/^SingularityPath=//p' "$BERTH_CLUSTER_DIR/etc/berth.conf" | tail -n1)
	mkdir -p "$1/sifcache"
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$sing" >"$1/sif.conf"
	BERTH_CONFIG=$1/sif.conf "$BERTH_CLUSTER_DIR/bin/berth" pull --runtime singularity \
		--cache-dir "$1/sifcache" "$IMG" >/dev/null
	cp "$1"/sifcache/0/images/*/image*.sif "$1/user.sif"
	rm -rf "$1/sifcache"
	chmod 644 "$1/user.sif"
	echo "$1/user.sif"
}

@test "[$BERTH_RUNTIME] the job's output is the job's own: no runtime chatter, unless --container-verbose" {
	d=$(job_dir)
	img=$IMG
	# singularity: a SIF, where Apptainer has notices to give at every start
	# (INFO: gocryptfs not found ...); a sandbox gets none
	[ "$RT" != singularity ] || img=$(user_sif "$d")
	run as_user sbatch --wait --container-runtime="$RT" --container-image="$img" \
		-o "$d/out" -e "$d/err" --wrap='echo job-out; echo job-err >&2'
	[ "$status" -eq 0 ]
	[ "$(cat "$d/out")" = job-out ]
	[ "$(cat "$d/err")" = job-err ]
	# asked for: the runtime's notices come (Apptainer prints INFO lines at
	# every start; the other runtimes have none to give)
	run as_user sbatch --wait --container-verbose --container-runtime="$RT" \
		--container-image="$img" -o "$d/out2" -e "$d/err2" --wrap='echo job-out'
	[ "$status" -eq 0 ]
	[ "$(cat "$d/out2")" = job-out ]
	# (SingularityCE 3.4.2 has none to give)
	if [ "$RT" = singularity ] && ! singularity_ce; then grep -q '^INFO: ' "$d/err2"; fi
}

@test "[$BERTH_RUNTIME] SLURM_RLIMIT_*: the submitting shell's limits hold in the container" {
	# a setuid exec caps the stack limit at 8 MiB (the kernel's secure
	# exec), and SingularityCE 3.4.2 (Go 1.19) raises the open-file limit
	# to its hard limit: berth cannot set them again after its starter
	! { [ "$RT" = singularity ] && singularity_ce; } ||
		skip "a setuid SingularityCE resets RLIMIT_STACK and RLIMIT_NOFILE (README, releases)"
	run as_user bash -c "ulimit -S -n 321 && ulimit -S -s 4096 && exec srun \
		--container-runtime=$RT --container-image=$IMG sh -c 'echo nofile=\$(ulimit -n) stack=\$(ulimit -s)'"
	[ "$status" -eq 0 ]
	[ "$(grep '^nofile=' <<<"$output")" = "nofile=321 stack=4096" ]
}

@test "[$BERTH_RUNTIME] TaskProlog's exports reach every task" {
	if [ "$(slurm_release)" -lt 2311 ]; then
		skip "Slurm $(sinfo -V | awk '{print $2}'): without spank_prepend_task_argv berth starts its launcher from task_init, before Slurm runs TaskProlog (README, How a job runs)"
	fi
	run as_user srun -n 2 --overcommit --container-runtime="$RT" --container-image="$IMG" \
		sh -c 'test -e /etc/only-in-image && echo "prolog=$BERTH_TASK_PROLOG"'
	[ "$status" -eq 0 ]
	grep -qx "prolog=ran-for-task-0" <<<"$output"
	grep -qx "prolog=ran-for-task-1" <<<"$output"
}

@test "[$BERTH_RUNTIME] time limit: the job is ended, nothing of it left (started in setup_file)" {
	[ -n "$TL_JOB" ]
	wait_job_left "$TL_JOB" 1800 # the limit is 1 min; Slurm checks about every 30 s
	grep -qx started "$TL_DIR/out"
	grep -q "DUE TO TIME LIMIT" "$TL_DIR/out"
	for _ in $(seq 100); do pgrep -f "sleep $TL_SLEEP" >/dev/null || break; sleep 0.1; done
	! pgrep -af "sleep $TL_SLEEP"
	for _ in $(seq 100); do
		[ -z "$(docker ps -aq --filter "label=berth.job=$TL_JOB" 2>/dev/null)" ] && break
		sleep 0.1
	done
	[ -z "$(docker ps -aq --filter "label=berth.job=$TL_JOB" 2>/dev/null)" ]
	[ -z "$(ls "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)/tmp")" ]
}
