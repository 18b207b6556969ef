#!/usr/bin/env bats
# ImageStorage=squashfs: the charliecloud runtime's image as one SquashFS
# file per image, merged straight from the layers, mounted with squashfuse
# in berth's own namespace at every start (under an overlay).  Run as the
# unprivileged test user, as jobs run.
#
# Run as root: bats --tap tests/pipeline/squashfs.bats

# shellcheck disable=SC2030,SC2031 # the tests set the helpers' globals in their own subshell
bats_require_minimum_version 1.5.0

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BERTH=${BUILD:-$REPO/build}/berth
MKIMAGE=$REPO/tests/harness/fixtures/mkimage.py
LISTING=$REPO/tests/harness/fixtures/sqfs-listing.py
CONTENT=$REPO/tests/harness/fixtures/content-list.py
SING=$REPO/tests/harness/fakes/singularity
MARKER=berth-escape-marker

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

# archive KIND [OPTIONS..]: $WORK/fx-KIND_OPTIONS.tar, made once; sets A.
archive() {
	A=$WORK/fx-$(tr ' ' _ <<<"$*").tar
	if [ ! -e "$A" ]; then
		# shellcheck disable=SC2068 # the options are words
		python3 "$MKIMAGE" $@ "$A" >/dev/null
		chmod 644 "$A"
	fi
}

# pull_both ARCHIVE: pull it into a fresh cache with ImageStorage=tree, then
# into another with ImageStorage=squashfs.  Sets T_STATUS T_OUT T_U (tree)
# and S_STATUS S_OUT S_U ENTRY (squashfs), TREE and SQFS (when pulled).
pull_both() {
	fresh tree
	run b pull --runtime charliecloud --cache-dir "$P/cache" "$1"
	T_STATUS=$status T_OUT=$output T_U=$U T_P=$P
	TREE=$(echo "$U"/images/*/rootfs)
	fresh squashfs
	run b pull --runtime charliecloud --cache-dir "$P/cache" "$1"
	S_STATUS=$status S_OUT=$output S_U=$U S_P=$P
	ENTRY=$(echo "$U"/images/*)
	SQFS=$ENTRY/rootfs.sqfs
	printf 'tree %s:\n%s\nsquashfs %s:\n%s\n' "$T_STATUS" "$T_OUT" "$S_STATUS" "$S_OUT"
}

# differ A B: diff, its lines cut short (long paths).
differ() {
	diff "$1" "$2" >"$WORK/diff" || {
		cut -c1-300 "$WORK/diff" | head -40
		return 1
	}
}

# same_contents: the tree and the SquashFS hold the same, read two ways:
# (a) unsquashfs -lls and sqfs2tar of an mksquashfs of the tree against
# those of the SquashFS (sqfs-listing.py); (b) the tree read from the disk
# against the SquashFS read through sqfs2tar, file bytes by SHA-256, hard
# link groups, xattrs (content-list.py).  The pull's words are the same too.
same_contents() {
	[ "$T_STATUS" -eq 0 ] && [ "$S_STATUS" -eq 0 ]
	[ "$T_OUT" = "$S_OUT" ]
	# one file: no tree, nothing else but the entry's records
	[ -f "$SQFS" ]
	[ ! -e "$ENTRY/rootfs" ]
	[ "$(find "$ENTRY" -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 0 ]
	if [[ $A != *outliers* ]]; then # see mkimage.py outliers
		local o=()
		[[ $A != *million-entries* ]] || o=(--no-dir-size)
		mksquashfs "$TREE" "$WORK/tree.sqfs" -force-uid "$(id -u "$TEST_USER")" \
			-force-gid "$(id -g "$TEST_USER")" -noappend -quiet -no-progress >/dev/null
		python3 "$LISTING" "${o[@]}" "$WORK/tree.sqfs" >"$WORK/tree.lst"
		python3 "$LISTING" "${o[@]}" "$SQFS" >"$WORK/sqfs.lst"
		differ "$WORK/tree.lst" "$WORK/sqfs.lst"
		[ "$(grep -c . "$WORK/sqfs.lst")" -gt 20 ]
	fi
	python3 "$CONTENT" "$TREE" >"$WORK/tree.cl"
	python3 "$CONTENT" "$SQFS" >"$WORK/sqfs.cl"
	differ "$WORK/tree.cl" "$WORK/sqfs.cl"
	[ "$(grep -c . "$WORK/sqfs.cl")" -gt 10 ]
}

@test "squashfs: one file per image with what the tree holds, every fixture layout and every hostile archive the tree takes" {
	command -v mksquashfs >/dev/null || skip "squashfs-tools missing"
	command -v sqfs2tar >/dev/null || skip "squashfs-tools-ng (sqfs2tar) missing"
	local fx=("legacy" "oci --gzip-archive --gzip-layers" "multi" "device-nodes" "setuid"
		"legacy --big-mb 3" "edge" "outliers" "legacy --dot-prefix" "root-entries" "too-deep"
		"million-entries --count 1200")
	for f in "${fx[@]}"; do
		echo "== $f"
		# shellcheck disable=SC2086 # the options are words
		archive $f
		[[ $f != multi ]] || A="$A#berth/two:2"
		pull_both "$A"
		same_contents
	done
	# the entry's size is the file's, and cache ls shows it
	size=$(stat -c %s "$SQFS")
	[ "$(cat "$ENTRY/size")" -ge "$size" ]
	[ "$(cat "$ENTRY/size")" -lt $((size + 65536)) ]
	run b cache ls --cache-dir "$P/cache"
	echo "$output"
	DIGEST=$(basename "$ENTRY")
	grep -q "^sha256:$DIGEST  *[0-9.]*M " <<<"$output"
}

@test "squashfs: every hostile archive that reaches the writer is refused as on the tree, in its words, nothing left behind" {
	# the archive defects refused before a layer is read (not-a-tar,
	# no-manifest, bad-manifest-json, manifest-not-array, missing-config,
	# config-digest-mismatch) go the same way whatever the storage (checked
	# by hand once: the same words) and are left to image.bats; these reach
	# the writer
	local fx=(truncated digest-mismatch missing-layer dotdot absolute symlink-escape symlink-chain symlink-deep
		file-as-folder hardlink-escape whiteout-dotdot name-too-long path-too-long hardlink-dir
		hardlink-missing hardlink-self)
	for f in "${fx[@]}"; do
		echo "== $f"
		# shellcheck disable=SC2086 # the options are words
		archive $f
		pull_both "$A"
		[ "$T_STATUS" -ne 0 ] && [ "$S_STATUS" -ne 0 ]
		grep -q "^berth: " <<<"$S_OUT"
		[ "$T_OUT" = "$S_OUT" ]
		for u in "$T_U" "$S_U"; do
			[ -z "$(find "$u/images" "$u/tmp" "$u/downloads" -mindepth 1 2>/dev/null)" ]
		done
		[ ! -e /$MARKER ] && [ ! -e /tmp/$MARKER ]
		[ -z "$(find "$T_P" "$S_P" -name "$MARKER*")" ]
	done
}

# pull_sing FORMAT ARCHIVE: a fresh cache, the singularity runtime's image
# in that SingularityImageFormat (the stand-in singularity: berth writes the
# image itself); sets IMG (the SIF or the sandbox folder).
pull_sing() {
	fresh tree "$(printf 'SingularityPath=%s\nSingularityImageFormat=%s' "$SING" "$1")"
	run b pull --runtime singularity --singularity "$SING" --cache-dir "$P/cache" "$2"
	echo "$output"
	[ "$status" -eq 0 ]
	IMG=$(find "$U/images" -mindepth 2 -maxdepth 2 \( -name sandbox -o -name '*.sif' \))
	[ -e "$IMG" ]
}

@test "sif: the SIF merged from the layers holds what the sandbox tree holds, every good layout" {
	command -v mksquashfs >/dev/null || skip "squashfs-tools missing"
	command -v sqfs2tar >/dev/null || skip "squashfs-tools-ng (sqfs2tar) missing"
	for f in edge outliers setuid; do
		echo "== $f"
		# shellcheck disable=SC2086 # the options are words
		archive $f
		pull_sing sandbox "$A"
		TREE=$IMG
		pull_sing sif "$A"
		[ -f "$IMG" ]
		# (b) the sandbox read from the disk against the SIF's partition
		python3 "$CONTENT" --owner=ANY --skip=.singularity.d "$TREE" >"$WORK/tree.cl"
		python3 "$CONTENT" --owner=ANY --skip=.singularity.d "$IMG" >"$WORK/sif.cl"
		differ "$WORK/tree.cl" "$WORK/sif.cl"
		[ "$(grep -c . "$WORK/sif.cl")" -gt 10 ]
		# (a) unsquashfs -lls and sqfs2tar, the sandbox through mksquashfs
		# (all root's, as the SIF is)
		[[ $f != outliers ]] || continue
		mksquashfs "$TREE" "$WORK/tree.sqfs" -all-root -noappend -quiet -no-progress >/dev/null
		python3 "$LISTING" "$WORK/tree.sqfs" | grep -v "^tar .singularity.d/\|^lls .* squashfs-root/.singularity.d[/a-z0-9._-]*$" >"$WORK/tree.lst"
		python3 "$LISTING" "$IMG" | grep -v "^tar .singularity.d/\|^lls .* squashfs-root/.singularity.d[/a-z0-9._-]*$" >"$WORK/sif.lst"
		differ "$WORK/tree.lst" "$WORK/sif.lst"
	done
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
