#!/usr/bin/env bats
# A full disk: CacheDir on a size-capped tmpfs that fills up while an image
# is downloaded, flattened, or written as a SIF.  Each time: a clear error
# that says the file system is full and what frees space, no cache entry,
# no build folder, no partial download, and the next pull, with room,
# succeeds.  Also a cache folder deleted or made unwritable between pulls.
# Runs as root (it mounts); the pulls run as the test user.

setup() {
	REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	BERTH=${BUILD:-$REPO/build}/berth
	SING=${BERTH_TEST_SINGULARITY:-$REPO/tests/harness/fakes/singularity}
	[ "$(id -u)" -eq 0 ] || skip "mounts a tmpfs: run as root"
	WORK=$(mktemp -d /var/tmp/berth-faults.XXXXXX)
	chmod 755 "$WORK"
	SMALL=$WORK/small
	mkdir -p "$SMALL" "$WORK/www"
	# 8 MiB of incompressible files: it cannot fit in 4 MiB
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$WORK/www/big.tar" --big-mb 8 >/dev/null
	chmod 644 "$WORK/www/big.tar"
	U=${BERTH_TEST_USER:-berthtest}
	UIDT=$(id -u "$U")
}

teardown() {
	[ -n "${HTTPD_PID:-}" ] && kill "$HTTPD_PID" 2>/dev/null
	umount "$SMALL" 2>/dev/null || true
	rm -rf "$WORK"
}

small_fs() { # SIZE
	umount "$SMALL" 2>/dev/null || true
	mount -t tmpfs -o "size=$1,mode=0755" tmpfs "$SMALL"
	mkdir -p "$SMALL/cache"
	chmod 1777 "$SMALL/cache"
}

as_u() { su "$U" -s /bin/sh -c "$(printf '%q ' "$@")"; }

# Nothing of the failed pull: no entry, no build folder, no partial file.
nothing_left() {
	local c=$SMALL/cache/$UIDT
	[ -z "$(ls -A "$c/images" 2>/dev/null)" ]
	[ -z "$(ls -A "$c/tmp" 2>/dev/null)" ]
	# (a download's lock file stays, as every lock does: it holds no data)
	[ -z "$(find "$c/downloads" -type f ! -name "*.lock" 2>/dev/null)" ]
}

full_disk_said() {
	[[ "$output" == *"No space left on device"* ]]
	[[ "$output" == *"is full"*"berth cache gc"* ]]
}

@test "the cache fills up while flattening: clear error, nothing left, room makes it work" {
	small_fs 4m
	run as_u "$BERTH" pull --cache-dir "$SMALL/cache" "$WORK/www/big.tar"
	[ "$status" -ne 0 ]
	full_disk_said
	nothing_left
	small_fs 64m
	run as_u "$BERTH" pull --cache-dir "$SMALL/cache" "$WORK/www/big.tar"
	[ "$status" -eq 0 ]
	[[ "${lines[-1]}" == *converted ]]
}

@test "the cache fills up while downloading: clear error, no partial download, room makes it work" {
	coproc HTTPD { exec python3 "$REPO/tests/harness/fixtures/httpd.py" --port 0 --dir "$WORK/www"; }
	read -r PORT <&"${HTTPD[0]}"
	small_fs 4m
	run as_u "$BERTH" pull --cache-dir "$SMALL/cache" "http://127.0.0.1:$PORT/big.tar"
	[ "$status" -ne 0 ]
	full_disk_said
	nothing_left
	small_fs 64m
	run as_u "$BERTH" pull --cache-dir "$SMALL/cache" "http://127.0.0.1:$PORT/big.tar"
	[ "$status" -eq 0 ]
}

@test "the cache fills up while writing the SIF: clear error, nothing left" {
	# the SIF is written straight from the layers (no tree first): room
	# for a part of its 8 MiB, not for all of it
	small_fs 4m
	run as_u "$BERTH" pull --runtime singularity --singularity "$SING" \
		--singularity-format sif --cache-dir "$SMALL/cache" "$WORK/www/big.tar"
	[ "$status" -ne 0 ]
	full_disk_said
	nothing_left
	small_fs 64m
	run as_u "$BERTH" pull --runtime singularity --singularity "$SING" \
		--singularity-format sif --cache-dir "$SMALL/cache" "$WORK/www/big.tar"
	[ "$status" -eq 0 ]
}

@test "the user's cache folder deleted between two pulls is made again" {
	small_fs 64m
	as_u "$BERTH" pull --cache-dir "$SMALL/cache" "$WORK/www/big.tar" >/dev/null
	rm -rf "${SMALL:?}/cache/$UIDT"
	run as_u "$BERTH" pull --cache-dir "$SMALL/cache" "$WORK/www/big.tar"
	[ "$status" -eq 0 ]
	[[ "${lines[-1]}" == *converted ]]
}

@test "the user's cache folder made unwritable: a clear error naming it" {
	small_fs 64m
	as_u "$BERTH" pull --cache-dir "$SMALL/cache" "$WORK/www/big.tar" >/dev/null
	rm -rf "${SMALL:?}/cache/$UIDT/images"
	chmod 500 "$SMALL/cache/$UIDT"
	run as_u "$BERTH" pull --cache-dir "$SMALL/cache" "$WORK/www/big.tar"
	[ "$status" -ne 0 ]
	[[ "$output" == *"$SMALL/cache/$UIDT"* ]]
	[[ "$output" == *"Permission denied"* ]]
}
