#!/usr/bin/env bats
# berth pull of images by URL, against a real HTTP server on loopback
# (tests/harness/fixtures/httpd.py): download once, a cached URL costs one
# conditional request and no body, a cut download resumes, errors are clear.

setup() {
	REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	BERTH=${BUILD:-$REPO/build}/berth
	WORK=$(mktemp -d /tmp/berth-url-test.XXXXXX)
	CACHE=$WORK/cache
	mkdir -p "$CACHE" "$WORK/www"
	DIGEST=$(python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$WORK/www/img.tar" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["config_digest"])')
	coproc HTTPD { exec python3 "$REPO/tests/harness/fixtures/httpd.py" --port 0 --dir "$WORK/www"; }
	read -r PORT <&"${HTTPD[0]}"
	URL=http://127.0.0.1:$PORT
	U=$CACHE/$(id -u)
}

teardown() {
	kill "$HTTPD_PID" 2>/dev/null || true
	rm -rf "$WORK"
}

stats() { curl -s "$URL/stats"; }

@test "an image fetched by URL is staged; its digest is the config's" {
	run "$BERTH" pull --cache-dir "$CACHE" "$URL/img.tar"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$DIGEST converted" ]
	# the default (ImageStorage=auto): one SquashFS file where squashfuse
	# works, else the tree
	e=$U/images/${DIGEST#sha256:}
	if "$BERTH" config | grep -q '^# charliecloud images here: squashfs'; then
		[ ! -e "$e/rootfs" ]
		unsquashfs -l "$e/rootfs.sqfs" | grep -qx 'squashfs-root/bin'
	else
		[ -d "$e/rootfs/bin" ]
	fi
}

@test "a cached URL costs one conditional request and no body" {
	"$BERTH" pull --cache-dir "$CACHE" "$URL/img.tar" >/dev/null 2>&1
	curl -s "$URL/reset" >/dev/null
	run "$BERTH" pull --cache-dir "$CACHE" "$URL/img.tar"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$DIGEST cached" ]
	[ "$(stats)" = "requests 1 bodies 0 ranges 0 conditional 1 not_modified 1" ]
}

@test "a download cut mid-body resumes with a Range request" {
	run "$BERTH" pull --cache-dir "$CACHE" "$URL/cut/img.tar"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$DIGEST converted" ]
	[[ "$(stats)" == "requests 2 "*"ranges 1 "* ]]
}

@test "404 names the status and the fix; nothing is left behind" {
	run "$BERTH" pull --cache-dir "$CACHE" "$URL/404"
	[ "$status" -eq 1 ]
	[[ "$output" == "berth: cannot fetch"*"404"*"check the image URL"* ]]
	[ -z "$(ls "$U/images")" ]
	[ -z "$(ls "$U/downloads" | grep -v '\.lock$')" ]
}

@test "500 is retried, then reported with its status" {
	run "$BERTH" pull --cache-dir "$CACHE" "$URL/500"
	[ "$status" -eq 1 ]
	[[ "$output" == *"500"*"gave up after"* ]]
}

@test "a body larger than CacheMaxSize is refused, naming the cap" {
	printf 'CacheMaxSize=1M\n' >"$WORK/berth.conf"
	run env BERTH_CONFIG="$WORK/berth.conf" "$BERTH" pull --cache-dir "$CACHE" "$URL/big/3000000"
	[ "$status" -eq 1 ]
	[[ "$output" == *"CacheMaxSize"* ]]
	[ -z "$(ls "$U/downloads" | grep -v '\.lock$')" ]
}

@test "progress is shown while downloading" {
	run "$BERTH" pull --cache-dir "$CACHE" "$URL/img.tar"
	[[ "$output" == *"berth: downloading: "*"MiB (100%)"* ]]
}

@test "file:// URLs work; other schemes are refused clearly" {
	run "$BERTH" pull --cache-dir "$CACHE" "file://$WORK/www/img.tar"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$DIGEST converted" ]
	run "$BERTH" pull --cache-dir "$CACHE" "ftp://127.0.0.1/img.tar"
	[ "$status" -eq 1 ]
	[[ "$output" == "berth: "* ]]
}

@test "a URL pinned at submission: the same file is used, a changed one is refused" {
	run "$BERTH" resolve "$URL/img.tar"
	[ "$status" -eq 0 ]
	[[ "$output" == "$URL/img.tar@@etag:%22"*"%22" ]] # the ETag, quotes encoded
	pin="etag:${output#*@@etag:}"
	pin=${pin//%22/\"}
	run "$BERTH" pull --cache-dir "$CACHE" --pin "$pin" "$URL/img.tar"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$DIGEST converted" ]
	# the cached copy has that ETag: no request at all
	curl -s "$URL/reset" >/dev/null
	run "$BERTH" pull --cache-dir "$CACHE" --pin "$pin" "$URL/img.tar"
	[ "${lines[-1]}" = "$DIGEST cached" ]
	[[ "$(stats)" == "requests 0 "* ]]
	# the file changes on the server: the pinned job refuses it
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$WORK/www/img.tar" --workdir /new >/dev/null
	rm -rf "$CACHE"/*/downloads
	run "$BERTH" pull --cache-dir "$CACHE" --pin "$pin" "$URL/img.tar"
	[ "$status" -eq 1 ]
	[[ "$output" == *"the file changed after the job was submitted"*"412"*"resubmit the job"* ]]
	[ -z "$(ls "$U/downloads" | grep -v '\.lock$')" ]
}

@test "a URL whose server names no version is not pinned" {
	run "$BERTH" resolve "$URL/big/1000"
	[ "$status" -eq 0 ]
	[ "$output" = "$URL/big/1000" ]
	run "$BERTH" resolve "$URL/404"
	[ "$status" -eq 1 ]
	[[ "$output" == *"404"* ]]
}

@test "--image-stdin: a URL's password and query stay off argv; resolve and the cache show it masked" {
	secret="http://me:hunter2@127.0.0.1:$PORT/img.tar?X-Amz-Signature=topsecret"
	run "$BERTH" resolve --image-stdin <<<"$secret"
	[ "$status" -eq 0 ]
	[[ "$output" == "http://***@127.0.0.1:$PORT/img.tar?***|sha256:"*"@@etag:%22"*"%22" ]]
	run "$BERTH" pull --cache-dir "$CACHE" --image-stdin <<<"$secret"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$DIGEST converted" ]
	! grep -rlF -e hunter2 -e topsecret "$U"
	[ "$(cat "$U/images/${DIGEST#sha256:}/source")" = "http://***@127.0.0.1:$PORT/img.tar?***" ]
	# one line on stdin, capped; none, too long, or an operand as well: usage
	run "$BERTH" pull --cache-dir "$CACHE" --image-stdin </dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"stdin is empty"* ]]
	run "$BERTH" fetch --cache-dir "$CACHE" --image-stdin < <(head -c 9000 /dev/zero | tr '\0' a)
	[ "$status" -eq 2 ]
	[[ "$output" == *"too long"* ]]
	run "$BERTH" fetch --cache-dir "$CACHE" --image-stdin "$URL/img.tar" </dev/null
	[ "$status" -eq 2 ]
}
