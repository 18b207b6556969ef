#!/usr/bin/env bats
# berth cache ls / gc against a real cache built by berth pull.

setup() {
	REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	BERTH=${BUILD:-$REPO/build}/berth
	WORK=$(mktemp -d /tmp/berth-cache-test.XXXXXX)
	CACHE=$WORK/cache
	mkdir -p "$CACHE"
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$WORK/a.tar" --tag a:1 >/dev/null
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$WORK/b.tar" --tag b:1 --env B=1 >/dev/null
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$WORK/c.tar" --tag c:1 --env C=1 >/dev/null
	U=$CACHE/$(id -u)
	# what the default (ImageStorage=auto) keeps here: one SquashFS file
	# where squashfuse works, else the tree; gc counts either by its size
	LEAF=rootfs
	if "$BERTH" config | grep -q '^# charliecloud images here: squashfs'; then LEAF=rootfs.sqfs; fi
}

teardown() {
	rm -rf "$WORK"
}

digest_of() { "$BERTH" pull --cache-dir "$CACHE" "$1" | cut -d' ' -f1; }

@test "cache ls lists each staged image with its size, last use and source" {
	a=$(digest_of "$WORK/a.tar")
	b=$(digest_of "$WORK/b.tar")
	run "$BERTH" cache ls --cache-dir "$CACHE"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	grep -q "^$a .*$WORK/a.tar\$" <<<"$output"
	grep -q "^$b  *[0-9.]*M  *20[0-9-]* [0-9:]*  $WORK/b.tar\$" <<<"$output"
}

@test "cache gc evicts the least recently used first and keeps what fits" {
	a=$(digest_of "$WORK/a.tar")
	sleep 1.1
	b=$(digest_of "$WORK/b.tar")
	sleep 1.1
	c=$(digest_of "$WORK/c.tar")
	sleep 1.1
	digest_of "$WORK/a.tar" >/dev/null # a is now the most recent
	one=$(cat "$U/images/${c#sha256:}/size")
	run "$BERTH" cache gc --cache-dir "$CACHE" --max-size $((one * 2 + 4096))
	[ "$status" -eq 0 ]
	[[ "$output" == "evicted 1 image(s)"* ]]
	[ ! -e "$U/images/${b#sha256:}" ]   # least recently used
	[ -e "$U/images/${a#sha256:}/$LEAF" ]
	[ -e "$U/images/${c#sha256:}/$LEAF" ]
	[ -z "$(ls "$U/tmp")" ]
}

@test "cache gc never evicts an image a job is using (shared lock held)" {
	a=$(digest_of "$WORK/a.tar")
	# hold the entry's lock shared, as berth launch does for a running task
	flock -s "$U/locks/${a#sha256:}" sleep 5 &
	holder=$!
	sleep 0.3
	run "$BERTH" cache gc --cache-dir "$CACHE" --max-size 0
	kill $holder 2>/dev/null || true
	[ "$status" -eq 0 ]
	[[ "$output" == "evicted 0 image(s)"* ]]
	[ -e "$U/images/${a#sha256:}/$LEAF" ]
}

@test "an evicted image is converted again on the next pull" {
	a=$(digest_of "$WORK/a.tar")
	"$BERTH" cache gc --cache-dir "$CACHE" --max-size 0
	[ ! -e "$U/images/${a#sha256:}" ]
	run "$BERTH" pull --cache-dir "$CACHE" "$WORK/a.tar"
	[ "$output" = "$a converted" ]
}

@test "cache gc without a size says how to give one" {
	run env BERTH_CONFIG=/dev/null "$BERTH" cache gc --cache-dir "$CACHE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"--max-size"*"CacheMaxSize"* ]]
}

@test "cache gc refuses a malformed size" {
	run "$BERTH" cache gc --cache-dir "$CACHE" --max-size 12Q
	[ "$status" -eq 1 ]
	[[ "$output" == *"'12Q' is not a size"* ]]
}

@test "a cache folder open to other users is refused" {
	mkdir -p "$U"
	chmod 755 "$U"
	run "$BERTH" pull --cache-dir "$CACHE" "$WORK/a.tar"
	[ "$status" -eq 1 ]
	[[ "$output" == *"open to other users"*"0700"* ]]
}
