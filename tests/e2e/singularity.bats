#!/usr/bin/env bats
# The singularity runtime's image formats through Slurm: the site's
# SingularityImageFormat reaches both the staging on the node and the task's
# launcher, and a SIF the user gives runs as it is.

load helpers

setup_file() {
	require_cluster
	export IMG CONF=$BERTH_CLUSTER_DIR/etc/berth.conf
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	cp "$CONF" "$BATS_FILE_TMPDIR/berth.conf.orig"
}

# The plugin reads berth.conf at every step: no restart needed.
teardown() {
	cp "$BATS_FILE_TMPDIR/berth.conf.orig" "$CONF"
}

entry_of() { # image -> the user's cache entry
	local digest
	digest=$("$REPO/build/berth" inspect "$1" | awk '/^digest/ {print $2}')
	echo "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)/images/${digest#sha256:}"
}

# a fresh image (its own digest) staged with the site's format FORMAT
run_with_format() {
	local img
	img=$(make_image "fmt-$1.tar" legacy --tag "berth/fmt:$1" --label "format=$1")
	echo "SingularityImageFormat=$1" >>"$CONF"
	run as_user srun --container-runtime=singularity --container-image="$img" \
		sh -c 'cat /etc/only-in-image; test -f /.singularity.d/runscript && echo metadata'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = $'only-in-image\nmetadata' ] || [[ "$output" == *$'only-in-image\nmetadata' ]]
	ENTRY=$(entry_of "$img")
}

@test "SingularityImageFormat=sif: the node stages a SIF and the task runs it" {
	run_with_format sif
	[ -f "$ENTRY/image.sif" ]
	[ ! -e "$ENTRY/sandbox" ]
}

@test "SingularityImageFormat=sandbox: the node stages a folder and the task runs it" {
	run_with_format sandbox
	[ -d "$ENTRY/sandbox" ]
	[ ! -e "$ENTRY/image.sif" ]
}

@test "a SIF the user gives runs as it is, relative to the submit folder, nothing converted" {
	d=$(job_dir)
	sing=$(sed -n 's/^SingularityPath=//p' "$CONF" | tail -n1)
	mkdir -p "$d/c"
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$sing" >"$d/sif.conf"
	BERTH_CONFIG=$d/sif.conf "$BERTH_CLUSTER_DIR/bin/berth" pull --runtime singularity \
		--cache-dir "$d/c" "$IMG" >/dev/null
	cp "$d"/c/0/images/*/image.sif "$d/mine.sif"
	rm -rf "$d/c"
	chown berthtest "$d/mine.sif"
	log=$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)/conversions.log
	before=$(cat "$log" 2>/dev/null | wc -l)
	BERTH_SUBMIT_CWD=$d run as_user srun --container-runtime=singularity \
		--container-image=mine.sif cat /etc/only-in-image
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = only-in-image ] || [[ "$output" == *$'\nonly-in-image' ]]
	[ "$(cat "$log" 2>/dev/null | wc -l)" -eq "$before" ]
}
