#!/usr/bin/env bats
# The singularity runtime's image formats through Slurm: the site's
# SingularityImageFormat reaches both the staging on the node and the task's
# launcher, and a SIF the user gives runs as it is.

load helpers

setup_file() {
	require_cluster
	export IMG
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	conf_save
}

# The plugin reads berth.conf at every step: no restart needed.
teardown() {
	conf_restore
}

# the site's SingularityImageFormat (a row of the matrix may set one)
set_format() {
	set_conf "SingularityImageFormat=$1"
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
	set_format "$1"
	run as_user srun --container-runtime=singularity --container-image="$img" \
		sh -c 'cat /etc/only-in-image; test -f /.singularity.d/runscript && echo metadata'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = $'only-in-image\nmetadata' ] || [[ "$output" == *$'only-in-image\nmetadata' ]]
	ENTRY=$(entry_of "$img")
}

@test "SingularityImageFormat=sif: the node stages a SIF and the task runs it" {
	run_with_format sif
	[ -f "$ENTRY/$(sif_leaf)" ]
	[ ! -e "$ENTRY/sandbox" ]
}

# SingularityCE reads no zstd ("unknown compression algorithm value 6"):
# berth wrote zstd for every runtime before it knew which one it drives.
@test "a SIF's SquashFS is one the runtime reads: zstd for Apptainer, lz4 for SingularityCE" {
	run_with_format sif
	comp=$(sif_compression "$ENTRY/$(sif_leaf)")
	echo "runtime: $("$(cluster_singularity)" --version), SIF: $comp"
	if singularity_ce; then
		[ "$comp" = lz4 ]
	else
		[ "$comp" = zstd ]
	fi
}

# The compression is part of the artifact's name: a zstd SIF (made for
# Apptainer, say by an older berth) in the entry is not what a job on
# SingularityCE gets.
@test "a cached zstd SIF is never handed to SingularityCE: the job gets a SIF it reads" {
	singularity_ce || skip "SingularityCE only (the version matrix's setuid row)"
	img=$(make_image fmt-zstd.tar legacy --tag berth/fmt:zstd --label format=zstd)
	d=$(job_dir)
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' \
		"$BERTH_CLUSTER_DIR/bin/singularity" >"$d/app.conf"
	chmod 644 "$d/app.conf"
	# berth as the user, with the Apptainer stand-in: a zstd image.sif in
	# the user's own cache entry
	run as_user env BERTH_CONFIG="$d/app.conf" "$BERTH_CLUSTER_DIR/bin/berth" pull \
		--runtime singularity --cache-dir "$BERTH_CLUSTER_DIR/cache" "$img"
	echo "$output"
	[ "$status" -eq 0 ]
	ENTRY=$(entry_of "$img")
	[ "$(sif_compression "$ENTRY/image.sif")" = zstd ]
	set_format sif
	run as_user srun --container-runtime=singularity --container-image="$img" cat /etc/only-in-image
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *"compression algorithm"* ]]
	[ "$(sif_compression "$ENTRY/image.lz4.sif")" = lz4 ]
}

# SingularityCE's --fakeroot maps a range of 65536 ids from /etc/subuid and
# /etc/subgid (Apptainer's --ignore-subuid does not exist there).
@test "--container-remap-root on SingularityCE: refused without a subuid range, naming it; root inside with one" {
	singularity_ce || skip "SingularityCE only (the version matrix's setuid row)"
	cp /etc/subuid "$BATS_TEST_TMPDIR/subuid" 2>/dev/null || : >"$BATS_TEST_TMPDIR/subuid"
	cp /etc/subgid "$BATS_TEST_TMPDIR/subgid" 2>/dev/null || : >"$BATS_TEST_TMPDIR/subgid"
	sed -i '/^berthtest:/d' /etc/subuid /etc/subgid
	run as_user srun --container-runtime=singularity --container-image="$IMG" \
		--container-remap-root id -u
	echo "$output"
	ok=1
	[ "$status" -ne 0 ] || ok=0
	[[ "$output" == *"berth: --container-remap-root with SingularityCE 3.4.2 needs"*"/etc/subuid"* ]] || ok=0
	[[ "$output" != *"unknown flag"* ]] || ok=0
	echo "berthtest:1065536:65536" >>/etc/subuid
	echo "berthtest:1065536:65536" >>/etc/subgid
	run as_user srun --container-runtime=singularity --container-image="$IMG" \
		--container-remap-root sh -c 'id -u; touch /tmp/f && chown 2:2 /tmp/f && stat -c %u /tmp/f'
	echo "$output"
	cp "$BATS_TEST_TMPDIR/subuid" /etc/subuid
	cp "$BATS_TEST_TMPDIR/subgid" /etc/subgid
	[ "$ok" = 1 ]
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | tail -n2 | tr '\n' ' ')" = "0 2 " ]
}

# What a setuid SingularityCE 3.4.2 keeping SIFs cannot do is refused at
# submission where SingularityPath is there on the submitting host (here
# it is): sbatch and srun fail before a job exists, naming the runtime, its
# version and the fix.  (Apptainer and the stand-in run all of it.)
@test "SingularityCE setuid: what it cannot do is refused at submission, before any job or step" {
	singularity_ce || skip "SingularityCE only (the version matrix's setuid row)"
	set_format sif
	d=$(job_dir)
	mark=berth-refused-$$-$RANDOM
	cp /etc/subuid "$BATS_TEST_TMPDIR/subuid" 2>/dev/null || : >"$BATS_TEST_TMPDIR/subuid"
	cp /etc/subgid "$BATS_TEST_TMPDIR/subgid" 2>/dev/null || : >"$BATS_TEST_TMPDIR/subgid"
	sed -i '/^berthtest:/d' /etc/subuid /etc/subgid
	refused() { # PHRASE OPTION... : sbatch and srun both refuse, no job made
		local phrase=$1 cmd
		shift
		for cmd in sbatch srun; do
			if [ "$cmd" = sbatch ]; then
				run as_user sbatch --parsable --comment="$mark" --container-runtime=singularity \
					--container-image="$IMG" "$@" --wrap true
			else
				run as_user srun --comment="$mark" --container-runtime=singularity \
					--container-image="$IMG" "$@" true
			fi
			echo "$cmd $*: $status: $output"
			[ "$status" -ne 0 ] || return 1
			[[ "$output" == *"berth: "*"$phrase"* ]] || return 1
			! printf '%s\n' "$output" | grep -Eq '^[0-9]+$|queued|job [0-9]+|step creation' || return 1
		done
	}
	ok=1
	refused "tmpfs mounts with SingularityCE 3.4.2: this setuid installation needs the sandbox image format" \
		--container-mounts=tmpfs:/scratch || ok=0
	refused "noexec binds are not supported with SingularityCE 3.4.2 installed setuid" \
		--container-mounts="$d:/mnt:ro+noexec" || ok=0
	refused "--container-name with singularity needs the sandbox image format (SingularityCE 3.4.2" \
		--container-name=refused || ok=0
	refused "--container-remap-root with SingularityCE 3.4.2 needs a range of 65536 ids" \
		--container-remap-root || ok=0
	echo "berthtest:1065536:65536" >>/etc/subuid
	echo "berthtest:1065536:65536" >>/etc/subgid
	refused "--container-writable with --container-remap-root on SingularityCE 3.4.2: it makes no overlay" \
		--container-remap-root --container-writable || ok=0
	cp "$BATS_TEST_TMPDIR/subuid" /etc/subuid
	cp "$BATS_TEST_TMPDIR/subgid" /etc/subgid
	[ "$ok" = 1 ]
	# no job reached slurmctld (completed ones stay listed for MinJobAge)
	[ -z "$(scontrol -o show job 2>/dev/null | grep "Comment=$mark")" ]
}

# SingularityImageFormat=auto on an installation without a setuid starter
# (the stand-in, Apptainer 1.4.5): ImageStorage=tree keeps a sandbox;
# squashfs keeps one SIF that berth mounts with squashfuse in the step's
# namespace and hands the runtime as a folder, so writable, named, remapped
# and saved containers and a mount onto a missing target keep working over
# it (berth's overlay).  A setuid installation keeps its SIF either way.
@test "SingularityImageFormat=auto follows ImageStorage without a setuid starter: squashfs a SIF berth mounts, tree a sandbox" {
	singularity_ce && skip "an installation on user namespaces (a setuid starter always gets a SIF)"
	# Debian 12's squashfuse 0.1.104 has no -o uid: the SIF's files would
	# be nobody's, so berth refuses squashfs and keeps sandboxes for auto
	owner=yes
	grep -aq -- "-o uid=N" /usr/bin/squashfuse_ll || owner=no
	S="--container-runtime=singularity"
	for st in tree squashfs; do
		img=$(make_image "st-$st.tar" legacy --tag "berth/st:$st" --label "storage=$st")
		set_conf SingularityImageFormat=auto "ImageStorage=$st"
		d=$(job_dir)
		if [ "$st" = squashfs ] && [ "$owner" = no ]; then
			run as_user srun $S --container-image="$img" true
			echo "$output"
			[ "$status" -ne 0 ]
			grep -q "berth: ImageStorage=squashfs, but /usr/bin/squashfuse_ll (SquashfusePath) cannot show the image's files as the user's (no -o uid" <<<"$output"
			continue
		fi
		run as_user salloc -Q bash -c "cd $d &&
			srun $S --container-image=$img --container-writable sh -c 'echo w >/etc/w && cat /etc/w' &&
			srun $S --container-image=$img --container-name=keep sh -c 'echo kept >/made-here' &&
			srun $S --container-name=keep cat /made-here &&
			srun $S --container-image=$img sh -c 'test ! -e /made-here && test ! -e /etc/w && echo clean' &&
			srun $S --container-image=$img --container-remap-root sh -c 'id -u' &&
			srun $S --container-image=$img --container-mounts=$d:/not/in/image:ro sh -c 'ls /not/in/image >/dev/null && echo mounted' &&
			srun $S --container-name=keep --container-save=$d/saved.tar true && echo saved"
		printf '%s: %s\n' "$st" "$output"
		[ "$status" -eq 0 ]
		for line in w kept clean 0 mounted saved; do grep -qx "$line" <<<"$output"; done
		tar -xOf "$d/saved.tar" manifest.json | grep -q Layers
		ENTRY=$(entry_of "$img")
		if [ "$st" = tree ]; then
			[ -d "$ENTRY/sandbox" ]
			! compgen -G "$ENTRY/image*.sif"
		else
			[ -f "$ENTRY/$(sif_leaf)" ]
			[ ! -e "$ENTRY/sandbox" ]
		fi
	done
	# the step's log says which and why
	set_conf SingularityImageFormat=auto ImageStorage=auto
	run as_user srun $S --container-image="$img" --container-verbose true
	echo "$output"
	[ "$status" -eq 0 ]
	if [ "$owner" = yes ]; then
		grep -q "berth: singularity image: sif, mounted by berth (auto: .*ImageStorage=auto" <<<"$output"
	else
		grep -q "berth: singularity image: sandbox (auto: .*ImageStorage=auto: .*no -o uid" <<<"$output"
	fi
}

@test "SingularityImageFormat=sandbox: the node stages a folder and the task runs it" {
	run_with_format sandbox
	[ -d "$ENTRY/sandbox" ]
	! compgen -G "$ENTRY/image*.sif"
}

@test "a SIF the user gives runs as it is, relative to the submit folder, nothing converted" {
	d=$(job_dir)
	sing=$(sed -n 's/^SingularityPath=//p' "$BERTH_CONF" | tail -n1)
	mkdir -p "$d/c"
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$sing" >"$d/sif.conf"
	BERTH_CONFIG=$d/sif.conf "$BERTH_CLUSTER_DIR/bin/berth" pull --runtime singularity \
		--cache-dir "$d/c" "$IMG" >/dev/null
	cp "$d"/c/0/images/*/image*.sif "$d/mine.sif"
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
