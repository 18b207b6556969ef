#!/usr/bin/env bats
# The walking skeleton: a job submitted to a real Slurm runs in a real
# container (charliecloud's ch-run) made from a docker-save archive.

load helpers

setup_file() {
	require_cluster
	export IMG
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
}

@test "srun prints a file that only the image has" {
	[ ! -e /etc/only-in-image ]
	run as_user srun --container-image="$IMG" cat /etc/only-in-image
	[ "$status" -eq 0 ]
	[[ "$output" == *"only-in-image"* ]]
}

@test "the command runs as the job user, not root" {
	run as_user srun --container-image="$IMG" id -u
	[ "$status" -eq 0 ]
	[[ "$output" == *"$(id -u berthtest)"* ]]
}

@test "srun's exit status is the container command's: 0" {
	run as_user srun --container-image="$IMG" true
	[ "$status" -eq 0 ]
}

@test "srun's exit status is the container command's: 3" {
	run as_user srun --container-image="$IMG" sh -c 'exit 3'
	[ "$status" -eq 3 ]
}

@test "a command that exists only in the image runs" {
	[ ! -e /usr/bin/image-only-command ]
	run as_user srun --container-image="$IMG" image-only-command
	[ "$status" -eq 0 ]
	[[ "$output" == *"image-only-command ran"* ]]
}

@test "whiteouts: files deleted by an upper layer are gone in the container" {
	run as_user srun --container-image="$IMG" sh -c 'test ! -e /etc/removed-by-whiteout && ls /opt/old'
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -v '^srun' | tr '\n' ' ')" = "c " ]
}

@test "sbatch -o/-e: stdout and stderr land in their own files" {
	d=$(job_dir)
	run as_user sbatch --wait --container-image="$IMG" -o "$d/out" -e "$d/err" \
		--wrap='echo to-stdout; echo to-stderr >&2'
	[ "$status" -eq 0 ]
	grep -qx to-stdout "$d/out"
	grep -qx to-stderr "$d/err"
	! grep -q to-stderr "$d/out"
	! grep -q to-stdout "$d/err"
}

@test "sbatch runs the batch script itself inside the container" {
	d=$(job_dir)
	cat >"$d/job.sh" <<'SCRIPT'
#!/bin/sh
cat /etc/berth-release
cat /data/hello.txt
SCRIPT
	chmod 755 "$d/job.sh"
	chown berthtest "$d/job.sh"
	BERTH_SUBMIT_CWD=$d run as_user sbatch --wait --container-image="$IMG" -o "$d/out" "$d/job.sh"
	[ "$status" -eq 0 ]
	grep -qx "berth test image" "$d/out"
	grep -qx "hello from the image" "$d/out"
}

@test "a batch script's exit status becomes the job's (sbatch --wait returns it)" {
	d=$(job_dir)
	run as_user sbatch --wait --container-image="$IMG" -o "$d/out" --wrap='exit 7'
	echo "sbatch: $output"
	cat "$d/out" 2>/dev/null || true
	[ "$status" -eq 7 ]
}

@test "plain jobs without container options still run on the host" {
	run as_user srun cat /etc/hostname
	[ "$status" -eq 0 ]
	[[ "$output" == *"$(cat /etc/hostname)"* ]]
}

@test "an unknown runtime is refused at submission with the names that work" {
	run as_user srun --container-image="$IMG" --container-runtime=podman true
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: unknown --container-runtime 'podman'"* ]]
	[[ "$output" == *"charliecloud"* ]]
}

@test "a runtime the site has not enabled is refused, naming AllowedRuntimes" {
	# The test cluster enables all three; a job-level plugstack cannot be
	# changed, so ask the plugin's own check with a site that allows less
	# (conf/config.c berth_config_pick_runtime, also covered in test_conf).
	d=$(job_dir)
	printf 'AllowedRuntimes=charliecloud\n' >"$d/berth.conf"
	run env BERTH_CONFIG="$d/berth.conf" "$REPO/build/berth" pull --runtime docker "$IMG"
	[ "$status" -ne 0 ]
	[[ "$output" == *"AllowedRuntimes"* ]]
}

@test "a missing image fails the step with berth's message, not silence" {
	run as_user srun --container-image=/nonexistent/image.tar true
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: "*"/nonexistent/image.tar"* ]]
}

@test "a file that is not an image archive fails with a clear error" {
	run as_user srun --container-image=/etc/hostname true
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: "*"not a docker-save archive"* ]]
	# said once, where srun's user sees it, not once more by the stager
	[ "$(grep -c 'not a docker-save archive' <<<"$output")" -eq 1 ]
}

@test "an unreachable image URL: one clear error with the cause, no progress lines in it" {
	run as_user srun --container-image=http://127.0.0.1:1/image.tar true
	[ "$status" -ne 0 ]
	[ "$(grep -c 'berth: cannot fetch http://127.0.0.1:1/image.tar' <<<"$output")" -eq 1 ]
	[[ "$output" == *"check that the server is up"* ]]
}

@test "the image is staged in the user's own cache folder, mode 0700" {
	uid=$(id -u berthtest)
	as_user srun --container-image="$IMG" true
	[ "$(stat -c '%u %a' "$BERTH_CLUSTER_DIR/cache/$uid")" = "$uid 700" ]
	ls "$BERTH_CLUSTER_DIR/cache/$uid/images/" | grep -q '^[0-9a-f]\{64\}$'
	# nothing left in the build area
	[ -z "$(ls "$BERTH_CLUSTER_DIR/cache/$uid/tmp/")" ]
}

# The runtime binary missing, not executable, or failing at once: the step
# fails with a message that names the setting, and the next job (with the
# runtime back) runs.  berth.conf is read at every step.
# whatever happens in the test, the site's berth.conf comes back
teardown() {
	conf_restore
}

@test "a runtime binary missing, not executable or exiting 255: clear failure, then recovery" {
	d=$(job_dir)
	printf '#!/bin/sh\nexit 255\n' >"$d/broken" && chmod 755 "$d/broken"
	printf 'not a program\n' >"$d/plain" && chmod 644 "$d/plain"
	for bad in /nonexistent/ch-run "$d/plain" "$d/broken"; do
		set_conf "ChRunPath=$bad"
		run as_user srun --container-runtime=charliecloud --container-image="$IMG" true
		[ "$status" -ne 0 ]
		case $bad in
		"$d/broken") ;; # it ran and said nothing: its status is the step's
		*) [[ "$output" == *"cannot run $bad, the charliecloud runtime (ChRunPath"* ]] ;;
		esac
	done
	conf_restore
	run as_user srun --container-runtime=charliecloud --container-image="$IMG" cat /etc/only-in-image
	[ "$status" -eq 0 ]
	[[ "$output" == *only-in-image* ]]
}
