#!/usr/bin/env bats
# berth cache verify: a cached image whose files were changed behind berth's
# back is found (the changed path is named, the exit status is not 0), no
# job runs it, and the next stage rebuilds it; a clean cache verifies with
# status 0; an entry from a berth that recorded no manifest is "no
# manifest", not corrupt.

setup() {
	REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	BERTH=${BUILD:-$REPO/build}/berth
	SING=${BERTH_TEST_SINGULARITY:-$REPO/tests/harness/fakes/singularity}
	WORK=$(mktemp -d /var/tmp/berth-verify-test.XXXXXX)
	chmod 755 "$WORK"
	CACHE=$WORK/cache
	mkdir -p "$CACHE"
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$WORK/a.tar" --tag a:1 >/dev/null
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$WORK/b.tar" --tag b:1 --env B=1 >/dev/null
	U=$CACHE/$(id -u)
	# these tests change files of the unpacked tree: keep images as trees
	# (the default, ImageStorage=auto, keeps one SquashFS file where
	# squashfuse works)
	export BERTH_CONFIG=$WORK/berth.conf
	echo "ImageStorage=tree" >"$BERTH_CONFIG"
}

teardown() {
	rm -rf "$WORK"
}

digest_of() { "$BERTH" pull --cache-dir "$CACHE" "$@" | cut -d' ' -f1; }
entry() { echo "$U/images/${1#sha256:}"; }
conversions() { grep -c " $1 " "$U/conversions.log"; }

# hold_shared DIGEST SECONDS: hold the entry's lock shared, as a running job
# does; $holder is the process that holds it (killing it frees the lock)
hold_shared() {
	(
		exec 9<"$U/locks/${1#sha256:}"
		flock -s 9
		exec sleep "$2"
	) &
	holder=$!
}

# Same size, other bytes: only the content hash can tell.
flip_first_byte() { # FILE
	local first
	first=$(head -c1 "$1")
	printf '%s' "$([ "$first" = X ] && echo Y || echo X)" |
		dd of="$1" bs=1 count=1 conv=notrunc status=none
}

@test "a clean cache verifies: every entry ok, status 0" {
	a=$(digest_of "$WORK/a.tar")
	b=$(digest_of "$WORK/b.tar")
	[ -s "$(entry "$a")/rootfs.manifest" ]
	run "$BERTH" cache verify --cache-dir "$CACHE"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	grep -qx "$a ok" <<<"$output"
	grep -qx "$b ok" <<<"$output"
}

@test "a file changed behind berth's back: verify names the path, status not 0, others stay ok" {
	a=$(digest_of "$WORK/a.tar")
	b=$(digest_of "$WORK/b.tar")
	flip_first_byte "$(entry "$a")/rootfs/etc/only-in-image"
	run "$BERTH" cache verify --cache-dir "$CACHE"
	echo "$output"
	[ "$status" -eq 3 ]
	grep -qx "$a CORRUPT: rootfs/etc/only-in-image (content), rebuilt at its next use" <<<"$output"
	grep -qx "$b ok" <<<"$output"
	[[ "$output" == *"1 cached image(s) corrupt"*"--repair"* ]]
	# marked, so the next job does not run it
	grep -qx "content rootfs/etc/only-in-image" "$(entry "$a")/corrupt"
}

@test "a removed file and a changed mode are named too" {
	a=$(digest_of "$WORK/a.tar")
	rm "$(entry "$a")/rootfs/etc/only-in-image"
	run "$BERTH" cache verify --cache-dir "$CACHE"
	[ "$status" -eq 3 ]
	[[ "$output" == *"CORRUPT: rootfs/etc/only-in-image (missing)"* ]]
	digest_of "$WORK/a.tar" >/dev/null # rebuilds
	chmod 0600 "$(entry "$a")/rootfs/etc/only-in-image"
	run "$BERTH" cache verify --cache-dir "$CACHE"
	[ "$status" -eq 3 ]
	[[ "$output" == *"CORRUPT: rootfs/etc/only-in-image (mode)"* ]]
}

@test "the next stage rebuilds a corrupt entry (conversion log) and the result is right" {
	a=$(digest_of "$WORK/a.tar")
	want=$(cat "$(entry "$a")/rootfs/etc/only-in-image")
	flip_first_byte "$(entry "$a")/rootfs/etc/only-in-image"
	"$BERTH" cache verify --cache-dir "$CACHE" || true
	[ "$(conversions "$a")" -eq 1 ]
	run "$BERTH" pull --cache-dir "$CACHE" "$WORK/a.tar"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "berth: the cached copy of $WORK/a.tar was damaged (found corrupt by \`berth cache verify\`); rebuilt it" ]
	[ "${lines[1]}" = "$a converted" ]
	[ "$(conversions "$a")" -eq 2 ]
	[ "$(cat "$(entry "$a")/rootfs/etc/only-in-image")" = "$want" ]
	[ ! -e "$(entry "$a")/corrupt" ]
	run "$BERTH" cache verify --cache-dir "$CACHE"
	[ "$status" -eq 0 ]
	[ -z "$(ls -A "$U/tmp")" ] # the old entry is gone, nothing half-built
}

@test "a job (berth run) does not run a corrupt entry: it is rebuilt first" {
	command -v ch-run >/dev/null || skip "ch-run not installed"
	U=$CACHE/$(id -u berthtest 2>/dev/null) || skip "no berthtest user"
	[ "$(id -u)" -eq 0 ] || skip "runs the job as berthtest: run as root"
	chmod 1777 "$CACHE"
	as_u() { su berthtest -s /bin/sh -c "$(printf '%q ' "$@")"; }
	a=$(as_u "$BERTH" pull --cache-dir "$CACHE" "$WORK/a.tar" | cut -d' ' -f1)
	want=$(cat "$(entry "$a")/rootfs/etc/only-in-image")
	flip_first_byte "$(entry "$a")/rootfs/etc/only-in-image"
	run as_u "$BERTH" cache verify --cache-dir "$CACHE"
	[ "$status" -eq 3 ]
	run as_u "$BERTH" run --runtime charliecloud --cache-dir "$CACHE" --image "$WORK/a.tar" \
		-- cat /etc/only-in-image
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "berth: the cached copy of $WORK/a.tar was damaged ("*"); rebuilt it" ]]
	[ "${lines[1]}" = "$want" ]
	[ "$(conversions "$a")" -eq 2 ]
}

@test "verify --repair removes a corrupt entry now, and leaves nothing behind" {
	a=$(digest_of "$WORK/a.tar")
	b=$(digest_of "$WORK/b.tar")
	flip_first_byte "$(entry "$b")/rootfs/etc/only-in-image"
	run "$BERTH" cache verify --cache-dir "$CACHE" --repair
	[ "$status" -eq 3 ]
	grep -qx "$b CORRUPT: rootfs/etc/only-in-image (content), removed" <<<"$output"
	[ ! -e "$(entry "$b")" ]
	[ -d "$(entry "$a")/rootfs" ]
	[ -z "$(ls -A "$U/tmp")" ]
	run "$BERTH" cache verify --cache-dir "$CACHE"
	[ "$status" -eq 0 ]
}

@test "verify --repair keeps a corrupt entry a job is using, marked for rebuild" {
	a=$(digest_of "$WORK/a.tar")
	flip_first_byte "$(entry "$a")/rootfs/etc/only-in-image"
	hold_shared "$a" 5
	sleep 0.3
	run "$BERTH" cache verify --cache-dir "$CACHE" --repair
	kill "$holder" 2>/dev/null || true
	wait "$holder" 2>/dev/null || true
	[ "$status" -eq 3 ]
	[[ "$output" == *"CORRUPT"*"rebuilt at its next use"* ]]
	[ -d "$(entry "$a")/rootfs" ]
	[ -e "$(entry "$a")/corrupt" ]
}

@test "a new job does not wait for running jobs that hold a corrupt entry: it is told, and rebuilds after" {
	a=$(digest_of "$WORK/a.tar")
	flip_first_byte "$(entry "$a")/rootfs/etc/only-in-image"
	"$BERTH" cache verify --cache-dir "$CACHE" >/dev/null || true
	hold_shared "$a" 30
	sleep 0.3
	SECONDS=0
	run "$BERTH" pull --cache-dir "$CACHE" "$WORK/a.tar"
	kill "$holder" 2>/dev/null || true
	wait "$holder" 2>/dev/null || true
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$SECONDS" -lt 10 ]
	[[ "$output" == *"found corrupt"*"running jobs still use it"*"submit this job again"* ]]
	run "$BERTH" pull --cache-dir "$CACHE" "$WORK/a.tar"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "berth: the cached copy of "*" was damaged ("*"); rebuilt it" ]]
	[ "${lines[1]}" = "$a converted" ]
	[ "$(conversions "$a")" -eq 2 ]
}

@test "an entry from a berth without manifests is 'no manifest', not corrupt" {
	a=$(digest_of "$WORK/a.tar")
	rm "$(entry "$a")/rootfs.manifest"
	flip_first_byte "$(entry "$a")/rootfs/etc/only-in-image"
	run "$BERTH" cache verify --cache-dir "$CACHE"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "$a no manifest (rootfs was built by an older berth; not checked)" ]]
	[ ! -e "$(entry "$a")/corrupt" ]
}

@test "a manifest in another version's format (berth-manifest 1, SHA-256) is 'no manifest', not corrupt" {
	a=$(digest_of "$WORK/a.tar")
	m=$(entry "$a")/rootfs.manifest
	head -n1 "$m" | grep -qx 'berth-manifest 2'
	sed -i '1s/.*/berth-manifest 1/' "$m"
	run "$BERTH" cache verify --cache-dir "$CACHE"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "$a no manifest (rootfs was built by an older berth; not checked)" ]]
	[ ! -e "$(entry "$a")/corrupt" ]
}

@test "a SIF's manifest: a changed byte inside the SIF is found" {
	mkdir -p "$WORK/sing"
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$SING" >"$WORK/sing/berth.conf"
	a=$(env BERTH_CONFIG="$WORK/sing/berth.conf" "$BERTH" pull --runtime singularity \
		--cache-dir "$CACHE" --singularity "$SING" "$WORK/a.tar" | cut -d' ' -f1)
	[ -s "$(entry "$a")/image.sif.manifest" ]
	run "$BERTH" cache verify --cache-dir "$CACHE"
	[ "$status" -eq 0 ]
	flip_first_byte "$(entry "$a")/image.sif"
	run "$BERTH" cache verify --cache-dir "$CACHE"
	[ "$status" -eq 3 ]
	[[ "$output" == *"$a CORRUPT: image.sif (content)"* ]]
}

# Damage found without `berth cache verify`: every stage and job start
# compares a few stats with the entry's stamp (executor/cache/stamp.c).
rebuilt_line() { # OUTPUT-LINE: the message a rebuild of a damaged entry gives
	[[ "$1" == "berth: the cached copy of $WORK/a.tar was damaged ("*"); rebuilt it" ]]
}

@test "a rootfs emptied behind berth's back: the next pull says so, rebuilds it, and it runs" {
	a=$(digest_of "$WORK/a.tar")
	[ -s "$(entry "$a")/rootfs.stamp" ]
	rm -rf "${U:?}/images/${a#sha256:}/rootfs/"*
	run "$BERTH" pull --cache-dir "$CACHE" "$WORK/a.tar"
	echo "$output"
	[ "$status" -eq 0 ]
	rebuilt_line "${lines[0]}"
	[[ "${lines[0]}" == *"rootfs/bin is missing or changed"* ]]
	[ "${lines[1]}" = "$a converted" ]
	[ "$(conversions "$a")" -eq 2 ]
	[ ! -e "$(entry "$a")/corrupt" ]
	[ -z "$(ls -A "$U/tmp")" ]
	# whole again: the next pull and a run use it as it is
	run "$BERTH" pull --cache-dir "$CACHE" "$WORK/a.tar"
	[ "$output" = "$a cached" ]
	command -v ch-run >/dev/null || return 0
	run "$BERTH" run --runtime charliecloud --cache-dir "$CACHE" --image "$WORK/a.tar" \
		-- cat /etc/only-in-image
	[ "$status" -eq 0 ]
	[ "$output" = only-in-image ]
	run "$BERTH" pull --cache-dir "$CACHE" "$WORK/a.tar"
	[ "$output" = "$a cached" ] # running it changed nothing the stamp sees
}

@test "a file deleted from the rootfs: berth run says so, rebuilds, and runs it right" {
	command -v ch-run >/dev/null || skip "ch-run not installed"
	a=$(digest_of "$WORK/a.tar")
	rm "$(entry "$a")/rootfs/etc/only-in-image"
	run "$BERTH" run --runtime charliecloud --cache-dir "$CACHE" --image "$WORK/a.tar" \
		-- cat /etc/only-in-image
	echo "$output"
	[ "$status" -eq 0 ]
	rebuilt_line "${lines[0]}"
	[[ "${lines[0]}" == *"rootfs/etc is missing or changed"* ]]
	[ "${lines[1]}" = only-in-image ]
	[ "$(conversions "$a")" -eq 2 ]
}

@test "a SIF or sandbox damaged (truncated to 0, emptied): the next pull and run rebuild it" {
	mkdir -p "$WORK/sing"
	for format in sif sandbox; do
		printf 'SingularityPath=%s\nSingularityImageFormat=%s\n' "$SING" "$format" \
			>"$WORK/sing/berth.conf"
		sing() { env BERTH_CONFIG="$WORK/sing/berth.conf" "$BERTH" "$@"; }
		leaf=image.sif
		[ "$format" = sif ] || leaf=sandbox
		a=$(sing pull --runtime singularity --cache-dir "$CACHE" --singularity "$SING" \
			"$WORK/a.tar" | cut -d' ' -f1)
		art=$(entry "$a")/$leaf
		[ -e "$art" ]
		if [ "$format" = sif ]; then : >"$art"; else rm -rf "${art:?}/"*; fi
		run sing pull --runtime singularity --cache-dir "$CACHE" --singularity "$SING" "$WORK/a.tar"
		echo "$output"
		[ "$status" -eq 0 ]
		rebuilt_line "${lines[0]}"
		[ "${lines[1]}" = "$a converted" ]
		[ -s "$art" ]
		if [ "$format" = sif ]; then : >"$art"; else rm -rf "${art:?}/"*; fi
		run sing run --runtime singularity --cache-dir "$CACHE" --image "$WORK/a.tar" \
			-- cat /etc/only-in-image
		echo "$output"
		[ "$status" -eq 0 ]
		rebuilt_line "${lines[0]}"
		[ "${lines[-1]}" = only-in-image ]
		run sing pull --runtime singularity --cache-dir "$CACHE" --singularity "$SING" "$WORK/a.tar"
		[ "$output" = "$a cached" ]
	done
}
