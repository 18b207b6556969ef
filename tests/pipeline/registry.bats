#!/usr/bin/env bats
# Registry images: the real build/berth against real registries started on
# loopback by tests/harness/registry/start.sh (Debian's docker-registry 2.8, filled
# with skopeo): anonymous, Basic, Bearer token, TLS with a test CA, a
# multi-platform index, and a fault proxy that cuts, corrupts and counts.
#
# Run as root: bats --tap tests/pipeline/registry.bats

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BERTH=$REPO/build/berth
MKIMAGE=$REPO/tests/harness/fixtures/mkimage.py
REG=$REPO/tests/harness/registry

setup_file() {
	[ -x "$BERTH" ] || { echo "build/berth missing: run make all" >&2; return 1; }
	command -v docker-registry skopeo >/dev/null ||
		{ echo "docker-registry and skopeo are needed (tests/harness/cluster/packages.sh)" >&2; return 1; }
	umask 022
	WORK=$(mktemp -d /tmp/berth-registry-test.XXXXXX)
	chmod 755 "$WORK"
	mkdir -p "$WORK/img" "$WORK/home"
	export WORK
	# Images: one (workdir /one), two (workdir /two: shares the lower layers
	# with one), big (several MiB, to cut mid-blob), amd64/arm64 for an index.
	python3 "$MKIMAGE" oci "$WORK/img/one.tar" --tag berth/one:1 --workdir /one >/dev/null
	python3 "$MKIMAGE" oci "$WORK/img/two.tar" --tag berth/two:1 --workdir /two >/dev/null
	python3 "$MKIMAGE" oci "$WORK/img/big.tar" --tag berth/big:1 --big-mb 8 >/dev/null
	python3 "$MKIMAGE" oci "$WORK/img/amd64.tar" --workdir /amd64 >/dev/null
	python3 "$MKIMAGE" oci "$WORK/img/arm64.tar" --workdir /arm64 >/dev/null
	# Plain registry behind the fault proxy: most cases use it.
	start_registry plain --proxy
	push plain "$WORK/img/one.tar" berth/one:1
	push plain "$WORK/img/two.tar" berth/two:1
	push plain "$WORK/img/big.tar" berth/big:1
	bash "$REG/mkindex.sh" "$WORK/index" "$WORK/img/amd64.tar" "$WORK/img/arm64.tar" multi \
		>"$WORK/index.json"
	push plain oci:"$WORK/index":multi berth/multi:1
}

teardown_file() {
	for d in "$WORK"/reg-*; do
		[ -d "$d" ] && bash "$REG/stop.sh" "$d" >/dev/null 2>&1
	done
	[ -n "${WORK:-}" ] && rm -rf "$WORK"
}

setup() {
	umask 022
	export HOME=$WORK/home
	rm -rf "$HOME" && mkdir -p "$HOME"
	CACHE=$WORK/cache-$BATS_TEST_NUMBER
	mkdir -p "$CACHE"
	conf # the default: the plain registry, over http
}

# ---- helpers ---------------------------------------------------------------

# start_registry NAME [start.sh options]: a registry in $WORK/reg-NAME.
start_registry() {
	local name=$1
	shift
	bash "$REG/start.sh" "$WORK/reg-$name" "$@" >/dev/null
}

# reg NAME VAR: a value from that registry's env file.
reg() {
	(set -a; . "$WORK/reg-$1/env"; eval "echo \"\${$2:-}\"")
}

push() {
	local name=$1
	shift
	bash "$REG/push.sh" --env "$WORK/reg-$name/env" "$@" >/dev/null
}

# conf [EXTRA LINE...]: berth.conf for this test: own cache, the plain
# registry (and $INSECURE) over http, extra lines appended.
conf() {
	export BERTH_CONFIG=$WORK/berth-$BATS_TEST_NUMBER.conf
	{
		echo "CacheDir=$CACHE"
		echo "InsecureRegistries=$(reg plain REGISTRY)${INSECURE:+,$INSECURE}"
		printf '%s\n' "$@"
	} >"$BERTH_CONFIG"
}

P() { reg plain REGISTRY; }

# mark_log; count_gets PATTERN: blob GETs through the plain registry's
# proxy since the mark (other cases pull the same images).
mark_log() { LOG_FROM=$(wc -l <"$(reg plain PROXY_LOG)"); }
count_gets() {
	tail -n +$((${LOG_FROM:-0} + 1)) "$(reg plain PROXY_LOG)" |
		grep -c " GET /v2/[^ ]*/blobs/$1" || true
}

layers_of() { # the pushed manifest's layer digests
	skopeo inspect --raw --tls-verify=false "docker://$(P)/$1" | jq -r '.layers[].digest'
}

no_leftovers() {
	run find "$CACHE" -mindepth 1 \( -name '*.part-*' -o -path "$CACHE/0/tmp/*" \) -print
	[ -z "$output" ] || { echo "left behind: $output"; return 1; }
}

# ---- references and the cache ----------------------------------------------

@test "a registry image pulls, runs, and keeps its blobs content-addressed" {
	run "$BERTH" pull --runtime charliecloud "$(P)/berth/one:1"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[[ "$output" == *"sha256:"*"converted"* ]]
	run "$BERTH" run --runtime charliecloud --image "$(P)/berth/one:1" -- /bin/sh -c 'pwd; ls -d /one'
	[ "$status" -eq 0 ]
	[[ "$output" == *"/one"* ]]
	# every blob is stored under its own digest, and verified
	for f in "$CACHE"/0/blobs/sha256/*; do
		[ "sha256:$(sha256sum <"$f" | cut -d' ' -f1)" = "sha256:$(basename "$f")" ]
	done
	no_leftovers
}

@test "the same image by docker://, by REG#REPO:TAG and by digest is one cache entry" {
	a=$("$BERTH" pull --runtime charliecloud "docker://$(P)/berth/one:1" | cut -d' ' -f1)
	b=$("$BERTH" pull --runtime charliecloud "$(P)#berth/one:1" | cut -d' ' -f1)
	pinned=$("$BERTH" resolve "$(P)/berth/one:1")
	[[ "$pinned" == "$(P)/berth/one:1@sha256:"* ]]
	run "$BERTH" pull --runtime charliecloud "$pinned"
	[ "$a" = "$b" ]
	[[ "$output" == "$a cached" ]]
	[ "$(ls "$CACHE/0/images" | wc -l)" -eq 1 ]
}

@test "a warm pinned image costs no registry request" {
	pinned=$("$BERTH" resolve "$(P)/berth/one:1")
	"$BERTH" pull --runtime charliecloud "$pinned" >/dev/null
	before=$(wc -l <"$(reg plain PROXY_LOG)")
	run "$BERTH" pull --runtime charliecloud "$pinned"
	[ "$status" -eq 0 ]
	[[ "$output" == *cached ]]
	[ "$(wc -l <"$(reg plain PROXY_LOG)")" -eq "$before" ]
}

@test "an image sharing all but one layer fetches only the new layer" {
	mark_log
	"$BERTH" pull --runtime charliecloud "$(P)/berth/one:1" >/dev/null
	mapfile -t one < <(layers_of berth/one:1)
	mapfile -t two < <(layers_of berth/two:1)
	shared=0
	for l in "${two[@]}"; do [[ " ${one[*]} " == *" $l "* ]] && shared=$((shared + 1)); done
	[ "$shared" -ge 1 ] # the fixture really shares layers
	run "$BERTH" pull --runtime charliecloud "$(P)/berth/two:1"
	[ "$status" -eq 0 ]
	for l in "${two[@]}"; do
		if [[ " ${one[*]} " == *" $l "* ]]; then
			[ "$(count_gets "$l")" -eq 1 ] # only by the first pull
		else
			[ "$(count_gets "$l")" -ge 1 ]
		fi
	done
}

@test "a multi-platform index runs this node's platform" {
	want=$(jq -r '.configs.amd64 // .amd64.config // empty' "$WORK/index.json")
	run "$BERTH" inspect "$(P)/berth/multi:1"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[[ "$output" == *"workdir     /amd64"* ]]
	[[ "$output" == *"pinned      $(jq -r '.index // .index_digest' "$WORK/index.json")"* ]] ||
		[[ "$output" == *"pinned      sha256:"* ]]
	[ -z "$want" ] || [[ "$output" == *"$want"* ]]
}

@test "an index without this node's platform is refused, naming the platforms it has" {
	mkdir -p "$WORK/armonly"
	skopeo copy --quiet --override-arch arm64 --override-variant v8 --all --preserve-digests \
		--dest-tls-verify=false --src-tls-verify=false \
		"docker://$(P)/berth/multi:1" "docker://$(P)/berth/multi:armonly" 2>/dev/null || true
	# Write an index with only the arm64 entry and push it.
	idx=$(jq -c '.manifests |= map(select(.platform.architecture == "arm64"))' \
		"$WORK/index/blobs/sha256/$(jq -r '.manifests[0].digest' "$WORK/index/index.json" | cut -d: -f2)")
	[ -n "$idx" ]
	mkdir -p "$WORK/armonly/blobs/sha256"
	cp -r "$WORK/index/blobs/sha256/." "$WORK/armonly/blobs/sha256/"
	printf '%s' "$idx" >"$WORK/armonly/idx"
	d=$(sha256sum <"$WORK/armonly/idx" | cut -d' ' -f1)
	mv "$WORK/armonly/idx" "$WORK/armonly/blobs/sha256/$d"
	cp "$WORK/index/oci-layout" "$WORK/armonly/"
	jq -c --arg d "sha256:$d" --argjson s "${#idx}" \
		'.manifests[0].digest = $d | .manifests[0].size = $s' \
		"$WORK/index/index.json" >"$WORK/armonly/index.json"
	push plain oci:"$WORK/armonly":multi berth/armonly:1
	run "$BERTH" pull --runtime charliecloud "$(P)/berth/armonly:1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"no manifest for this node's platform linux/amd64"* ]]
	[[ "$output" == *"linux/arm64/v8"* ]]
	no_leftovers
}

@test "a tag moved after pinning: the pinned reference keeps the old image" {
	push plain "$WORK/img/one.tar" berth/moving:1
	pinned=$("$BERTH" resolve "$(P)/berth/moving:1")
	push plain "$WORK/img/two.tar" berth/moving:1
	run "$BERTH" run --runtime charliecloud --image "$pinned" -- /bin/sh -c 'ls -d /one /two 2>/dev/null'
	[ "$output" = /one ]
	run "$BERTH" run --runtime charliecloud --image "$(P)/berth/moving:1" -- /bin/sh -c 'ls -d /one /two 2>/dev/null'
	[ "$output" = /two ]
}

@test "docker gets the same verified image as a docker-save archive" {
	docker info >/dev/null 2>&1 || skip "dockerd is not running"
	run "$BERTH" fetch "$(P)/berth/one:1"
	[ "$status" -eq 0 ]
	archive=${lines[-1]}
	[ -f "$archive" ]
	id=$("$BERTH" pull --runtime charliecloud "$(P)/berth/one:1" | cut -d' ' -f1)
	run "$BERTH" inspect "$archive"
	[[ "$output" == *"digest      $id"* ]]
	docker load -q -i "$archive" >/dev/null
	[ "$(docker image inspect --format '{{.Id}}' "$id")" = "$id" ]
	docker rmi "$id" >/dev/null
}

# ---- faults ----------------------------------------------------------------

@test "a connection cut mid-blob is resumed with a Range request" {
	big=$(layers_of berth/big:1 | tail -n +1 | while read -r l; do
		s=$(skopeo inspect --raw --tls-verify=false "docker://$(P)/berth/big:1" |
			jq -r --arg l "$l" '.layers[] | select(.digest == $l) | .size')
		echo "$s $l"; done | sort -n | tail -1 | cut -d' ' -f2)
	echo "cut $big 100000" >"$(reg plain PROXY_CTL)"
	run "$BERTH" pull --runtime charliecloud "$(P)/berth/big:1"
	: >"$(reg plain PROXY_CTL)"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	grep -q "GET /v2/berth/big/blobs/$big - 200 cut=100000" "$(reg plain PROXY_LOG)"
	grep -q "GET /v2/berth/big/blobs/$big bytes=100000- 206" "$(reg plain PROXY_LOG)"
	[ "sha256:$(sha256sum <"$CACHE/0/blobs/sha256/${big#sha256:}" | cut -d' ' -f1)" = "$big" ]
	no_leftovers
}

@test "a blob with a wrong digest is refused and nothing is kept" {
	l=$(layers_of berth/two:1 | tail -1)
	echo "corrupt $l" >"$(reg plain PROXY_CTL)"
	run "$BERTH" pull --runtime charliecloud "$(P)/berth/two:1"
	: >"$(reg plain PROXY_CTL)"
	[ "$status" -ne 0 ]
	[[ "$output" == *"does not match its digest"*"nothing was kept"* ]]
	[ ! -e "$CACHE/0/blobs/sha256/${l#sha256:}" ]
	[ -z "$(ls -A "$CACHE/0/images" 2>/dev/null)" ]
	no_leftovers
}

@test "rate limiting names the retry time; unknown names and tags say so" {
	echo "status /v2/berth/one/manifests 429 120" >"$(reg plain PROXY_CTL)"
	run "$BERTH" pull --runtime charliecloud "$(P)/berth/one:1"
	: >"$(reg plain PROXY_CTL)"
	[ "$status" -ne 0 ]
	[[ "$output" == *"rate limiting (429"*"retry after 120 s"* ]]
	run "$BERTH" pull --runtime charliecloud "$(P)/berth/nosuch:1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"has no image $(P)/berth/nosuch:1: unknown repository or tag"* ]]
	run "$BERTH" pull --runtime charliecloud "$(P)/berth/one:nosuchtag"
	[[ "$output" == *"unknown repository or tag"* ]]
	run "$BERTH" pull --runtime charliecloud "$(P)/Berth/One:1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"not a file here, and not a registry image"*"REPOSITORY"* ]]
}

@test "16 pulls of a cold image at once fetch each blob once" {
	mark_log
	for i in $(seq 16); do
		"$BERTH" pull --runtime charliecloud "$(P)/berth/big:1" >"$WORK/par.$i" 2>&1 &
	done
	wait
	for i in $(seq 16); do grep -q 'sha256:' "$WORK/par.$i" || { cat "$WORK/par.$i"; false; }; done
	while read -r l; do
		n=$(count_gets "$l")
		[ "$n" -eq 1 ] || { echo "$l fetched $n times"; false; }
	done < <(layers_of berth/big:1)
	[ "$(ls "$CACHE/0/images" | wc -l)" -eq 1 ]
	no_leftovers
}

# ---- TLS and plain HTTP ----------------------------------------------------

@test "TLS is verified: a private CA works from RegistryCertsDir and fails without it" {
	start_registry tls --tls
	push tls "$WORK/img/one.tar" berth/one:1
	r=$(reg tls REGISTRY)
	run "$BERTH" pull --runtime charliecloud "$r/berth/one:1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"TLS failed"*"/etc/docker/certs.d/$r/ca.crt"* ]]
	mkdir -p "$WORK/certs.d/$r"
	cp "$(reg tls REGISTRY_CA)" "$WORK/certs.d/$r/ca.crt"
	conf "RegistryCertsDir=$WORK/certs.d"
	run "$BERTH" pull --runtime charliecloud "$r/berth/one:1"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	bash "$REG/stop.sh" "$WORK/reg-tls"
}

@test "plain HTTP only for registries the site lists" {
	conf
	sed -i '/^InsecureRegistries=/d' "$BERTH_CONFIG"
	run "$BERTH" pull --runtime charliecloud "$(P)/berth/one:1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"TLS failed"*"InsecureRegistries"* ]]
}

# ---- credentials -----------------------------------------------------------

@test "Basic auth: no credentials says how to log in; berth login stores them 0600" {
	start_registry basic --auth basic
	push basic "$WORK/img/one.tar" berth/one:1
	r=$(reg basic REGISTRY)
	INSECURE=$r conf
	run "$BERTH" pull --runtime charliecloud "$r/berth/one:1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"wants credentials"*"berth login $r"* ]]
	printf 'wrong\n' | "$BERTH" login --no-check --username alice "$r"
	run "$BERTH" pull --runtime charliecloud "$r/berth/one:1"
	[[ "$output" == *"refused the credentials of alice"* ]]
	run "$BERTH" login --username alice "$r" <<<"$(reg basic REGISTRY_PASS)"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(stat -c %a "$HOME/.config/berth/credentials")" = 600 ]
	[ "$(grep -c "machine $r" "$HOME/.config/berth/credentials")" -eq 1 ]
	run "$BERTH" pull --runtime charliecloud "$r/berth/one:1"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	# never in the cache
	! grep -rq "s3cret" "$CACHE"
	chmod 644 "$HOME/.config/berth/credentials"
	run "$BERTH" pull --runtime charliecloud "$r/berth/one:1"
	[[ "$output" == *"others may read it"*"chmod 600"* ]]
	bash "$REG/stop.sh" "$WORK/reg-basic"
}

@test "Docker's config.json auths are used" {
	start_registry basic2 --auth basic
	push basic2 "$WORK/img/one.tar" berth/one:1
	r=$(reg basic2 REGISTRY)
	INSECURE=$r conf
	mkdir -p "$HOME/.docker"
	printf '{"auths":{"%s":{"auth":"%s"}}}' "$r" "$(printf 'bob:bobpw' | base64)" >"$HOME/.docker/config.json"
	run "$BERTH" pull --runtime charliecloud "$r/berth/one:1"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	bash "$REG/stop.sh" "$WORK/reg-basic2"
}

# docker-credential-berthtest: a stand-in for Docker's credential helpers
# (`get`, the server on stdin, JSON out); it gives bob's password for
# $HELPER_KNOWS only, and prints a secret on stderr that must never show.
helper() {
	mkdir -p "$WORK/bin"
	cat >"$WORK/bin/docker-credential-berthtest" <<'SH'
#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
echo "$server" >>"$HOME/helper-asked"
echo "helper-stderr-leak bobpw" >&2
if [ "$server" = "$HELPER_KNOWS" ]; then
	printf '{"ServerURL":"%s","Username":"bob","Secret":"bobpw"}\n' "$server"
else
	echo "credentials not found in native keychain"
	exit 1
fi
SH
	chmod 755 "$WORK/bin/docker-credential-berthtest"
}

@test "credential helpers: credHelpers, credsStore and \$(command) passwords, output never shown" {
	start_registry basic3 --auth basic
	push basic3 "$WORK/img/one.tar" berth/one:1
	r=$(reg basic3 REGISTRY)
	INSECURE=$r conf
	helper
	export PATH="$WORK/bin:$PATH" HELPER_KNOWS=$r
	mkdir -p "$HOME/.docker" "$HOME/.config/berth"
	pull() { run "$BERTH" pull --runtime charliecloud "$r/berth/one:1"; }
	# the registry's own helper
	printf '{"credHelpers":{"%s":"berthtest"}}' "$r" >"$HOME/.docker/config.json"
	pull
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(cat "$HOME/helper-asked")" = "$r" ]
	[[ "$output" != *bobpw* && "$output" != *helper-stderr-leak* ]]
	# the store, for every registry
	rm -rf "$CACHE"/*
	printf '{"credsStore":"berthtest","auths":{"%s":{}}}' "$r" >"$HOME/.docker/config.json"
	pull
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	# a helper that has none: anonymous, and the registry says it wants some
	rm -rf "$CACHE"/*
	HELPER_KNOWS=elsewhere pull
	[ "$status" -ne 0 ]
	[[ "$output" == *"wants credentials"* && "$output" != *helper-stderr-leak* ]]
	# a helper name that is a path is refused
	printf '{"credHelpers":{"%s":"../../bin/sh"}}' "$r" >"$HOME/.docker/config.json"
	pull
	[ "$status" -ne 0 ]
	[[ "$output" == *"no helper name"* ]]
	rm "$HOME/.docker/config.json"
	# enroot's password $(command), run as the user, no shell
	printf 'bobpw\n' >"$HOME/token"
	printf 'machine %s login bob password $(cat ~/token)\n' "$r" >"$HOME/.config/berth/credentials"
	chmod 600 "$HOME/.config/berth/credentials"
	pull
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	printf 'machine %s login bob password $(sh -c "echo bobpw >&2; exit 3")\n' "$r" \
		>"$HOME/.config/berth/credentials"
	pull
	[ "$status" -ne 0 ]
	[[ "$output" == *"password command sh"*"failed (exit 3)"* && "$output" != *bobpw* ]]
	# berth login for another registry keeps the command as it was
	printf 'x\n' | "$BERTH" login --no-check --username u other.example:5000
	grep -qF 'password $(sh -c "echo bobpw >&2; exit 3")' "$HOME/.config/berth/credentials"
	! grep -rq bobpw "$CACHE"
	bash "$REG/stop.sh" "$WORK/reg-basic3"
}

@test "Bearer tokens: anonymous where allowed, one token per pull, refusals explained" {
	start_registry token --auth token
	push token "$WORK/img/big.tar" public/big:1
	push token "$WORK/img/one.tar" private/one:1
	r=$(reg token REGISTRY)
	log=$(reg token TOKEN_LOG)
	INSECURE=$r conf
	: >"$log"
	run "$BERTH" pull --runtime charliecloud "$r/public/big:1"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	# one token served the manifest and every blob
	[ "$(grep -c 'repository:public/big:pull' "$log")" -eq 1 ]
	run "$BERTH" pull --runtime charliecloud "$r/private/one:1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"wants credentials"*"berth login"* ]]
	printf 'machine %s login bob password bobpw\n' "$r" >"$HOME/.config-netrc"
	mkdir -p "$HOME/.config/berth"
	install -m 600 "$HOME/.config-netrc" "$HOME/.config/berth/credentials"
	run "$BERTH" pull --runtime charliecloud "$r/private/one:1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"refused bob access"* ]]
	{
		printf 'machine %s login alice password "%s"\n' "$r" "$(reg token REGISTRY_PASS)"
	} >"$HOME/.config/berth/credentials"
	run "$BERTH" pull --runtime charliecloud "$r/private/one:1"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	grep -q 'alice repository:private/one:pull' "$log"
	bash "$REG/stop.sh" "$WORK/reg-token"
}

@test "an expired token is renewed in the middle of a pull" {
	start_registry token2 --auth token --proxy --token-expires-in 1 --token-hard-expiry
	push token2 "$WORK/img/big.tar" public/big:1
	r=$(reg token2 REGISTRY)
	INSECURE=$r conf "PullParallel=1"
	log=$(reg token2 TOKEN_LOG)
	: >"$log"
	# slow every blob so the 1 s token dies between them
	for l in $(skopeo inspect --raw --tls-verify=false "docker://$r/public/big:1" | jq -r '.layers[].digest'); do
		echo "delay $l 1500"
	done >"$(reg token2 PROXY_CTL)"
	run "$BERTH" pull --runtime charliecloud "$r/public/big:1"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(grep -c 'repository:public/big:pull' "$log")" -ge 2 ]
	bash "$REG/stop.sh" "$WORK/reg-token2"
}

@test "a missing archive path is never mistaken for a registry image" {
	run "$BERTH" pull --runtime charliecloud ./nosuch.tar
	[ "$status" -ne 0 ]
	[[ "$output" != *"registry"* ]]
	run "$BERTH" resolve ./nosuch.tar
	[ "$output" = ./nosuch.tar ]
}

# ---- the site's default registry and mirrors --------------------------------

@test "a bare REPO:TAG goes to the site's DefaultRegistry" {
	conf "DefaultRegistry=$(P)"
	run "$BERTH" resolve berth/one:1
	[[ "$output" == "$(P)/berth/one:1@sha256:"* ]]
	run "$BERTH" pull --runtime charliecloud berth/one:1
	[ "$status" -eq 0 ] || { echo "$output"; false; }
}

@test "Docker Hub images come from the site's mirrors, the first that answers" {
	# Docker Hub is not reachable here: success proves the mirror served it,
	# after the dead first mirror failed.
	push plain "$WORK/img/one.tar" library/hubimage:1
	conf "RegistryMirrors=127.0.0.1:9,$(P)" "InsecureRegistries=127.0.0.1:9,$(P)"
	sed -i '2d' "$BERTH_CONFIG" # the first InsecureRegistries line
	run "$BERTH" pull --runtime charliecloud hubimage:1
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	run "$BERTH" run --runtime charliecloud --image docker.io/library/hubimage:1 -- /bin/sh -c pwd
	[ "$output" = /one ]
	# a mirror that lacks it, then the hub (unreachable): the hub's error
	conf "RegistryMirrors=$(P)"
	run "$BERTH" pull --runtime charliecloud nosuchimage:1
	[ "$status" -ne 0 ]
	[[ "$output" == *"registry-1.docker.io"* ]]
}

# ---- the blob store and berth cache gc ---------------------------------------

@test "cache gc: blobs no image needs go, shared ones stay, and they count towards the size" {
	"$BERTH" pull --runtime charliecloud "$(P)/berth/one:1" >/dev/null
	sleep 1.1 # one is the least recently used
	"$BERTH" pull --runtime charliecloud "$(P)/berth/two:1" >/dev/null
	"$BERTH" fetch "$(P)/berth/two:1" >/dev/null # a docker archive too
	mapfile -t one < <(layers_of berth/one:1)
	mapfile -t two < <(layers_of berth/two:1)
	only_one=()
	for l in "${one[@]}"; do [[ " ${two[*]} " == *" $l "* ]] || only_one+=("$l"); done
	[ "${#only_one[@]}" -ge 1 ]
	# old enough that no pull can be using them
	find "$CACHE/0/blobs" "$CACHE/0/docker-archives" -type f -exec touch -d '-2 hours' {} +
	blobs=$(find "$CACHE/0/blobs" -type f -printf '%s\n' | paste -sd+ | bc)
	[ "$blobs" -gt 0 ]
	# room for everything but a little: one (LRU) goes, with its own layer
	total=$blobs
	for f in "$CACHE"/0/images/*/size; do total=$((total + $(cat "$f"))); done
	run "$BERTH" cache gc --max-size $((total - 1))
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "evicted 1 image(s)"* ]]
	for l in "${only_one[@]}"; do [ ! -e "$CACHE/0/blobs/sha256/${l#sha256:}" ]; done
	for l in "${two[@]}"; do [ -e "$CACHE/0/blobs/sha256/${l#sha256:}" ]; done
	[ -z "$(ls -A "$CACHE/0/docker-archives")" ]
	# what is left still runs, from the cache alone
	pinned=$("$BERTH" resolve "$(P)/berth/two:1")
	mark_log
	run "$BERTH" run --runtime charliecloud --image "$pinned" -- /bin/sh -c pwd
	[ "$output" = /two ]
	[ "$(count_gets .)" -eq 0 ]
	# fresh blobs (a pull may be using them) are never removed
	run "$BERTH" cache gc --max-size 0
	echo "$output"
	[[ "$output" == "evicted 1 image(s)"* ]]
	"$BERTH" pull --runtime charliecloud "$(P)/berth/one:1" >/dev/null
	rm -rf "$CACHE/0/images"/*
	"$BERTH" cache gc --max-size 0 >/dev/null
	[ -n "$(ls -A "$CACHE/0/blobs/sha256")" ]
}
