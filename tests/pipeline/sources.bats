#!/usr/bin/env bats
# Images from elsewhere on the node, through the berth command (issue 26,
# items 8 and 9): dockerd://NAME, exported from the real dockerd as the
# calling user (a user who may not use the socket is refused), staged and
# cached like an archive; and the site's Importer= (the stand-in
# tests/harness/fixtures/importer.sh, which caches by digest).
#
# Run as root: bats --tap tests/pipeline/sources.bats

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BERTH=${BUILD:-$REPO/build}/berth
MKIMAGE=$REPO/tests/harness/fixtures/mkimage.py
SOCK=/var/run/docker.sock
OUTSIDER=berthother # a test user outside the socket's group

setup_file() {
	umask 022
	WORK=$(mktemp -d /tmp/berth-sources-test.XXXXXX)
	chmod 755 "$WORK"
	export WORK
	mkdir -p "$WORK/importer/src"
	cp "$REPO/tests/harness/fixtures/importer.sh" "$WORK/importer/importer"
	python3 "$MKIMAGE" legacy "$WORK/importer/src/one.tar" --tag site/one:1 --workdir /one >/dev/null
	python3 "$MKIMAGE" rootfs "$WORK/rootfs" >/dev/null
	# an OCI image layout folder (a docker save of Docker 25+, unpacked),
	# and one whose layer lies about its digest
	python3 "$MKIMAGE" oci "$WORK/lay.tar" --tag site/lay:1 --workdir /lay --no-manifest-json >/dev/null
	mkdir "$WORK/importer/src/lay.oci" && tar -xf "$WORK/lay.tar" -C "$WORK/importer/src/lay.oci"
	cp -R "$WORK/importer/src/lay.oci" "$WORK/importer/src/lying.oci"
	python3 - "$WORK/importer/src/lying.oci" <<'PY'
import json, os, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
layer = d + "/blobs/sha256/" + m["layers"][-1]["digest"][7:]
data = bytearray(open(layer, "rb").read())
data[len(data) // 2] ^= 0xff
open(layer, "wb").write(bytes(data))
PY
	# one whose index.json lists two images, one whose index.json is a symlink
	cp -R "$WORK/importer/src/lay.oci" "$WORK/importer/src/two.oci"
	python3 -c 'import json,sys; p=sys.argv[1]; i=json.load(open(p)); i["manifests"]*=2; json.dump(i,open(p,"w"))' \
		"$WORK/importer/src/two.oci/index.json"
	cp -R "$WORK/importer/src/lay.oci" "$WORK/importer/src/link.oci"
	mv "$WORK/importer/src/link.oci/index.json" "$WORK/importer/src/link.oci/real.json"
	ln -s real.json "$WORK/importer/src/link.oci/index.json"
	# a truncated archive, and a huge one (sparse)
	head -c 20000 "$WORK/importer/src/one.tar" >"$WORK/importer/src/truncated.tar"
	truncate -s 64M "$WORK/importer/src/huge.tar"
	mksquashfs "$WORK/rootfs" "$WORK/importer/src/flat.sqfs" -quiet -noappend >/dev/null
	if curl -sf --max-time 5 --unix-socket "$SOCK" http://x/_ping >/dev/null; then
		python3 "$MKIMAGE" legacy "$WORK/d1.tar" --tag berth-src/dk:1 --workdir /dk1 \
			--label berth.test=sources >/dev/null
		python3 "$MKIMAGE" legacy "$WORK/d2.tar" --tag berth-src/dk:1 --workdir /dk2 \
			--label berth.test=sources >/dev/null
	fi
}

teardown_file() {
	for t in berth-src/dk:1 "$(id1)" "$(id2)"; do
		[ -n "$t" ] && curl -sf --unix-socket "$SOCK" -X DELETE "http://x/images/$t?force=1" >/dev/null 2>&1
	done
	[ -n "${WORK:-}" ] && rm -rf "$WORK"
	return 0
}

setup() {
	CACHE=$WORK/cache-$BATS_TEST_NUMBER
	mkdir -p "$CACHE"
	chmod 777 "$CACHE"
	export BERTH_CONFIG=$WORK/berth-$BATS_TEST_NUMBER.conf
	printf 'CacheDir=%s\nAllowedRuntimes=charliecloud,singularity,docker\nSingularityPath=%s\n' "$CACHE" "${BERTH_TEST_SINGULARITY:-$REPO/tests/harness/fakes/singularity}" >"$BERTH_CONFIG"
}

needs_docker() {
	curl -sf --max-time 5 --unix-socket "$SOCK" http://x/_ping >/dev/null ||
		skip "dockerd is not running (tests/harness/cluster/dockerd.sh start)"
}

config_id() { tar -xOf "$1" manifest.json | python3 -c 'import json,sys; print("sha256:" + json.load(sys.stdin)[0]["Config"][:64])'; }
id1() { [ -f "$WORK/d1.tar" ] && config_id "$WORK/d1.tar"; }
id2() { [ -f "$WORK/d2.tar" ] && config_id "$WORK/d2.tar"; }
dload() { curl -sf --unix-socket "$SOCK" -X POST -H "Content-Type: application/x-tar" --data-binary @"$1" "http://x/images/load?quiet=1" >/dev/null; }

# ---- dockerd:// -------------------------------------------------------------

@test "dockerd://: an image the node's Docker holds runs, verified and cached by its ID" {
	needs_docker
	dload "$WORK/d1.tar"
	run "$BERTH" run --runtime charliecloud --image dockerd://berth-src/dk:1 -- pwd
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$output" = /dk1 ]
	run "$BERTH" pull --runtime charliecloud dockerd://berth-src/dk:1
	[ "$output" = "$(id1) cached" ]
	# exported once per image ID, into the user's own cache
	archives=("$CACHE"/0/downloads/dockerd-*.tar)
	[ "${#archives[@]}" -eq 1 ]
	[ "${archives[0]}" = "$CACHE/0/downloads/dockerd-$(id1 | cut -c8-).tar" ]
	before=$(stat -c %Y.%i "${archives[0]}")
	"$BERTH" pull --runtime singularity dockerd://berth-src/dk:1 >/dev/null
	[ "$(stat -c %Y.%i "${archives[0]}")" = "$before" ]
	# the tag moved to another image: that one is exported and run
	dload "$WORK/d2.tar"
	run "$BERTH" run --runtime charliecloud --image dockerd://berth-src/dk:1 -- pwd
	[ "$output" = /dk2 ]
	# by image ID too
	run "$BERTH" run --runtime charliecloud --image "dockerd://$(id1)" -- pwd
	[ "$output" = /dk1 ]
	# what Docker does not have is named as such
	run "$BERTH" pull --runtime charliecloud dockerd://berth-src/nothing:1
	[ "$status" -ne 0 ]
	[[ "$output" == *"this node's Docker has no image berth-src/nothing:1"* ]]
}

@test "dockerd://: a user who may not use Docker's socket is refused and gets nothing" {
	needs_docker
	dload "$WORK/d1.tar"
	! id -nG "$OUTSIDER" | grep -qw docker
	run runuser -u "$OUTSIDER" -- env BERTH_CONFIG="$BERTH_CONFIG" \
		"$BERTH" run --runtime charliecloud --image dockerd://berth-src/dk:1 -- pwd
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"you may not use this node's Docker"*"permission denied"*"docker save IMAGE -o FILE.tar"* ]]
	[[ "$output" != */dk1* ]]
	# the docker runtime's user-side fetch (root then loads what it printed)
	run runuser -u "$OUTSIDER" -- env BERTH_CONFIG="$BERTH_CONFIG" \
		"$BERTH" fetch dockerd://berth-src/dk:1
	[ "$status" -ne 0 ]
	[[ "$output" == *"you may not use this node's Docker"* ]]
	uid=$(id -u "$OUTSIDER")
	[ -z "$(find "$CACHE/$uid" -name 'dockerd-*' 2>/dev/null)" ]
	[ ! -d "$CACHE/$uid/images" ] || [ -z "$(ls "$CACHE/$uid/images")" ]
}

@test "dockerd://: a name with path tricks is refused; a daemon export that is no archive is not kept" {
	needs_docker
	for name in ../../containers/json a//b a/./b /abs a/ .hidden; do
		run "$BERTH" pull --runtime charliecloud "dockerd://$name"
		[ "$status" -ne 0 ]
		[[ "$output" == *"dockerd://$name: '$name' is not an image name"*"give dockerd://REPO[:TAG]"* ]]
	done
	# a daemon whose export is not a docker-save archive (a stand-in on
	# its own socket): named, and nothing published for the next job
	python3 - "$WORK/fake.sock" <<'PY' &
import http.server, os, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"OK"
        if self.path.endswith("/json"):
            body = b'{"Id":"sha256:' + b"a" * 64 + b'"}'
        elif self.path.endswith("/get"):
            body = b"this is not a tar archive\n" * 100
        self.send_response(200)
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
class S(socketserver.UnixStreamServer):
    def get_request(self):
        r, _ = super().get_request()
        return r, ("local", 0)
H.protocol_version = "HTTP/1.1"
S(sys.argv[1], H).serve_forever()
PY
	fake=$!
	for _ in $(seq 50); do [ -S "$WORK/fake.sock" ] && break; sleep 0.1; done
	echo "DockerSocket=$WORK/fake.sock" >>"$BERTH_CONFIG"
	run "$BERTH" pull --runtime charliecloud dockerd://some/image:1
	kill "$fake"
	rm -f "$WORK/fake.sock"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"dockerd://some/image:1: this node's Docker ($WORK/fake.sock) exported image sha256:aaaaaaaaaaaa as something that is not a docker-save archive; ask the site's administrators"* ]]
	[ -z "$(ls "$CACHE/0/downloads" | grep -v '\.lock$')" ]
}

# ---- Importer= --------------------------------------------------------------

@test "Importer=: what it claims is fetched as the user and staged like an archive; it caches by digest" {
	echo "Importer=$WORK/importer/importer" >>"$BERTH_CONFIG"
	run "$BERTH" run --runtime charliecloud --image site://one -- pwd
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "${lines[-1]}" = /one ]
	[[ "$output" == *"importer: one is "* ]] # its messages reach the user
	run "$BERTH" pull --runtime charliecloud site://one
	[[ "${lines[-1]}" == "sha256:"*" cached" ]]
	# the importer's folder in the user's cache; one copy for two jobs
	[ "$(wc -l <"$CACHE/0/imports/fetched.log")" -eq 1 ]
	[ "$(stat -c %a "$CACHE/0/imports")" = 700 ]
	# a SquashFS it hands back runs as it is with singularity
	run "$BERTH" pull --runtime singularity site://flat
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[[ "${lines[-1]}" == "$CACHE/0/imports/"*".sqfs as-is" ]]
	# what it does not claim is berth's own business (a file here)
	run "$BERTH" run --runtime charliecloud --image "$WORK/importer/src/one.tar" -- pwd
	[ "$output" = /one ]
	[ "$(wc -l <"$CACHE/0/imports/fetched.log")" -eq 2 ] # one.tar, flat.sqfs
}

@test "Importer=: its failures are named, a hung importer is stopped at FetchTimeout" {
	printf 'Importer=%s\nFetchTimeout=1\n' "$WORK/importer/importer" >>"$BERTH_CONFIG"
	run "$BERTH" pull --runtime charliecloud site://missing
	[ "$status" -ne 0 ]
	[[ "$output" == *"importer: no image missing"*"could not fetch site://missing (exit 3"* ]]
	run "$BERTH" pull --runtime charliecloud site://broken
	[ "$status" -ne 0 ]
	[[ "$output" == *"its last line is not an absolute path ('not a path')"*"ask the site's administrators"* ]]
	SECONDS=0
	run "$BERTH" pull --runtime charliecloud site://sleep
	[ "$status" -ne 0 ]
	[ "$SECONDS" -lt 10 ]
	[[ "$output" == *stopped* ]]
	[[ "$output" == *"importer: "*"stopped: it did not finish within 1 s"* ]]
	# a reference with a password is never put on its command line (ps
	# shows it to everyone): the importer is not asked, nor is it shown
	run "$BERTH" pull --runtime charliecloud "site://u:secret@host/x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"not a registry image either"* && "$output" != *secret* ]]
	grep -q '^site://missing$' "$WORK/importer/claims.log"
	! grep -q secret "$WORK/importer/claims.log"
}

@test "Importer=: an OCI image layout folder it hands back is verified and staged on every runtime" {
	echo "Importer=$WORK/importer/importer" >>"$BERTH_CONFIG"
	# a layer that lies about its digest: refused, nothing kept
	run "$BERTH" run --runtime charliecloud --image site://lying -- pwd
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"fetched site://lying as the folder $CACHE/0/imports/"*"not an image berth accepts (ask the site's administrators to fix the importer): blob sha256:"*"does not match its digest (content is sha256:"* ]]
	[ -z "$(ls "$CACHE"/0/downloads | grep -v '\.lock$')" ]
	[ ! -d "$CACHE/0/images" ] || [ -z "$(ls "$CACHE/0/images")" ]
	[ -z "$(ls -A "$CACHE/0/tmp")" ]
	run "$BERTH" run --runtime charliecloud --image site://lay -- pwd
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "${lines[-1]}" = /lay ]
	[[ "$output" == *"importer: lay is the layout "* ]]
	run "$BERTH" run --runtime singularity --image site://lay -- pwd
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "${lines[-1]}" = /lay ]
	# the docker runtime's user-side fetch hands root a docker-save archive
	run "$BERTH" fetch site://lay
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[[ "${lines[-1]}" == "$CACHE/0/downloads/import-"*.tar ]]
	tar -tf "${lines[-1]}" | grep -qx manifest.json
	# written once, one copy by the importer
	[ "$(ls "$CACHE"/0/downloads/import-*.tar | wc -l)" -eq 1 ]
	[ "$(grep -c '^lay ' "$CACHE/0/imports/fetched.log")" -eq 1 ]
}

@test "Importer=: a broken or hostile importer's answer is refused by name, leaving nothing behind" {
	printf 'Importer=%s\nFetchTimeout=5\nCacheMaxSize=32M\n' "$WORK/importer/importer" >>"$BERTH_CONFIG"
	check() { # NAME, then what the message must say
		run timeout 20 "$BERTH" run --runtime charliecloud --image "site://$1" -- true
		echo "$1: $output"
		[ "$status" -ne 0 ] && [ "$status" -ne 124 ]
		[[ "$output" == *"berth: "*"$2"* ]]
		[ ! -d "$CACHE/0/images" ] || [ -z "$(ls "$CACHE/0/images")" ]
		[ ! -d "$CACHE/0/tmp" ] || [ -z "$(ls -A "$CACHE/0/tmp")" ]
		[ ! -d "$CACHE/0/downloads" ] || [ -z "$(ls "$CACHE/0/downloads" | grep -v '\.lock$')" ]
	}
	fix="ask the site's administrators to fix it"
	check empty "printed nothing; the importer must print"
	check fifo "$CACHE/0/imports/fifo is a fifo; the importer must print"
	check shadow "$CACHE/0/imports/shadow is a symlink, which berth does not follow"
	check outside "$WORK/importer/src/one.tar is outside its folder; the importer must print, as its last line, the absolute path of a file or OCI layout folder it wrote in $CACHE/0/imports: $fix"
	check notlayout "not an image berth accepts (ask the site's administrators to fix the importer): not an OCI image layout (oci-layout, index.json, blobs/sha256/): $CACHE/0/imports/notlayout/oci-layout is missing"
	check two "index.json lists 2 images; a layout given to berth must hold exactly one image manifest"
	check link "index.json is a symlink (berth reads plain files only)"
	check truncated "which berth could not stage (if the file is damaged, ask the site's administrators to fix the importer): image archive $CACHE/0/imports/"
	check huge "is 67108864 bytes, more than CacheMaxSize"
	check secret "could not fetch site://secret (exit 4"
	# no background child of the importer outlives it
	run "$BERTH" pull --runtime charliecloud site://orphan
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	pid=$(cat "$CACHE/0/imports/orphan.pid")
	gone() { [ ! -e "/proc/$1" ] || [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" = Z ]; }
	for _ in $(seq 50); do gone "$pid" && break; sleep 0.1; done
	gone "$pid"
}

@test "gc: dockerd:// exports and importer layouts are removed unless a process holds them; sweep removes killed ones" {
	echo "Importer=$WORK/importer/importer" >>"$BERTH_CONFIG"
	run "$BERTH" fetch site://lay
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dl=$CACHE/0/downloads
	lay=$(ls "$dl"/import-*.tar)
	stem=${lay%.tar}
	# what a killed export leaves: a part; and a finished dockerd export
	hex=$(printf '%064d' 7)
	echo partial >"$stem.tar.part-99999"
	cp "$lay" "$dl/dockerd-$hex.tar"
	# sweep (after a stopped staging, and at every docker load): parts only
	"$BERTH" cache sweep
	[ ! -e "$stem.tar.part-99999" ]
	[ -f "$lay" ] && [ -f "$dl/dockerd-$hex.tar" ]
	# gc: one in use (a job holds its lock shared) stays, the rest goes
	echo partial >"$dl/dockerd-$hex.tar.part-99999"
	flock -s "$stem.lock" -c "\"$BERTH\" cache gc --max-size 10G"
	[ -f "$lay" ]
	[ ! -e "$dl/dockerd-$hex.tar" ] && [ ! -e "$dl/dockerd-$hex.tar.part-99999" ]
	"$BERTH" cache gc --max-size 10G
	[ ! -e "$lay" ]
	# the entry itself stays, and the next job makes the archive again
	run "$BERTH" run --runtime charliecloud --image site://lay -- pwd
	[ "${lines[-1]}" = /lay ]
}
