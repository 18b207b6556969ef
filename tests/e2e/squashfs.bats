#!/usr/bin/env bats
# ImageStorage=squashfs through Slurm, charliecloud: the image staged as
# one SquashFS file, mounted with squashfuse in berth's namespace at every
# step; what the job sees is what the tree gives; writable, named, saved
# and remap-root containers work on top; a node without squashfuse fails
# naming the fix (squashfs) or falls back to the tree, saying so (auto).
# The plugin reads berth.conf at every step: each test sets the keys.

bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	require_cluster
	export CONF=$BERTH_CLUSTER_DIR/etc/berth.conf
	cp "$CONF" "$BATS_FILE_TMPDIR/berth.conf.orig"
	export IMG UIDT
	# an image of this run's own: the cache has no tree of it yet
	IMG=$(make_image "sqfs-$$.tar" legacy --tag berth/sqfs:1 --label "berth.run=$$-$RANDOM")
	UIDT=$(id -u berthtest)
}

teardown_file() {
	[ -n "${IMG:-}" ] && rm -f "$IMG"
	[ -f "$BATS_FILE_TMPDIR/berth.conf.orig" ] && cp "$BATS_FILE_TMPDIR/berth.conf.orig" "$CONF.restore" &&
		mv -f "$CONF.restore" "$CONF" # never missing, never half written
	return 0
}

setup() {
	command -v squashfuse_ll >/dev/null || skip "squashfuse is not installed on the node"
}

# storage VALUE [SquashfusePath]: berth.conf with that ImageStorage.
storage() {
	grep -v -e '^ImageStorage=' -e '^SquashfusePath=' "$BATS_FILE_TMPDIR/berth.conf.orig" >"$CONF.new"
	echo "ImageStorage=$1" >>"$CONF.new"
	[ -z "${2:-}" ] || echo "SquashfusePath=$2" >>"$CONF.new"
	chmod 644 "$CONF.new"
	mv -f "$CONF.new" "$CONF"
}

# names, types, modes, owners, file bytes and link targets (a folder's
# size is its file system's: not compared)
# shellcheck disable=SC2016 # expanded in the container
LISTING='cd / && find bin data opt root usr var -xdev | sort | while read -r f; do
	stat -c "%n %f %u %h" "$f"; [ -L "$f" ] && readlink "$f"
	[ -f "$f" ] && [ ! -L "$f" ] && md5sum "$f"; done; true'

@test "[charliecloud] squashfs: the job sees what the tree gives; the cache holds one file" {
	storage squashfs
	run --separate-stderr as_user srun --container-runtime=charliecloud --container-image="$IMG" \
		sh -c "$LISTING"
	echo "$stderr"
	[ "$status" -eq 0 ]
	sq=$output
	cache=$(sed -n 's/^CacheDir=//p' "$CONF" | tail -1)/$UIDT
	digest=$(grep " rootfs.sqfs $IMG\$" "$cache/conversions.log" | tail -1 | cut -d' ' -f2)
	[ -n "$digest" ]
	entry=$cache/images/${digest#sha256:}
	[ -f "$entry/rootfs.sqfs" ]
	[ ! -e "$entry/rootfs" ]
	run as_user bash -c "BERTH_CONFIG=$CONF $BERTH_CLUSTER_DIR/bin/berth cache ls"
	echo "$output"
	grep -q "^$digest " <<<"$output"
	storage tree
	run --separate-stderr as_user srun --container-runtime=charliecloud --container-image="$IMG" \
		sh -c "$LISTING"
	[ "$status" -eq 0 ]
	[ -d "$entry/rootfs" ]
	diff <(echo "$output") <(echo "$sq")
	[ "$(grep -c '^[0-9a-f]\{32\} ' <<<"$sq")" -gt 5 ]
}

@test "[charliecloud] squashfs: writable, named (kept across steps), saved and remap-root containers" {
	storage squashfs
	d=$(job_dir)
	C="--container-runtime=charliecloud"
	run as_user salloc -Q bash -c "cd $d &&
		srun $C --container-image=$IMG --container-writable sh -c 'echo w >/etc/w && cat /etc/w' &&
		srun $C --container-image=$IMG --container-name=keep sh -c 'echo kept >/made-here' &&
		srun $C --container-name=keep cat /made-here &&
		srun $C --container-image=$IMG sh -c 'test ! -e /made-here && test ! -e /etc/w && echo clean' &&
		srun $C --container-image=$IMG --container-remap-root --container-writable sh -c 'id -u; touch /f && chown 12:34 /f && echo chown-ok' &&
		srun $C --container-image=$IMG --container-mounts=$d:/not/in/image:ro sh -c 'ls /not/in/image >/dev/null && echo mounted' &&
		srun $C --container-name=keep --container-save=$d/saved.tar true && echo saved"
	printf '%s\n' "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -cx w <<<"$output")" -eq 1 ]
	[ "$(grep -cx kept <<<"$output")" -eq 1 ]
	grep -qx clean <<<"$output"
	grep -qx 0 <<<"$output"
	grep -qx chown-ok <<<"$output"
	grep -qx mounted <<<"$output"
	grep -qx saved <<<"$output"
	tar -xOf "$d/saved.tar" manifest.json | grep -q Layers
}

@test "[charliecloud] squashfs without squashfuse: the step fails naming the fix; auto runs the tree and says so" {
	storage squashfs /nonexistent/squashfuse_ll
	run as_user srun --container-runtime=charliecloud --container-image="$IMG" true
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: ImageStorage=squashfs, but cannot run /nonexistent/squashfuse_ll"*"set ImageStorage=tree or auto"* ]]
	storage auto /nonexistent/squashfuse_ll
	run as_user srun --container-runtime=charliecloud --container-image="$IMG" cat /etc/only-in-image
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"berth: ImageStorage=auto: cannot run /nonexistent/squashfuse_ll"*"kept as folders here"* ]]
}

# stub_squashfuse DIR NAME BODY: an executable squashfuse stand-in that logs
# each call to DIR/NAME.calls, then runs BODY
stub_squashfuse() {
	printf '#!/bin/sh\necho "$*" >>%s/%s.calls\n%s\n' "$1" "$2" "$3" >"$1/$2"
	chmod 755 "$1/$2"
	chown "${BERTH_TEST_USER:-berthtest}" "$1/$2"
}

@test "[charliecloud] a squashfuse that runs but cannot serve: auto runs the tree and says so, squashfs refuses naming the fix; the verdict is remembered" {
	d=$(job_dir)
	stub_squashfuse "$d" broken 'echo "squashfuse: cannot load libfuse3.so.3" >&2; exit 1'
	storage auto "$d/broken"
	for i in 1 2; do
		run as_user srun --container-runtime=charliecloud --container-image="$IMG" cat /etc/only-in-image
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" == *only-in-image* ]]
		[[ "$output" == *"berth: ImageStorage=auto: SquashfusePath=$d/broken cannot mount a SquashFS image here"*"it said: squashfuse: cannot load libfuse3.so.3"*"kept as folders here"* ]]
	done
	storage squashfs "$d/broken"
	run as_user srun --container-runtime=charliecloud --container-image="$IMG" true
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: ImageStorage=squashfs, but SquashfusePath=$d/broken cannot mount"*"install a squashfuse that works"*"set ImageStorage=tree or auto"* ]]
	# tried once, by the first step's staging; then remembered in the cache
	cat "$d/broken.calls"
	[ "$(wc -l <"$d/broken.calls")" -eq 1 ]
	# a squashfuse that works is tried once too: later steps only mount
	stub_squashfuse "$d" works "exec $(command -v squashfuse_ll) \"\$@\""
	storage auto "$d/works"
	for i in 1 2; do
		run as_user srun --container-runtime=charliecloud --container-image="$IMG" cat /etc/only-in-image
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" != *"kept as folders"* ]]
	done
	cat "$d/works.calls"
	[ "$(wc -l <"$d/works.calls")" -eq 3 ] # the probe, then one mount per step
}
