#!/usr/bin/env bats
# ImageStorage=squashfs: the charliecloud runtime's image as one SquashFS
# file per image, merged straight from the layers, mounted with squashfuse
# in berth's own namespace at every start (under an overlay).  Run as the
# unprivileged test user, as jobs run.
#
# Run as root: bats --tap tests/pipeline/squashfs.bats

bats_require_minimum_version 1.5.0

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BERTH=${BUILD:-$REPO/build}/berth
MKIMAGE=$REPO/tests/harness/fixtures/mkimage.py
LISTING=$REPO/tests/harness/fixtures/sqfs-listing.py

setup_file() {
	[ -x "$BERTH" ] || { echo "build/berth missing: run make -j2 all" >&2; return 1; }
	umask 022
	WORK=$(mktemp -d /var/tmp/berth-sqfs-test.XXXXXX)
	chmod 755 "$WORK"
	python3 "$MKIMAGE" legacy "$WORK/img.tar" --tag berth/sqfs:1 >/dev/null
	chmod 644 "$WORK/img.tar"
	TEST_USER=berthtest
	id "$TEST_USER" >/dev/null 2>&1 || TEST_USER=nobody
	export WORK TEST_USER
}

teardown_file() {
	[ -n "${WORK:-}" ] && rm -rf "$WORK"
}

setup() {
	command -v squashfuse_ll >/dev/null || skip "squashfuse (squashfuse_ll) is not installed"
	if [ ! -r /dev/fuse ] || [ ! -w /dev/fuse ]; then skip "/dev/fuse is not usable"; fi
}

as_user() {
	setpriv --reuid="$TEST_USER" --regid="$(id -g "$TEST_USER")" --clear-groups -- "$@"
}

# fresh STORAGE [KEY=VALUE]: a new folder P with cache/ and berth.conf
# (ImageStorage=STORAGE and the extra line), owned by the test user.
fresh() {
	P=$(mktemp -d "$WORK/run.XXXXXX")
	mkdir -p "$P/cache"
	printf 'ImageStorage=%s\n%s\n' "$1" "${2:-}" >"$P/berth.conf"
	chown -R "$TEST_USER" "$P"
	U=$P/cache/$(id -u "$TEST_USER")
}

# b ARGS...: build/berth as the test user with P's configuration.
b() {
	as_user env BERTH_CONFIG="$P/berth.conf" "$BERTH" "$@"
}

pull() {
	run b pull --runtime charliecloud --cache-dir "$P/cache" "$1"
	echo "$output"
	[ "$status" -eq 0 ]
	DIGEST=$(tail -1 <<<"$output" | cut -d' ' -f1)
	ENTRY=$U/images/${DIGEST#sha256:}
}

crun() {
	b run --runtime charliecloud --cache-dir "$P/cache" --image "$WORK/img.tar" "$@"
}

@test "squashfs: one file per image with what the tree holds, every fixture layout" {
	command -v mksquashfs >/dev/null || skip "squashfs-tools missing"
	local fx=("legacy" "oci --gzip-archive --gzip-layers" "multi" "device-nodes" "setuid"
		"legacy --big-mb 3")
	for f in "${fx[@]}"; do
		local a=$WORK/fx-${f// /_}.tar
		# shellcheck disable=SC2086 # the options are words
		python3 "$MKIMAGE" $f "$a" >/dev/null
		chmod 644 "$a"
		[[ $f != multi ]] || a="$a#berth/two:2"
		fresh tree
		pull "$a"
		mksquashfs "$ENTRY/rootfs" "$WORK/tree.sqfs" -force-uid "$(id -u "$TEST_USER")" \
			-force-gid "$(id -g "$TEST_USER")" -noappend -quiet -no-progress >/dev/null
		python3 "$LISTING" "$WORK/tree.sqfs" >"$WORK/tree.lst"
		fresh squashfs
		pull "$a"
		# one file: no tree, nothing else but the entry's records
		[ -f "$ENTRY/rootfs.sqfs" ]
		[ ! -e "$ENTRY/rootfs" ]
		[ "$(find "$ENTRY" -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 0 ]
		python3 "$LISTING" "$ENTRY/rootfs.sqfs" >"$WORK/sqfs.lst"
		diff "$WORK/tree.lst" "$WORK/sqfs.lst"
		[ "$(grep -c . "$WORK/sqfs.lst")" -gt 20 ]
	done
	# the entry's size is the file's, and cache ls shows it
	size=$(stat -c %s "$ENTRY/rootfs.sqfs")
	[ "$(cat "$ENTRY/size")" -ge "$size" ]
	[ "$(cat "$ENTRY/size")" -lt $((size + 65536)) ]
	run b cache ls --cache-dir "$P/cache"
	echo "$output"
	grep -q "^$DIGEST  *[0-9.]*M " <<<"$output"
}

@test "squashfs: runs mounted, read-only unless writable, the cache file never written, 127/126, no process left" {
	fresh squashfs
	pull "$WORK/img.tar"
	sum=$(sha256sum <"$ENTRY/rootfs.sqfs")
	run crun -- cat /etc/only-in-image
	echo "$output"
	[ "$status" -eq 0 ]
	[ -n "$output" ]
	run crun -- sh -c 'echo x >/etc/new'
	[ "$status" -ne 0 ]
	run crun --writable -- sh -c 'echo w >/etc/new && cat /etc/new && rm /bin/busybox-hardlink && echo ok'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'w\nok')" ]
	# one job's changes never reach the next
	run crun -- cat /etc/new
	[ "$status" -ne 0 ]
	run crun -- ls /bin/busybox-hardlink
	[ "$status" -eq 0 ]
	[ "$(sha256sum <"$ENTRY/rootfs.sqfs")" = "$sum" ]
	# a bind onto a target the image lacks is made in the overlay
	mkdir -p "$P/data" && echo bound >"$P/data/f" && chown -R "$TEST_USER" "$P/data"
	run crun --bind "$P/data:/nowhere/data:ro" -- cat /nowhere/data/f
	echo "$output"
	[ "$output" = bound ]
	# squashfuse ends with the container
	run pgrep -u "$TEST_USER" -f "squashfuse.*$ENTRY"
	[ "$status" -ne 0 ]
	# a command the image lacks is 127, one not executable 126, as on the tree
	run -127 crun -- no-such-command-berth
	[ "$status" -eq 127 ]
	[[ "$output" == *"command not found in the container"* ]]
	run crun -- /etc/passwd
	[ "$status" -eq 126 ]
	[ "$(grep -c . "$U/conversions.log")" -eq 1 ]
}

@test "squashfs: no squashfuse fails naming the fix; auto falls back to the tree and says so" {
	fresh squashfs SquashfusePath=/nonexistent/squashfuse_ll
	run crun -- true
	echo "$output"
	[ "$status" -ne 0 ]
	grep -q "^berth: ImageStorage=squashfs, but cannot run /nonexistent/squashfuse_ll.*set ImageStorage=tree or auto" <<<"$output"
	fresh auto SquashfusePath=/nonexistent/squashfuse_ll
	run crun -- cat /etc/only-in-image
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q "^berth: ImageStorage=auto: cannot run /nonexistent/squashfuse_ll.*kept as folders" <<<"$output"
	[ -d "$(echo "$U"/images/*/rootfs)" ]
	fresh auto
	run crun -- cat /etc/only-in-image
	[ "$status" -eq 0 ]
	[ -f "$(echo "$U"/images/*/rootfs.sqfs)" ]
}

@test "squashfs: SIGKILL while the file is written publishes nothing; 4 cold pulls convert once" {
	python3 "$MKIMAGE" legacy "$WORK/big.tar" --big-mb 120 >/dev/null
	chmod 644 "$WORK/big.tar"
	fresh squashfs
	b pull --runtime charliecloud --cache-dir "$P/cache" "$WORK/big.tar" >"$P/out" 2>&1 &
	pid=$!
	n=0
	until compgen -G "$U/tmp/*/entry/rootfs.sqfs" >/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 2000000 ] && kill -0 "$pid" 2>/dev/null || break
	done
	pkill -KILL -P "$pid" || true
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" || true
	run grep -c converted "$P/out" # killed before publishing
	[ "$output" = 0 ]
	[ -z "$(ls -A "$U/images")" ]
	for i in 1 2 3 4; do
		b pull --runtime charliecloud --cache-dir "$P/cache" "$WORK/big.tar" >"$P/out.$i" 2>&1 &
	done
	wait
	cat "$P"/out.*
	[ "$(grep -l ' converted$' "$P"/out.* | wc -l)" -eq 1 ]
	[ "$(grep -l ' cached$' "$P"/out.* | wc -l)" -eq 3 ]
	[ "$(grep -c rootfs.sqfs "$U/conversions.log")" -eq 1 ]
	[ -z "$(ls -A "$U/tmp")" ]
	[ "$(find "$U"/images/*/ -maxdepth 1 \( -name rootfs -o -name rootfs.sqfs \) | wc -l)" -eq 1 ]
}
