#!/usr/bin/env bats
# Paths a job user chooses cannot hold a node or reach root (issue 23,
# items 1, 4 and 6), through the real cluster as the test user:
#  - an image path that is a FIFO fails at once with a message, on every
#    runtime (the docker archive is opened in a child that is the user, the
#    stagers open without blocking), and the node takes the next job;
#  - PWD=/proc/self/fd in the step's environment does not make a relative
#    image path name slurmstepd's descriptors: relative paths start where
#    srun ran;
#  - an archive compressed with lzop is refused by name: libarchive never
#    runs an external decompressor (as root for docker);
#  - --container-save writes the archive with the user's umask.

load helpers

setup_file() {
	require_cluster
	export IMG UIDT
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	UIDT=$(id -u berthtest)
}

@test "a FIFO as image path fails at once with a message, and the node runs the next job" {
	d=$(job_dir)
	as_user mkfifo "$d/img.tar"
	for rt in charliecloud singularity docker; do
		SECONDS=0
		run as_user srun --container-runtime=$rt --container-image="$d/img.tar" true
		printf '%s: %s (%ss)\n' "$rt" "$output" "$SECONDS"
		[ "$status" -ne 0 ]
		[[ "$output" == *"berth: "*"img.tar is not a regular file (a FIFO): give a docker-save archive"* ]]
		[ "$SECONDS" -lt 30 ]
		node_takes_next_job
	done
}

@test "a FIFO job scancelled ends within the kill timeout" {
	d=$(job_dir)
	as_user mkfifo "$d/img.tar"
	for rt in charliecloud docker; do
		job=$(as_user sbatch --parsable -o /dev/null --container-runtime=$rt \
			--container-image="$d/img.tar" --wrap 'sleep 300')
		# cancel once the step is staging (or already over), not after a guess
		for _ in $(seq 100); do
			st=$(squeue -h -j "$job" -o %T 2>/dev/null)
			[ "$st" = RUNNING ] || [ -z "$st" ] && break
			sleep 0.1
		done
		as_user scancel "$job"
		wait_job_left "$job" 300 # 30 s
		node_takes_next_job
	done
}

@test "PWD=/proc/self/fd in the step's environment: a relative image path starts where srun ran" {
	d=$(job_dir)
	# "./0": under PWD=/proc/self/fd it would name slurmstepd's (or the
	# stager's) own descriptor 0; where srun ran, it is the image.
	cp "$IMG" "$d/0"
	chmod 644 "$d/0"
	for rt in charliecloud docker; do
		run as_user bash -c "cd '$d' && env PWD=/proc/self/fd srun --container-runtime=$rt \
			--container-image=./0 true"
		printf '%s: %s\n' "$rt" "$output"
		[ "$status" -eq 0 ]
		[[ "$output" != *"/proc/self/fd"* ]]
	done
}

@test "an archive compressed with lzop is refused by name on every runtime" {
	command -v lzop >/dev/null || skip "no lzop to make the archive"
	d=$(job_dir)
	lzop -c "$IMG" >"$d/img.tar.lzo"
	chmod 644 "$d/img.tar.lzo"
	for rt in charliecloud singularity docker; do
		run as_user srun --container-runtime=$rt --container-image="$d/img.tar.lzo" true
		printf '%s: %s\n' "$rt" "$output"
		[ "$status" -ne 0 ]
		[[ "$output" == *"berth: "*"img.tar.lzo is compressed with lzop, which berth does not read"* ]]
	done
}

@test "--container-save writes the archive with the user's umask" {
	d=$(job_dir)
	for rt in charliecloud singularity; do
		run as_user bash -c "cd '$d' && umask 077 && srun --container-runtime=$rt \
			--container-image=$IMG --container-save=saved-$rt.tar true"
		printf '%s: %s\n' "$rt" "$output"
		[ "$status" -eq 0 ]
		[ "$(stat -c %a "$d/saved-$rt.tar")" = 600 ]
	done
	run as_user bash -c "cd '$d' && umask 022 && srun --container-runtime=charliecloud \
		--container-image=$IMG --container-save=saved-022.tar true"
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$d/saved-022.tar")" = 644 ]
}
