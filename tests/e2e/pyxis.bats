#!/usr/bin/env bats
# The migration table from pyxis (README, "Coming from pyxis"), row by row,
# through the real Slurm, once per runtime (BERTH_RUNTIME, set by
# tests/run-all.sh).  Each test is named after its row; where a runtime
# cannot do what pyxis does, the row says so and the test checks that the
# job is refused at submission with that reason, before anything is queued.
# The environment, entry point and working-directory rows are in
# pyxis-env.bats.

load helpers

setup_file() {
	require_cluster
	export IMG RT=${BERTH_RUNTIME:-charliecloud} UIDT
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	UIDT=$(id -u berthtest)
}

# srun in the container, from folder $1 (the job's submission folder).
run_in() { # DIR SRUN-ARGS...
	local dir=$1
	shift
	run as_user bash -c "cd '$dir' && srun --container-runtime=$RT --container-image=$IMG $(printf '%q ' "$@")"
	printf '%s\n' "$output" # shown when the test fails
}

# The options field of mount point $1 in the container's mountinfo, printed
# by the job as "MNT <point> <options>".
mount_opts() {
	printf '%s\n' "$output" | awk -v p="$1" '$1 == "MNT" && $2 == p { print $3 }'
}
SHOW_MOUNTS='awk '\''{ print "MNT", $5, $6 }'\'' /proc/self/mountinfo'

# refused_at_submission PHRASE SRUN-ARGS...
refused_at_submission() {
	local phrase=$1
	shift
	run as_user srun --container-runtime="$RT" --container-image="$IMG" "$@"
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: "*"$phrase"* ]]
	[[ "$output" != *"queued and waiting"* ]]
	[[ "$output" != *"step creation"* ]]
}

@test "[$BERTH_RUNTIME] pyxis mounts: SRC:DST, an absolute folder" {
	d=$(job_dir)
	echo data >"$d/in"
	run_in "$d" --container-mounts="$d:/test-mnt" sh -c "cat /test-mnt/in; $SHOW_MOUNTS"
	[ "$status" -eq 0 ]
	[[ "$output" == *data* ]]
	[ -n "$(mount_opts /test-mnt)" ]
}

@test "[$BERTH_RUNTIME] pyxis mounts: a regular file" {
	d=$(job_dir)
	echo script >"$d/s.sh"
	run_in "$d" --container-mounts="$d/s.sh:/script.sh" cat /script.sh
	[ "$status" -eq 0 ]
	[[ "$output" == *script* ]]
}

@test "[$BERTH_RUNTIME] pyxis mounts: a character device (/dev/null:/null)" {
	d=$(job_dir)
	if [ "$RT" = docker ]; then
		# Docker binds only under the site's DockerAllowedMounts (not /dev here)
		run_in "$d" --container-mounts=/dev/null:/null true
		[ "$status" -ne 0 ]
		[[ "$output" == *"DockerAllowedMounts"* ]]
		return 0
	fi
	# SingularityCE 3.4.2 drops a bind whose source is /dev/null ("Skipping
	# /dev/null bind mount: ... already exists in layout")
	! { [ "$RT" = singularity ] && singularity_ce; } ||
		skip "SingularityCE 3.4.2 does not bind /dev/null (README, releases)"
	run_in "$d" --container-mounts=/dev/null:/null sh -c 'test -c /null && echo is-char'
	[ "$status" -eq 0 ]
	[[ "$output" == *is-char* ]]
}

@test "[$BERTH_RUNTIME] pyxis mounts: ./ is the folder the job was submitted from" {
	d=$(job_dir)
	echo here >"$d/marker"
	run_in "$d" --container-mounts=./:/test-mnt cat /test-mnt/marker
	[ "$status" -eq 0 ]
	[[ "$output" == *here* ]]
	mkdir "$d/sub" && echo sub >"$d/sub/m" && chown -R berthtest "$d/sub"
	run_in "$d" --container-mounts=sub:/s cat /s/m
	[ "$status" -eq 0 ]
	[[ "$output" == *sub* ]]
}

# A setuid SingularityCE keeping SIFs makes no tmpfs mount: berth makes it
# in a namespace of its own, where the setuid starter mounts no SIF; the
# step is refused at its start, naming the fix.  True (after checking
# that) there.
tmpfs_needs_sandbox() {
	{ [ "$RT" = singularity ] && singularity_ce; } || return 1
	[ "$(BERTH_CONFIG=$BERTH_CLUSTER_DIR/etc/berth.conf "$BERTH_CLUSTER_DIR/bin/berth" config |
		sed -n 's/^# singularity images here: \([a-z]*\) .*/\1/p')" = sif ] || return 1
	run as_user srun --container-runtime="$RT" --container-image="$IMG" \
		--container-mounts=tmpfs:/scratch true
	[ "$status" -ne 0 ]
	[[ "$output" == *"tmpfs mounts with SingularityCE 3.4.2: this setuid installation needs the sandbox image format"* ]]
}

@test "[$BERTH_RUNTIME] pyxis mounts: several entries" {
	! tmpfs_needs_sandbox || return 0
	d=$(job_dir)
	mkdir "$d/a" "$d/b" && chown berthtest "$d/a" "$d/b"
	run_in "$d" --container-mounts=./a:/one,"$d/b":/two,tmpfs:/three \
		sh -c "$SHOW_MOUNTS"
	[ "$status" -eq 0 ]
	[ -n "$(mount_opts /one)" ]
	[ -n "$(mount_opts /two)" ]
	[ -n "$(mount_opts /three)" ]
}

@test "[$BERTH_RUNTIME] pyxis mounts: :ro refuses writes" {
	d=$(job_dir)
	run_in "$d" --container-mounts="$d:/mnt:ro" touch /mnt/foo
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	[ ! -e "$d/foo" ]
}

@test "[$BERTH_RUNTIME] pyxis mounts: flags joined by + (ro+nosuid+nodev+noexec)" {
	d=$(job_dir)
	if [ "$RT" = docker ]; then
		refused_at_submission "Docker binds cannot be nosuid" \
			--container-mounts="$d:/mnt:ro+nosuid+nodev+noexec" true
		return 0
	fi
	if [ "$RT" = singularity ] && singularity_ce; then # setuid: refused at step start
		run_in "$d" --container-mounts="$d:/mnt:ro+nosuid+nodev+noexec" sh -c "$SHOW_MOUNTS"
		[ "$status" -ne 0 ]
		[[ "$output" == *"noexec binds are not supported with SingularityCE 3.4.2 installed setuid"* ]]
		return 0
	fi
	run_in "$d" --container-mounts="$d:/mnt:ro+nosuid+nodev+noexec" sh -c "$SHOW_MOUNTS"
	[ "$status" -eq 0 ]
	opts=$(mount_opts /mnt)
	for flag in ro nosuid nodev noexec; do
		[[ ",$opts," == *",$flag,"* ]] || { echo "no $flag in $opts"; false; }
	done
}

@test "[$BERTH_RUNTIME] pyxis mounts: propagation flags each runtime can or cannot give" {
	d=$(job_dir)
	case $RT in
	charliecloud | docker)
		run_in "$d" --container-mounts="$d:/mnt:rprivate+ro" sh -c \
			'grep " /mnt " /proc/self/mountinfo'
		[ "$status" -eq 0 ]
		# private: no shared:N or master:N between the options and "-"
		line=$(printf '%s\n' "$output" | grep ' /mnt ')
		[[ "${line%% - *}" != *shared:* && "${line%% - *}" != *master:* ]]
		;;
	singularity)
		refused_at_submission "decides the propagation" --container-mounts="$d:/mnt:rprivate" true
		;;
	esac
	refused_at_submission "unbindable" --container-mounts="$d:/mnt:unbindable+ro" true
}

@test "[$BERTH_RUNTIME] pyxis mounts: a '..' escape or a relative target is refused at submission" {
	refused_at_submission "must be absolute" --container-mounts=/home:../home true
	refused_at_submission "'..'" --container-mounts=/home:/x/../../home true
	refused_at_submission "empty field" --container-mounts=/tmp: true
	refused_at_submission "empty item" --container-mounts=/tmp:/a, true
	refused_at_submission "unknown flag 'rx'" --container-mounts=/tmp:/a:rx true
}

@test "[$BERTH_RUNTIME] pyxis mounts: the short form SRC binds at the same path" {
	d=$(job_dir)
	echo short >"$d/s"
	run_in "$d" --container-mounts="$d" cat "$d/s"
	[ "$status" -eq 0 ]
	[[ "$output" == *short* ]]
}

@test "[$BERTH_RUNTIME] pyxis mounts: tmpfs:DST with size= and noexec" {
	! tmpfs_needs_sandbox || return 0
	d=$(job_dir)
	run_in "$d" --container-mounts=tmpfs:/scratch:size=2m+noexec sh -c \
		"echo x >/scratch/f && cat /scratch/f && df -k /scratch | tail -1; $SHOW_MOUNTS"
	[ "$status" -eq 0 ]
	[[ "$output" == *x* ]]
	# 2 MiB = 2048 KiB
	printf '%s\n' "$output" | grep -Eq '^tmpfs +2048 '
	opts=$(mount_opts /scratch)
	[[ ",$opts," == *",noexec,"* ]]
}

@test "[$BERTH_RUNTIME] pyxis mounts: tmpfs options of tmpfs(5) pass through (nr_inodes=, huge=), checked" {
	! tmpfs_needs_sandbox || return 0
	d=$(job_dir)
	SUPER='awk '\''$5 == "/scratch" { print "SUPER", $NF }'\'' /proc/self/mountinfo'
	if [ "$RT" = docker ]; then
		# Docker's tmpfs takes nr_inodes= but not huge=
		refused_at_submission "Docker's tmpfs cannot take 'huge=within_size'" \
			--container-mounts=tmpfs:/scratch:nr_inodes=64+huge=within_size true
		run_in "$d" --container-mounts=tmpfs:/scratch:nr_inodes=64 sh -c "$SUPER"
	else
		run_in "$d" --container-mounts=tmpfs:/scratch:nr_inodes=64+huge=within_size sh -c "$SUPER"
		[[ "$output" == *huge=within_size* ]]
	fi
	[ "$status" -eq 0 ]
	[[ "$output" == *SUPER*nr_inodes=64* ]]
	refused_at_submission "'huge=sometimes' is not a value tmpfs(5) takes" \
		--container-mounts=tmpfs:/scratch:huge=sometimes true
	refused_at_submission "unknown tmpfs option 'noswap'" --container-mounts=tmpfs:/scratch:noswap true
}

@test "[$BERTH_RUNTIME] pyxis mounts: umount:DST leaves out a mount the runtime makes, where it can" {
	d=$(job_dir)
	if [ "$RT" = charliecloud ]; then
		# ch-run binds the node's /etc/passwd (with the user) over the
		# image's; umount:/etc/passwd leaves the image's in place
		run_in "$d" --container-mounts=umount:/etc/passwd cat /etc/passwd
		[ "$status" -eq 0 ]
		[[ "$output" == *"root:x:0:0:root:/root:/bin/sh"* ]]
		[[ "$output" != *berthtest* ]]
		run_in "$d" cat /etc/passwd
		[[ "$output" == *berthtest* ]]
		refused_at_submission "charliecloud can leave out only its /etc/passwd and /etc/group" \
			--container-mounts=umount:/dev/shm true
	else
		refused_at_submission "umount:/etc/passwd: $RT cannot leave out a mount it makes" \
			--container-mounts=umount:/etc/passwd true
	fi
	refused_at_submission "write umount:/DST, with no flags" --container-mounts=umount:/etc/passwd:ro true
}

@test "[$BERTH_RUNTIME] pyxis mounts: a missing source is named by berth, at submission or at the step's start" {
	d=$(job_dir)
	# the submitting host sees the folder that would hold it: refused there
	refused_at_submission "source path does not exist: $d/absent" --container-mounts="$d/absent:/x" true
	# it does not even see that folder (a node-local path?): the step's start says it
	run_in "$d" --container-mounts="$d/no-parent/absent:/x" true
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: --container-mounts: source path does not exist: $d/no-parent/absent"* ]]
}

@test "[$BERTH_RUNTIME] pyxis mounts: targets the image lacks are made outside the cached image" {
	d=$(job_dir)
	target=/pyxis-made-$RANDOM/deep
	run_in "$d" --container-mounts="$d:$target,$d:/etc/made-file-$RANDOM" sh -c \
		"test -d $target && echo made"
	[ "$status" -eq 0 ]
	[[ "$output" == *made* ]]
	# the cached trees (charliecloud's rootfs, singularity's sandbox) hold no trace
	[ -z "$(find "$BERTH_CLUSTER_DIR/cache/$UIDT/images" -maxdepth 3 -name 'pyxis-made-*' \
		2>/dev/null)" ]
	[ -z "$(find "$BERTH_CLUSTER_DIR/cache/$UIDT/images" -maxdepth 4 -name 'made-file-*' \
		2>/dev/null)" ]
}

@test "[$BERTH_RUNTIME] pyxis mounts: nested, child first: the input stays read-only inside the output" {
	d=$(job_dir)
	mkdir "$d/in" "$d/out"
	echo input >"$d/in/input.txt"
	chown -R berthtest "$d/in" "$d/out"
	# the input is no folder of the output: its mount point is made there,
	# and the working folder inside the output too (as Docker makes them)
	run_in "$d" --container-mounts="$d/in:/mnt/out/in:ro,$d/out:/mnt/out" \
		--container-workdir=/mnt/out/w sh -c \
		'cat /mnt/out/in/input.txt; pwd; echo r >/mnt/out/result; echo x >/mnt/out/in/x && echo LEAK'
	[[ "$output" == *input* ]]
	[[ "$output" == *"Read-only file system"* ]]
	[[ "$output" == *"/mnt/out/w"* ]]
	[[ "$output" != *LEAK* ]]
	[ "$(cat "$d/out/result")" = r ]
	[ "$(stat -c %U "$d/out/in")" = berthtest ]
	[ ! -e "$d/out/in/x" ] && [ ! -e "$d/in/x" ]
}

# ch-run 0.31 nests two user namespaces (the user is 0 in the outer one),
# so the map's second field is 0 there; what holds everywhere is the first
# field, the length 1, and that files the container writes are the user's.
@test "[$BERTH_RUNTIME] pyxis remap-root: --container-remap-root is uid 0 inside, the user outside" {
	d=$(job_dir)
	if [ "$RT" = docker ]; then
		refused_at_submission "Docker runs containers without a user namespace" \
			--container-remap-root true
		return 0
	fi
	run_in "$d" --container-remap-root --container-mounts="$d:/out" \
		sh -c 'id -u; cat /proc/self/uid_map; grep Seccomp: /proc/self/status; touch /out/by-root'
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" | grep -qx 0
	map=$(printf '%s\n' "$output" | grep -E '^ *[0-9]+ +[0-9]+ +[0-9]+$')
	if [ "$RT" = singularity ] && singularity_ce; then
		# SingularityCE's --fakeroot: 0 is the user, then the user's
		# /etc/subuid range; chown is real, no filter
		read -r inside outside len <<<"$(head -n1 <<<"$map")"
		[ "$inside" -eq 0 ] && [ "$outside" -eq "$UIDT" ] && [ "$len" -eq 1 ]
		read -r inside outside len <<<"$(sed -n 2p <<<"$map")"
		[ "$inside" -eq 1 ] && [ "$len" -eq 65536 ]
		printf '%s\n' "$output" | grep -Eq "^Seccomp:[[:space:]]+0"
		[ "$(stat -c %u "$d/by-root")" -eq "$UIDT" ]
		return 0
	fi
	[ "$(echo "$map" | wc -l)" -eq 1 ]
	read -r inside outside len <<<"$map"
	[ "$inside" -eq 0 ] && [ "$len" -eq 1 ]
	[ "$RT" != singularity ] || [ "$outside" -eq "$UIDT" ]
	printf '%s\n' "$output" | grep -Eq "^Seccomp:[[:space:]]+2"
	[ "$(stat -c %u "$d/by-root")" -eq "$UIDT" ]
}

# The home is where the job's $HOME (else the passwd entry) says, not
# /home/$USER: here a folder outside /home, given as the job's HOME.  Under
# --container-remap-root it is bound at /root, root's home, as pyxis does.
@test "[$BERTH_RUNTIME] pyxis home: the job's \$HOME outside /home, at /root under remap-root" {
	[ "$RT" != docker ] || skip "Docker: berth binds no home (only DockerAllowedMounts)"
	local h
	h=$(job_dir)
	echo home-marker >"$h/marker" && chown berthtest "$h/marker"
	HOME=$h BERTH_SUBMIT_ENV=HOME run as_user srun --container-runtime="$RT" \
		--container-image="$IMG" --container-mount-home sh -c 'echo "H=$HOME"; cat "$HOME/marker"'
	printf '%s\n' "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"H=$h"* && "$output" == *home-marker* ]]
	HOME=$h BERTH_SUBMIT_ENV=HOME run as_user srun --container-runtime="$RT" \
		--container-image="$IMG" --no-container-mount-home sh -c "cat '$h/marker'"
	[[ "$output" != *home-marker* ]]
	if [ "$RT" = singularity ] && singularity_ce; then
		return 0 # its remapped root is the previous rows'
	fi
	HOME=$h BERTH_SUBMIT_ENV=HOME run as_user srun --container-runtime="$RT" \
		--container-image="$IMG" --container-remap-root sh -c 'echo "H=$HOME"; cat /root/marker'
	printf '%s\n' "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"H=/root"* && "$output" == *home-marker* ]]
}

@test "[$BERTH_RUNTIME] pyxis remap-root: --no-container-remap-root keeps the user's own id" {
	run as_user srun --container-runtime="$RT" --container-image="$IMG" --no-container-remap-root \
		sh -c 'id -u; cat /proc/self/uid_map; grep Seccomp: /proc/self/status'
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" | grep -qx "$UIDT"
	# neither has a setuid SingularityCE's: the map is the host's
	if [ "$RT" != docker ] && ! { [ "$RT" = singularity ] && singularity_ce; }; then
		read -r inside outside len <<<"$(printf '%s\n' "$output" | grep -E '^ *[0-9]+ +[0-9]+ +[0-9]+$')"
		[ "$inside" -eq "$UIDT" ] && [ "$len" -eq 1 ]
		[ "$RT" != singularity ] || [ "$outside" -eq "$UIDT" ]
	fi
	# nothing is faked without remapping
	[ "$RT" = docker ] || printf '%s\n' "$output" | grep -Eq "^Seccomp:[[:space:]]+0"
}

@test "[$BERTH_RUNTIME] pyxis remap-root: chown and su succeed as remapped root, not without" {
	[ "$RT" != docker ] || skip "refused for docker (previous rows)"
	if [ "$RT" = singularity ] && singularity_ce; then
		# SingularityCE 3.4.2 mounts no overlay under --fakeroot (it would
		# ignore --writable-tmpfs): refused at the step's start
		run as_user srun --container-runtime="$RT" --container-image="$IMG" --container-writable \
			--container-remap-root true
		[ "$status" -ne 0 ]
		[[ "$output" == *"--container-writable with --container-remap-root on SingularityCE 3.4.2"* ]]
		return 0
	fi
	run as_user srun --container-runtime="$RT" --container-image="$IMG" --container-writable \
		--container-remap-root sh -c 'touch /f && chown 123:456 /f && echo chown-ok &&
			echo "pkg:x:4242:4242::/:/bin/sh" >>/etc/passwd &&
			busybox su pkg -s /bin/sh -c "echo su-ok"'
	[ "$status" -eq 0 ]
	[[ "$output" == *chown-ok* ]]
	[[ "$output" == *su-ok* ]]
	run as_user srun --container-runtime="$RT" --container-image="$IMG" --container-writable \
		sh -c 'touch /f && chown 123:456 /f'
	[ "$status" -ne 0 ]
}

# The cluster's berth.conf, restored after a test that changed it.
teardown() {
	conf_restore
}

# enroot's ENROOT_ROOTFS_WRITABLE: the site's ContainerWritable=yes makes
# the root writable unless the job says --container-readonly (or
# BERTH_CONTAINER_READONLY=1); the plugin reads berth.conf at every step.
@test "[$BERTH_RUNTIME] pyxis writable: ContainerWritable=yes, --container-readonly overrides it" {
	set_conf ContainerWritable=yes
	# (Docker and a setuid SingularityCE's SIF keep the image's files
	# root's: the write is then refused for permission, not a read-only root)
	try='touch /site-w 2>&1; echo tried'
	run as_user srun --container-runtime="$RT" --container-image="$IMG" sh -c "$try"
	printf '%s\n' "$output"
	[[ "$output" == *tried* && "$output" != *"Read-only file system"* ]]
	run as_user srun --container-runtime="$RT" --container-image="$IMG" --container-readonly sh -c "$try"
	[[ "$output" == *"Read-only file system"* ]]
	BERTH_CONTAINER_READONLY=1 run as_user srun --container-runtime="$RT" --container-image="$IMG" sh -c "$try"
	[[ "$output" == *"Read-only file system"* ]]
}

@test "[$BERTH_RUNTIME] pyxis options: contradictory pairs and empty items are refused at submission" {
	refused_at_submission "both --container-writable and --container-readonly" \
		--container-writable --container-readonly true
	refused_at_submission "both --container-remap-root and --no-container-remap-root" \
		--container-remap-root --no-container-remap-root true
	refused_at_submission "both --container-mount-home and --no-container-mount-home" \
		--container-mount-home --no-container-mount-home true
	refused_at_submission "both --container-entrypoint and --no-container-entrypoint" \
		--container-entrypoint --no-container-entrypoint true
	refused_at_submission "no empty item" --container-env=FOO, true
	refused_at_submission "no empty item" --container-env=,FOO true
}

# ---- --container-name ---------------------------------------------------------

# Runs a whole allocation's script as the test user; prints its output.
in_alloc() { # [SALLOC-OPTS...] -- SCRIPT
	local opts=()
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	run as_user salloc -Q "${opts[@]}" bash -c "$1"
	printf '%s\n' "$output" # shown when the test fails
}

# A site that keeps singularity images as SIFs (SingularityImageFormat, or
# auto on a setuid installation) runs no named container: berth says so
# when the step starts, naming the fix.  True (after checking that) there.
named_needs_sandbox() {
	[ "$RT" = singularity ] || return 1
	[ "$(BERTH_CONFIG=$BERTH_CLUSTER_DIR/etc/berth.conf "$BERTH_CLUSTER_DIR/bin/berth" config |
		sed -n 's/^# singularity images here: \([a-z]*\) .*/\1/p')" = sif ] || return 1
	run as_user srun --container-runtime="$RT" --container-image="$IMG" --container-name=nsif true
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: --container-name with singularity needs the sandbox image format"* ]]
}

@test "[$BERTH_RUNTIME] pyxis name: a named container keeps its changes for later steps; others do not see them" {
	! named_needs_sandbox || return 0
	if [ "$RT" = docker ]; then
		refused_at_submission "keeps or saves none" --container-name=n1 true
		return 0
	fi
	C="--container-runtime=$RT"
	in_alloc -- "
		srun $C --container-image=$IMG --container-name=keep sh -c 'echo kept >/made-here' &&
		srun $C --container-name=keep cat /made-here &&
		srun $C --container-image=$IMG --container-name=keep cat /made-here &&
		srun $C --container-image=$IMG sh -c 'test ! -e /made-here && echo plain-clean' &&
		srun $C --container-image=$IMG --container-name=other sh -c 'test ! -e /made-here && echo other-clean'"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | grep -c '^kept$')" -eq 2 ]
	[[ "$output" == *plain-clean* ]]
	[[ "$output" == *other-clean* ]]
}

@test "[$BERTH_RUNTIME] pyxis name: the modes create, exec, no_create, no_exec, and a bad name" {
	! named_needs_sandbox || return 0
	[ "$RT" != docker ] || skip "refused for docker (previous row)"
	C="--container-runtime=$RT"
	in_alloc -- "
		srun $C --container-image=$IMG --container-name=m:no_create true; echo rc1=\$?
		srun $C --container-name=m:exec true; echo rc2=\$?
		srun $C --container-image=$IMG --container-name=m:create true; echo rc3=\$?
		srun $C --container-image=$IMG --container-name=m:create true; echo rc4=\$?
		srun $C --container-name=missing true; echo rc5=\$?
		srun --overlap $C --container-name=m sh -c 'sleep 4' &
		sleep 2; srun --overlap $C --container-name=m:no_exec true; echo rc6=\$?; wait"
	[[ "$output" == *"there is no container of that name"* ]]
	[[ "$output" == *rc1=1* && "$output" == *rc2=1* && "$output" == *rc3=0* ]]
	[[ "$output" == *"already exists"* && "$output" == *rc4=1* ]]
	[[ "$output" == *"no container named missing"* && "$output" == *rc5=1* ]]
	[[ "$output" == *"no_exec does not join it"* && "$output" == *rc6=1* ]]
	refused_at_submission "a name is letters" --container-name=/tmp/foo true
	refused_at_submission "the mode must be" --container-name=x:sometimes true
}

@test "[$BERTH_RUNTIME] pyxis name: the tasks of a step share one container, and a step joins a running one" {
	! named_needs_sandbox || return 0
	[ "$RT" != docker ] || skip "refused for docker"
	C="--container-runtime=$RT"
	if [ "$RT" = singularity ] && singularity_ce; then
		# a setuid SingularityCE's --fakeroot cannot map its subuid range in
		# the namespace berth keeps the layer in: refused at the step's start
		run as_user srun $C --container-image="$IMG" --container-name=pkg --container-remap-root true
		[ "$status" -ne 0 ]
		[[ "$output" == *"--container-remap-root with a named container on SingularityCE 3.4.2 installed setuid"* ]]
		return 0
	fi
	in_alloc -n 2 -- "
		srun -n 2 $C --container-image=$IMG --container-name=shared \
			sh -c 'touch /task-\$SLURM_PROCID; sleep 2; ls -d /task-0 /task-1 && echo both-seen'
		srun -n 1 --overlap $C --container-name=shared sh -c 'echo \$\$ >/running-pid; sleep 5' &
		sleep 2
		srun -n 1 --overlap $C --container-name=shared:exec --container-mounts=/tmp:/ignored \
			sh -c 'cat /running-pid >/dev/null && ls -d /task-0 && echo joined;
				test -e /ignored || echo not-mounted; exit 3'
		echo exec-rc=\$?; wait"
	[ "$(printf '%s\n' "$output" | grep -c '^both-seen$')" -eq 2 ]
	[[ "$output" == *joined* ]]
	[[ "$output" == *exec-rc=3* ]]
	# the mounts of a step that joins are not made, and berth says so
	[[ "$output" == *not-mounted* ]]
	[[ "$output" == *"berth: --container-mounts is ignored: this step joins the running container shared"* ]]
	# --container-unshare: the task that joins is in the container's own
	# network too (loopback alone), not the node's.  Charliecloud only: on
	# the singularity stand-in a task that joins at once can find the
	# container before its /proc and /sys are mounted (with or without
	# this option; left for a fix of its own)
	[ "$RT" = charliecloud ] || return 0
	in_alloc -n 2 -- "
		srun -n 2 $C --container-image=$IMG --container-name=iso --container-unshare=net,uts \
			sh -c 'sleep 2; echo net=\$(readlink /proc/self/ns/net) \$(ls /sys/class/net)'"
	local nets
	nets=$(printf '%s\n' "$output" | sed -n 's/^net=//p')
	[ "$(wc -l <<<"$nets")" -eq 2 ]
	[ "$(sort -u <<<"$nets" | wc -l)" -eq 1 ]
	[[ "$nets" == *"] lo" ]]
	[[ "$nets" != *"$(readlink /proc/self/ns/net)"* ]]
}

@test "[$BERTH_RUNTIME] pyxis name: JOBID.STEPID joins a running unnamed step's container" {
	[ "$RT" != docker ] || skip "refused for docker (no named containers)"
	C="--container-runtime=$RT"
	# a step runs unnamed; another joins it by JOBID.STEPID, the id the
	# first one printed (which srun gets id 0 is a race), once it printed
	# it (at most 60 s: a cold SIF), retried at most 5 s
	in_alloc -- "
		first_out=\$(mktemp)
		srun --overlap $C --container-image=$IMG sh -c 'echo FIRST \$(readlink /proc/self/ns/mnt) \$SLURM_STEP_ID; sleep 8' >\$first_out &
		for i in \$(seq 240); do
			first=\$(awk '\$1 == \"FIRST\" { print \$3 }' \$first_out)
			[ -z \"\$first\" ] || break
			sleep 0.25
		done
		for i in \$(seq 20); do
			out=\$(srun --overlap $C --container-name=\$SLURM_JOB_ID.\$first --container-mounts=/tmp:/ignored \\
				sh -c 'echo JOINED \$(readlink /proc/self/ns/mnt) step=\$SLURM_STEP_ID; cat /etc/only-in-image' 2>&1) && break
			[[ \"\$out\" != *'belong to root'* ]] || break
			sleep 0.25
		done
		cat \$first_out; rm -f \$first_out
		echo \"\$out\"
		srun --overlap $C --container-name=\$SLURM_JOB_ID.77 true; echo none-rc=\$?
		srun --overlap $C --container-name=\$SLURM_JOB_ID.\$first:create true; echo create-rc=\$?
		scancel \$SLURM_JOB_ID.\$first; wait"
	if [ "$RT" = singularity ] && singularity_ce; then
		# a setuid SingularityCE's namespaces are root's: the user cannot enter them
		[[ "$output" == *"runs in a container whose namespaces belong to root (a runtime installed setuid)"* ]]
	else
		first=$(printf '%s\n' "$output" | awk '$1 == "FIRST" { print $2 }')
		[ -n "$first" ]
		[[ "$output" == *"JOINED $first step="* ]]
		[[ "$output" == *only-in-image* ]]
		[[ "$output" == *"berth: --container-mounts is ignored: this step joins the running container"* ]]
	fi
	[[ "$output" == *"no step "*".77 of yours runs in a container on this node"* ]]
	[[ "$output" == *none-rc=1* ]]
	[[ "$output" == *"JOBID.STEPID names a running step"* && "$output" == *create-rc=1* ]]
}

@test "[$BERTH_RUNTIME] pyxis name: remapped root's changes persist (pyxis's package install)" {
	! named_needs_sandbox || return 0
	[ "$RT" != docker ] || skip "refused for docker"
	C="--container-runtime=$RT"
	if [ "$RT" = singularity ] && singularity_ce; then
		# a setuid SingularityCE's --fakeroot cannot map its subuid range in
		# the namespace berth keeps the layer in: refused at the step's start
		run as_user srun $C --container-image="$IMG" --container-name=pkg --container-remap-root true
		[ "$status" -ne 0 ]
		[[ "$output" == *"--container-remap-root with a named container on SingularityCE 3.4.2 installed setuid"* ]]
		return 0
	fi
	in_alloc -- "
		srun $C --container-image=$IMG --container-name=pkg --container-remap-root sh -c \
			'mkdir -p /opt/tool && echo v1 >/opt/tool/version && chown -R 123:456 /opt/tool' &&
		srun $C --container-name=pkg cat /opt/tool/version"
	[ "$status" -eq 0 ]
	[[ "$output" == *v1* ]]
}

# pyxis's most common use of a writable or named container: install a
# package.  dpkg makes each new folder as NAME.dpkg-new and renames it into
# place; on an overlay mounted in a user namespace without userxattr that
# rename failed with EXDEV ("Invalid cross-device link").  The image is a
# busybox one with the host's dpkg and apt-get (fixtures/dpkg-image.sh).
@test "[$BERTH_RUNTIME] pyxis writable: dpkg -i and apt-get install of a local .deb, writable and named" {
	if [ "$RT" = docker ]; then
		# dpkg needs root, and Docker has no remapped root here
		refused_at_submission "Docker runs containers without a user namespace" \
			--container-writable --container-remap-root true
		return 0
	fi
	! named_needs_sandbox || return 0
	if [ "$RT" = singularity ] && singularity_ce; then
		# a setuid SingularityCE makes no writable layer under --fakeroot
		run as_user srun --container-runtime="$RT" --container-image="$IMG" --container-writable \
			--container-remap-root true
		[ "$status" -ne 0 ]
		[[ "$output" == *"--container-writable with --container-remap-root on SingularityCE 3.4.2"* ]]
		return 0
	fi
	local debs=$IMAGES/debs
	if [ ! -e "$IMAGES/dpkg.tar" ]; then
		mkdir -p "$debs"
		bash "$REPO/tests/harness/fixtures/dpkg-image.sh" "$IMAGES/dpkg.tar" "$debs"
		chmod 755 "$debs" && chmod 644 "$IMAGES/dpkg.tar" "$debs"/*
	fi
	for mode in --container-writable --container-name=pkgs; do
		run as_user srun --container-runtime="$RT" --container-image="$IMAGES/dpkg.tar" \
			--container-remap-root "$mode" --container-mounts="$debs:/debs:ro" sh -c '
			/usr/bin/dpkg -i /debs/berth-hello.deb && cat /usr/share/berth-hello/hello &&
			/usr/bin/dpkg -r berth-hello && /usr/bin/apt-get install -y /debs/berth-hello.deb &&
			/usr/bin/dpkg-query -W -f="\${Status}\n" berth-hello && ls /usr/lib/berth-hello/sub'
		printf '%s\n' "$output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"hello from a package"* ]]
		[[ "$output" == *"install ok installed"* ]]
		[[ "$output" == *$'\nlib'* ]]
	done
}

@test "[$BERTH_RUNTIME] pyxis name: berth ps lists, berth rm removes, the job's end removes the rest" {
	! named_needs_sandbox || return 0
	[ "$RT" != docker ] || skip "refused for docker"
	C="--container-runtime=$RT"
	if [ "$RT" = singularity ] && singularity_ce; then
		# a setuid SingularityCE's --fakeroot cannot map its subuid range in
		# the namespace berth keeps the layer in: refused at the step's start
		run as_user srun $C --container-image="$IMG" --container-name=pkg --container-remap-root true
		[ "$status" -ne 0 ]
		[[ "$output" == *"--container-remap-root with a named container on SingularityCE 3.4.2 installed setuid"* ]]
		return 0
	fi
	B=$BERTH_CLUSTER_DIR/bin/berth
	D="--cache-dir $BERTH_CLUSTER_DIR/cache"
	in_alloc -- "
		srun $C --container-image=$IMG --container-name=gone true &&
		srun $C --container-image=$IMG --container-name=stays true &&
		$B ps $D && $B rm $D gone && $B ps $D && echo JOB=\$SLURM_JOB_ID"
	[ "$status" -eq 0 ]
	job=$(printf '%s\n' "$output" | sed -n 's/^JOB=//p')
	# listed before rm, not after
	[ "$(printf '%s\n' "$output" | grep -c '^gone ')" -eq 1 ]
	[ "$(printf '%s\n' "$output" | grep -c '^stays ')" -eq 2 ]
	# the epilog removes the job's containers (ContainerScope=job)
	for _ in $(seq 100); do
		[ -e "$BERTH_CLUSTER_DIR/cache/$UIDT/containers/job-$job" ] || break
		sleep 0.1
	done
	[ ! -e "$BERTH_CLUSTER_DIR/cache/$UIDT/containers/job-$job" ]
}

# ---- --container-save ---------------------------------------------------------

@test "[$BERTH_RUNTIME] pyxis save: the container is written as an image every runtime runs, owned by the user" {
	! named_needs_sandbox || return 0
	d=$(job_dir)
	if [ "$RT" = docker ]; then
		refused_at_submission "keeps or saves none" --container-save="$d/x.tar" true
		return 0
	fi
	run as_user bash -c "cd '$d' && srun --container-runtime=$RT --container-image=$IMG \
		--container-save=saved.tar sh -c 'echo changed >/etc/only-in-image &&
			mkdir -p /opt/x && echo new >/opt/x/f && rm /bin/true'"
	printf '%s\n' "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"container saved to $d/saved.tar"* ]]
	[ "$(stat -c %u "$d/saved.tar")" -eq "$UIDT" ]
	# nothing else beside it: no temporary or layer file
	[ "$(ls -A "$d")" = saved.tar ]
	for rt in charliecloud singularity docker; do
		run as_user srun --container-runtime=$rt --container-image="$d/saved.tar" \
			sh -c 'cat /etc/only-in-image /opt/x/f; test -e /bin/true && echo still-there;
				ls -A /.berth'
		[ "$status" -eq 0 ]
		[[ "$output" == *$'changed\nnew'* ]]
		[[ "$output" != *still-there* ]]
		[[ "$output" != *running-* ]]
	done
	# the image it came from is unchanged
	run as_user srun --container-runtime="$RT" --container-image="$IMG" cat /etc/only-in-image
	[[ "$output" != *changed* ]]
}

@test "[$BERTH_RUNTIME] pyxis save: a folder or an unwritable place is refused at submission" {
	[ "$RT" != docker ] || skip "refused for docker (previous row)"
	refused_at_submission "give a file name, not a folder" --container-save=/tmp/ true
	refused_at_submission "cannot write in /root" --container-save=/root/x.tar true
}
