#!/usr/bin/env bats
# Bad option values fail at submission, in srun/sbatch, with a message
# that says what to fix; nothing reaches a node.

load helpers

setup_file() {
	require_cluster
	export IMG
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
}

refused() { # expected-phrase CMD...
	local phrase=$1
	shift
	run as_user "$@"
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: "*"$phrase"* ]]
	# refused before any job was created
	[[ "$output" != *"queued and waiting"* ]]
	[[ "$output" != *"Submitted batch job"* ]]
}

@test "malformed --container-mounts is refused at submission" {
	refused "an empty field" srun --container-image="$IMG" --container-mounts=/tmp: true
}

@test "a relative container path in --container-mounts is refused" {
	refused "must be absolute" srun --container-image="$IMG" --container-mounts=/tmp:data true
}

@test "a bad mount mode is refused" {
	refused "unknown flag 'rx'" srun --container-image="$IMG" --container-mounts=/tmp:/data:rx true
}

@test "an empty --container-workdir is refused" {
	refused "needs a value" srun --container-image="$IMG" --container-workdir= true
}

@test "a local image path that does not exist is refused by sbatch too" {
	refused "cannot read /nonexistent/x.tar" sbatch --container-image=/nonexistent/x.tar --wrap=true
}

@test "an unsupported image URL scheme is refused" {
	refused "unsupported scheme" srun --container-image=ftp://example/x.tar true
}

@test "--container-env with something other than names is refused" {
	refused "variable names" srun --container-image="$IMG" --container-env='A=B' true
}

@test "an unknown runtime in BERTH_CONTAINER_RUNTIME is refused like the option" {
	refused "unknown --container-runtime 'podman'" env BERTH_CONTAINER_IMAGE="$IMG" \
		BERTH_CONTAINER_RUNTIME=podman srun true
}

@test "--container-unshare with a namespace berth does not unshare, or a typo, is refused" {
	refused "'pid' is not a namespace berth unshares" srun --container-image="$IMG" \
		--container-unshare=net,pid true
	refused "'nett' is not a namespace berth unshares" sbatch --container-image="$IMG" \
		--container-unshare=nett --wrap=true
	refused "'' is not a namespace berth unshares" env BERTH_CONTAINER_IMAGE="$IMG" \
		BERTH_CONTAINER_UNSHARE=net, srun true
}
