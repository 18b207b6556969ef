#!/usr/bin/env bats
# Concurrent cold staging (issue 25 item 3): 512 cold stagings of one image
# per runtime's artifact (charliecloud's rootfs, singularity's SIF and
# sandbox, docker's user-side archive in downloads/), 2, 10 and 16 at a
# time, the image's entry removed before each round: every one succeeds,
# each round converts once, and nothing is left in tmp/.  Then the race
# itself, widened by a test-only shim (tests/harness/fixtures/slowlock.c)
# until it strikes at every round: a builder between creating its build
# folder's lock and taking it, and a concurrent stager's sweep of dead
# builds.  Before the fix (ccb705b) the sweep removed that folder and the
# builder failed: "cannot create .../tmp/<hex>/entry: No such file or
# directory".  A tiny image (one 14-byte file) and a private cache on
# tmpfs keep the whole file to about 30 s.

setup_file() {
	REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	export REPO
	local base=/dev/shm
	[ -w "$base" ] || base=/var/tmp
	STRESS=$(mktemp -d "$base/berth-stress.XXXXXX")
	export STRESS
	# One layer, one file: a conversion costs a few milliseconds, so the
	# rounds measure berth's locking, not its flattener.
	python3 - "$STRESS/tiny.tar" <<-'EOF'
		import hashlib, io, json, sys, tarfile
		def tarbytes(members):
		    buf = io.BytesIO()
		    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
		        for name, data in members:
		            ti = tarfile.TarInfo(name)
		            ti.size, ti.mtime, ti.mode = len(data), 1700000000, 0o644
		            t.addfile(ti, io.BytesIO(data))
		    return buf.getvalue()
		layer = tarbytes([("etc/only-in-image", b"only-in-image\n")])
		lid = hashlib.sha256(layer).hexdigest()
		config = json.dumps({"architecture": "amd64", "os": "linux",
		                     "config": {"Env": ["PATH=/bin"]},
		                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + lid]}}).encode()
		cid = hashlib.sha256(config).hexdigest()
		manifest = json.dumps([{"Config": cid + ".json", "RepoTags": ["berth/tiny:1"],
		                        "Layers": [lid + "/layer.tar"]}]).encode()
		open(sys.argv[1], "wb").write(tarbytes([("manifest.json", manifest),
		    (cid + ".json", config), (lid + "/layer.tar", layer)]))
	EOF
	gzip -k "$STRESS/tiny.tar"
	if command -v cc >/dev/null; then
		cc -shared -fPIC -o "$STRESS/slowlock.so" "$REPO/tests/harness/fixtures/slowlock.c" -ldl
	fi
}

teardown_file() {
	rm -rf "$STRESS"
}

setup() {
	BERTH=${BUILD:-$REPO/build}/berth
	SING=${BERTH_TEST_SINGULARITY:-$REPO/tests/harness/fakes/singularity}
	CACHE=$(mktemp -d "$STRESS/cache.XXXXXX")
	U=$CACHE/$(id -u)
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$SING" >"$STRESS/sif.conf"
	printf 'SingularityPath=%s\nSingularityImageFormat=sandbox\n' "$SING" >"$STRESS/sandbox.conf"
}

# stage ARTIFACT: one cold-or-warm staging of the tiny image, as a job's
# stager does it; prints berth's one line.
stage() {
	case $1 in
	rootfs) "$BERTH" pull --runtime charliecloud --cache-dir "$CACHE" "$STRESS/tiny.tar" ;;
	sif | sandbox)
		BERTH_CONFIG=$STRESS/$1.conf "$BERTH" pull --runtime singularity \
			--cache-dir "$CACHE" --singularity "$SING" "$STRESS/tiny.tar" ;;
	archive) "$BERTH" fetch --cache-dir "$CACHE" "$STRESS/tiny.tar.gz" ;;
	esac
}

# make_cold ARTIFACT: remove what the first staging made, as `berth cache rm`
# would (the lock files stay, as they do in a used cache), and the last
# round's outputs.
make_cold() {
	if [ "$1" = archive ]; then
		rm -f "$U"/downloads/*.tar "$CACHE"/out.*
	else
		rm -rf "${U:?}"/images/* "$CACHE"/out.*
	fi
}

# rounds ARTIFACT N ROUNDS: N stagings at once on a cold image, ROUNDS
# times; counts every one that failed or printed something unexpected.
# (Bash builtins and one grep a round: the rounds measure berth, whose
# stagings of this image cost a few milliseconds each.)
rounds() {
	local art=$1 n=$2 r i good
	for ((r = 1; r <= $3; r++)); do
		make_cold "$art"
		for ((i = 1; i <= n; i++)); do
			(stage "$art" 2>&1; echo "rc=$?") >"$CACHE/out.$i" &
		done
		wait
		good=$(cat "$CACHE"/out.* | grep -cx -e "$WANT" -e 'rc=0')
		if [ "$good" -ne $((2 * n)) ]; then
			failed=$((failed + (2 * n - good + 1) / 2))
			[ "$failed" -gt 3 ] || grep -vhx -e "$WANT" -e 'rc=0' "$CACHE"/out.* |
				sed "s/^/round $r, $n at once: /" >&2
		fi
		staged=$((staged + n))
	done
}

# stress ARTIFACT: 2 x 60 + 10 x 20 + 16 x 12 = 512 cold stagings.
stress() {
	local art=$1
	stage "$art" >/dev/null # the image's digest, and the lock files, exist
	if [ "$art" = archive ]; then
		WANT="$U/downloads/[0-9a-f]*\.tar"
	else
		WANT="sha256:[0-9a-f]* \(converted\|cached\)"
	fi
	failed=0 staged=0
	SECONDS=0
	rounds "$art" 2 60
	rounds "$art" 10 20
	rounds "$art" 16 12
	echo "# $art: $staged cold stagings, $failed failed, ${SECONDS}s" >&3
	[ "$staged" -eq 512 ]
	[ "$failed" -eq 0 ]
	# one conversion per round (and the first): never two, never none
	if [ "$art" != archive ]; then
		[ "$(wc -l <"$U/conversions.log")" -eq $((1 + 60 + 20 + 12)) ]
	fi
	[ -z "$(ls -A "$U/tmp")" ]
	[ -z "$(find "$U/downloads" -name '*.part-*')" ]
}

@test "512 cold stagings of one image, 2, 10 and 16 at once: charliecloud's rootfs" {
	stress rootfs
}

@test "512 cold stagings of one image, 2, 10 and 16 at once: singularity's SIF" {
	stress sif
}

@test "512 cold stagings of one image, 2, 10 and 16 at once: singularity's sandbox" {
	stress sandbox
}

@test "512 cold fetches of one compressed archive, 2, 10 and 16 at once: docker's (berth fetch)" {
	stress archive
}

# The race made to strike: one stager is held 300 ms between creating its
# build folder's lock and taking it (the shim's gap); three more start once
# its build folder is there, sweep (finding that lock free), and are held
# 600 ms at their own lock, so the first one converts the image.
@test "a sweep never removes the build folder of a stager about to lock it (the race, widened)" {
	[ -e "$STRESS/slowlock.so" ] || skip "no C compiler for the shim"
	stage rootfs >/dev/null
	failed=0
	for r in $(seq 6); do
		make_cold rootfs
		LD_PRELOAD=$STRESS/slowlock.so SLOWLOCK_GAP_US=300000 SLOWLOCK_SWEEP_US=0 \
			stage rootfs >"$CACHE/first" 2>&1 &
		first=$!
		for _ in $(seq 300); do # until its build folder exists (at most 3 s)
			[ -z "$(ls -A "$U/tmp")" ] || break
			sleep 0.01
		done
		[ -n "$(ls -A "$U/tmp")" ]
		pids=()
		for i in 1 2 3; do
			LD_PRELOAD=$STRESS/slowlock.so SLOWLOCK_GAP_US=600000 SLOWLOCK_SWEEP_US=0 \
				stage rootfs >"$CACHE/out.$i" 2>&1 &
			pids+=($!)
		done
		for i in 1 2 3 first; do
			p=$first out=$CACHE/first
			[ "$i" = first ] || p=${pids[$((i - 1))]} out=$CACHE/out.$i
			wait "$p" && continue
			failed=$((failed + 1))
			if [ "$failed" -le 2 ]; then sed "s/^/round $r: /" "$out" >&2; fi
		done
	done
	echo "# widened race: $failed of 24 stagings failed" >&3
	[ "$failed" -eq 0 ]
	[ -z "$(ls -A "$U/tmp")" ]
}
