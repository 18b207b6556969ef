#!/usr/bin/env bats
# pyxis's documented rules for the environment, the entry point and the
# working directory, through the real Slurm, once per runtime (BERTH_RUNTIME,
# set by tests/run-all.sh).

load helpers

setup_file() {
	require_cluster
	export IMG EP_IMG ENV_IMG RT=${BERTH_RUNTIME:-charliecloud}
	conf_save
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	# The entry point talks on both streams, sets a variable for the command
	# and, when asked, writes the environment it sees into /out.
	EP_IMG=$(make_image pyxis-ep.tar legacy --tag berth/pyxis-ep:1 \
		--entrypoint '["/bin/sh","-c","echo ep-out; echo ep-err >&2; [ -z \"$EP_ENV_FILE\" ] || env >\"$EP_ENV_FILE\"; export EP_RAN=yes; exec \"$@\"","ep"]')
	ENV_IMG=$(make_image pyxis-env.tar legacy --tag berth/pyxis-env:1 \
		--env LANG=C.UTF-8 --env IMAGE_VAR=from-image --env TERM=image-term)
}

# the cluster's berth.conf as it was, whatever a test changed
teardown() {
	conf_restore
}


# srun in the container of image $1 (more options and the command follow).
crun() {
	local img=$1
	shift
	as_user srun --container-runtime="$RT" --container-image="$img" "$@"
}

@test "[$BERTH_RUNTIME] --container-entrypoint: the ENTRYPOINT runs, its output hidden; the command's shows" {
	run crun "$EP_IMG" --container-entrypoint \
		sh -c 'echo "cmd-out $EP_RAN"; echo cmd-err >&2'
	[ "$status" -eq 0 ]
	[[ "$output" == *"cmd-out yes"* ]]
	[[ "$output" == *"cmd-err"* ]]
	[[ "$output" != *ep-out* ]]
	[[ "$output" != *ep-err* ]]
}

@test "[$BERTH_RUNTIME] --container-entrypoint-log: the ENTRYPOINT's output shows too" {
	run crun "$EP_IMG" --container-entrypoint --container-entrypoint-log \
		sh -c 'echo "cmd-out $EP_RAN"; echo cmd-err >&2'
	[ "$status" -eq 0 ]
	[[ "$output" == *ep-out* ]]
	[[ "$output" == *ep-err* ]]
	[[ "$output" == *"cmd-out yes"* ]]
	[[ "$output" == *"cmd-err"* ]]
}

@test "[$BERTH_RUNTIME] sbatch --container-entrypoint: the script runs after the quiet ENTRYPOINT" {
	d=$(job_dir)
	run as_user sbatch --wait --container-runtime="$RT" --container-image="$EP_IMG" \
		--container-entrypoint -o "$d/out" -e "$d/err" --wrap='echo "script $EP_RAN"; echo script-err >&2'
	[ "$status" -eq 0 ]
	[ "$(cat "$d/out")" = "script yes" ]
	[ "$(cat "$d/err")" = script-err ]
}

# As pyxis runs it, the entry point sees the image's environment and the
# --container-env names, not the job's (a job's DOCKER_TLS_VERIFY once
# reached it); the command after it sees the job's, values unchanged.
@test "[$BERTH_RUNTIME] the ENTRYPOINT sees the image's environment and --container-env names, the command the job's" {
	d=$(job_dir)
	secret="it's \$HOME \"b\" \\n 100% \`x\`"
	for log in "" --container-entrypoint-log; do
		rm -f "$d/ep.env" "$d/cmd.env"
		# shellcheck disable=SC2086 # $log is one option or none
		run as_user env EP_ENV_FILE=/out/ep.env DOCKER_TLS_VERIFY=1 JOB_SECRET="$secret" \
			srun --container-runtime="$RT" --container-image="$EP_IMG" --container-entrypoint $log \
			--container-env=EP_ENV_FILE --container-mounts="$d:/out" sh -c 'env >/out/cmd.env'
		printf '%s\n' "$output"
		[ "$status" -eq 0 ]
		grep -q '^EP_ENV_FILE=/out/ep.env' "$d/ep.env"
		run grep -e '^DOCKER_TLS_VERIFY=' -e '^SLURM_JOB_ID=' -e '^JOB_SECRET=' -e BERTH_TASK_ENV "$d/ep.env"
		[ "$status" -eq 1 ]
		grep -qx DOCKER_TLS_VERIFY=1 "$d/cmd.env"
		grep -q '^SLURM_JOB_ID=' "$d/cmd.env"
		grep -qxF "JOB_SECRET=$secret" "$d/cmd.env"
		grep -qx EP_RAN=yes "$d/cmd.env"
		run grep BERTH_TASK_ENV "$d/cmd.env"
		[ "$status" -eq 1 ]
	done
}

@test "[$BERTH_RUNTIME] the job's LANG and LC_* stay out unless --container-env names them" {
	run as_user env LANG=xx_XX.UTF-8 LC_ALL=xx_XX.UTF-8 srun --container-runtime="$RT" \
		--container-image="$IMG" sh -c 'echo "LANG=${LANG-unset} LC_ALL=${LC_ALL-unset}"'
	[ "$status" -eq 0 ]
	[[ "$output" == *"LC_ALL=unset"* ]]
	[[ "$output" != *xx_XX* ]]
	# (Apptainer's --cleanenv sets LANG=C where nothing else does)
	[ "$RT" = singularity ] || [[ "$output" == *"LANG=unset"* ]]
	# the image's own locale applies
	run as_user env LANG=xx_XX.UTF-8 srun --container-runtime="$RT" \
		--container-image="$ENV_IMG" sh -c 'echo "LANG=${LANG-unset}"'
	[ "$status" -eq 0 ]
	[[ "$output" == *"LANG=C.UTF-8"* ]]
	# asked for, the job's wins, even over the image's
	run as_user env LANG=xx_XX.UTF-8 LC_ALL=xx_XX.UTF-8 srun --container-runtime="$RT" \
		--container-image="$ENV_IMG" --container-env=LANG \
		sh -c 'echo "LANG=${LANG-unset} LC_ALL=${LC_ALL-unset}"'
	[ "$status" -eq 0 ]
	[[ "$output" == *"LANG=xx_XX.UTF-8 LC_ALL=unset"* ]]
}

@test "[$BERTH_RUNTIME] --container-env for a name the job lacks keeps the image's value" {
	run crun "$ENV_IMG" --container-env=IMAGE_VAR,NOT_ANYWHERE \
		sh -c 'echo "IMAGE_VAR=${IMAGE_VAR-unset} NOT_ANYWHERE=${NOT_ANYWHERE-unset}"'
	[ "$status" -eq 0 ]
	[[ "$output" == *"IMAGE_VAR=from-image NOT_ANYWHERE=unset"* ]]
	# with a job value, the job's wins; without --container-env, the image's
	run as_user env IMAGE_VAR=from-job srun --container-runtime="$RT" \
		--container-image="$ENV_IMG" --container-env=IMAGE_VAR sh -c 'echo "IMAGE_VAR=$IMAGE_VAR"'
	[[ "$output" == *"IMAGE_VAR=from-job"* ]]
	run as_user env IMAGE_VAR=from-job srun --container-runtime="$RT" \
		--container-image="$ENV_IMG" sh -c 'echo "IMAGE_VAR=$IMAGE_VAR"'
	[[ "$output" == *"IMAGE_VAR=from-image"* ]]
}

@test "[$BERTH_RUNTIME] TERM passes from the job, over the image's" {
	run as_user env TERM=xterm-berth srun --container-runtime="$RT" \
		--container-image="$ENV_IMG" sh -c 'echo "TERM=${TERM-unset}"'
	[ "$status" -eq 0 ]
	[[ "$output" == *"TERM=xterm-berth"* ]]
	run as_user env TERM=xterm-berth srun --container-runtime="$RT" \
		--container-image="$IMG" sh -c 'echo "TERM=${TERM-unset}"'
	[[ "$output" == *"TERM=xterm-berth"* ]]
}

@test "[$BERTH_RUNTIME] --container-workdir: a relative path starts at the container's root" {
	run crun "$IMG" --container-workdir=../ pwd
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = / ]
	run crun "$IMG" --container-workdir=etc pwd
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = /etc ]
	run crun "$IMG" --container-workdir=./usr/../etc/ pwd
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = /etc ]
}

# ---- environment equivalents of the options -------------------------------

@test "[$BERTH_RUNTIME] BERTH_CONTAINER_*: the NO_ and READONLY forms, the command line wins, bad values refused" {
	# READONLY=0 is writable; NO_MOUNT_HOME=1 leaves the home out
	run as_user env BERTH_CONTAINER_READONLY=0 BERTH_CONTAINER_NO_MOUNT_HOME=1 \
		srun --container-runtime="$RT" --container-image="$IMG" sh -c \
		'touch /newfile; awk -v h="$HOME" '\''$5 == h { print "HOME-MOUNTED" }'\'' /proc/self/mountinfo'
	printf '%s\n' "$output"
	[[ "$output" != *"Read-only file system"* ]]
	[[ "$output" != *HOME-MOUNTED* ]]
	run as_user env BERTH_CONTAINER_READONLY=0 srun --container-runtime="$RT" \
		--container-image="$IMG" --container-readonly touch /newfile
	[[ "$output" == *"Read-only file system"* ]]
	# a value that is neither yes nor no, and two that disagree
	run as_user env BERTH_CONTAINER_WRITABLE=maybe srun --container-runtime="$RT" \
		--container-image="$IMG" true
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: BERTH_CONTAINER_WRITABLE=maybe: write 1 or 0"* ]]
	run as_user env BERTH_CONTAINER_WRITABLE=1 BERTH_CONTAINER_READONLY=yes \
		srun --container-runtime="$RT" --container-image="$IMG" true
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: BERTH_CONTAINER_WRITABLE and BERTH_CONTAINER_READONLY disagree"* ]]
	[[ "$output" != *"queued and waiting"* ]]
}

@test "[$BERTH_RUNTIME] PyxisEnvCompat=yes: PYXIS_CONTAINER_* are read as the options, BERTH_CONTAINER_* and the command line win" {
	d=$(job_dir)
	echo pyxis-data >"$d/in"
	# without the key, a pyxis dispatcher's variables do nothing
	run as_user env PYXIS_CONTAINER_IMAGE="$IMG" srun sh -c 'cat /etc/only-in-image || echo ON-HOST'
	[[ "$output" == *ON-HOST* ]]
	set_conf PyxisEnvCompat=yes
	run as_user env PYXIS_CONTAINER_IMAGE="$IMG" PYXIS_CONTAINER_READONLY=0 \
		PYXIS_CONTAINER_MOUNTS="$d:/pmnt" srun --container-runtime="$RT" \
		sh -c 'cat /etc/only-in-image /pmnt/in; touch /newfile'
	printf '%s\n' "$output"
	[[ "$output" == *only-in-image* ]]
	[[ "$output" == *pyxis-data* ]]
	[[ "$output" != *"Read-only file system"* ]]
	run as_user env PYXIS_CONTAINER_IMAGE=/nonexistent.tar PYXIS_CONTAINER_WRITABLE=1 \
		BERTH_CONTAINER_READONLY=1 srun --container-runtime="$RT" --container-image="$IMG" \
		touch /newfile
	printf '%s\n' "$output"
	[[ "$output" == *"Read-only file system"* ]]
}
