#!/bin/bash
# Self-test of the registry test harness: starts each mode (none, basic,
# token, tls, none+proxy, tls+token+proxy, token with hard expiry) in a temp
# folder, pushes images with skopeo and checks the behaviour berth's tests
# rely on with curl and skopeo.  Prints "ok - ..." per check; exits 1 at the
# first failure.  Stops everything and removes its temp folder on exit.
set -eEuo pipefail
# Any command failing outside a check still says where (a mode's subshell
# failing has already said so).
on_err() {
    case $2 in "( mode_"*) ;; *) echo "not ok - unexpected failure at line $1: $2" >&2 ;; esac
}
trap 'on_err $LINENO "$BASH_COMMAND"' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
t0=$(date +%s.%N)

work=$(mktemp -d /tmp/berth-registry-selftest.XXXXXX)
chmod 0755 "$work" # the unprivileged-client check reads below it
# Every instance folder, known up front: the modes run in subshells.
started=()
for m in none basic token tls proxy tls-token expiry; do started+=("$work/$m"); done
cleanup() {
    local d
    for d in "${started[@]}"; do "$here/stop.sh" "$d" || true; done
    rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "not ok - $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
check() { # DESCRIPTION COMMAND... : ok if COMMAND succeeds
    local what=$1
    shift
    if "$@" >/dev/null; then ok "$what"; else fail "$what"; fi
}

ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'

# req ARGS... -> HTTP status on stdout; body in $work/body, headers in $work/hdr
req() { curl -s -o "$work/body" -D "$work/hdr" -w '%{http_code}' "$@" || true; }
hdr() { grep -i "^$1:" "$work/hdr" | tail -1 | cut -d' ' -f2- | tr -d '\r'; }
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
expect_code() { # WANT WHAT CODE
    [ "$3" = "$1" ] || fail "$2: got HTTP $3, want $1 ($(head -c 300 "$work/body" 2>/dev/null))"
    ok "$2 (HTTP $1)"
}

start() { # NAME START-OPTIONS... ; sources the env file into this shell
    local d=$work/$1
    shift
    "$here/start.sh" "$d" "$@" >"$work/start.out" || fail "start.sh $* failed"
    set -a # push.sh reads REGISTRY_* from the environment
    # shellcheck disable=SC1091
    . "$d/env"
    set +a
    cmp -s "$work/start.out" "$d/env" || fail "start.sh stdout differs from $d/env"
    ok "start.sh ${d##*/} $* -> $REGISTRY ($REGISTRY_SCHEME)"
}

# --- images -------------------------------------------------------------
python3 "$root/tests/harness/fixtures/mkimage.py" legacy "$work/amd64.tar" --tag berth/test:amd64 \
    --label berth.platform=amd64 >/dev/null
python3 "$root/tests/harness/fixtures/mkimage.py" legacy "$work/arm64.tar" --tag berth/test:arm64 \
    --label berth.platform=arm64 --workdir /arm64 >/dev/null
"$here/mkindex.sh" "$work/oci" "$work/amd64.tar" "$work/arm64.tar" v1 >"$work/index.json"
index_digest=$(jq -r .index "$work/index.json")
check "mkindex.sh wrote a one-entry index.json naming the index" \
    test "$(jq -r '.manifests | length' "$work/oci/index.json")" = 1
check "mkindex.sh index blob lists amd64 and arm64/v8" test \
    "$(jq -r '[.manifests[].platform | .architecture + (.variant // "")] | join(",")' \
        "$work/oci/blobs/sha256/${index_digest#sha256:}")" = "amd64,arm64v8"

manifest_digest() { # REPO REF [CURL ARGS...] -> Docker-Content-Digest, checks body hash
    local repo=$1 ref=$2 code
    shift 2
    code=$(req -H "Accept: $ACCEPT" "$@" "$REGISTRY_SCHEME://$REGISTRY/v2/$repo/manifests/$ref")
    [ "$code" = 200 ] || fail "GET manifest $repo:$ref: HTTP $code $(head -c 300 "$work/body")"
    [ "$(hdr Docker-Content-Digest)" = "$(sha "$work/body")" ] ||
        fail "GET manifest $repo:$ref: Docker-Content-Digest is not the body's sha256"
    hdr Docker-Content-Digest
}

# --- mode none ---------------------------------------------------------
mode_none() {
    start none
    local d code layer
    d=$("$here/push.sh" "$work/amd64.tar" berth/test:1)
    [ "$(manifest_digest berth/test 1)" = "$d" ] || fail "anonymous manifest GET digest != pushed $d"
    ok "mode none: anonymous manifest GET gives the pushed digest"
    check "mode none: skopeo inspect sees the same digest" test \
        "$(skopeo inspect --tls-verify=false "docker://$REGISTRY/berth/test:1" | jq -r .Digest)" = "$d"
    manifest_digest berth/test 1 >/dev/null
    layer=$(jq -r '.layers[0].digest' "$work/body")
    code=$(req "http://$REGISTRY/v2/berth/test/blobs/$layer")
    expect_code 200 "mode none: blob GET" "$code"
    check "mode none: blob body has its digest" test "$(sha "$work/body")" = "$layer"
    code=$(req -r 10- "http://$REGISTRY/v2/berth/test/blobs/$layer")
    expect_code 206 "mode none: Range blob GET" "$code"
    check "mode none: Content-Range on 206" grep -qi '^Content-Range: bytes 10-' "$work/hdr"
    code=$(req -H "Accept: $ACCEPT" "http://$REGISTRY/v2/berth/test/manifests/nosuch")
    expect_code 404 "mode none: missing tag" "$code"
    check "mode none: missing tag says MANIFEST_UNKNOWN" grep -q MANIFEST_UNKNOWN "$work/body"
    code=$(req -H "Accept: $ACCEPT" "http://$REGISTRY/v2/no/such/manifests/latest")
    expect_code 404 "mode none: missing repository" "$code"

    d=$("$here/push.sh" "oci:$work/oci:v1" berth/multi:v1)
    check "mode none: index pushed with its digest kept" test "$d" = "$index_digest"
    skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/berth/multi:v1" >"$work/raw"
    check "mode none: skopeo inspect --raw shows an OCI index of two manifests" test \
        "$(jq -r '.mediaType + " " + (.manifests | length | tostring)' "$work/raw")" \
        = "application/vnd.oci.image.index.v1+json 2"
    check "mode none: the arm64 image is the arm64 one" test "$(skopeo inspect --tls-verify=false \
        --override-arch arm64 "docker://$REGISTRY/berth/multi:v1" |
        jq -r '.Architecture + " " + .Labels["berth.platform"]')" = "arm64 arm64"

    d=$("$here/push.sh" "$work/arm64.tar" berth/del:1)
    code=$(req -X DELETE "http://$REGISTRY/v2/berth/del/manifests/$d")
    expect_code 202 "mode none: manifest DELETE (storage delete enabled)" "$code"
    code=$(req -H "Accept: $ACCEPT" "http://$REGISTRY/v2/berth/del/manifests/1")
    expect_code 404 "mode none: deleted manifest is gone" "$code"
}

# --- mode basic --------------------------------------------------------
mode_basic() {
    start basic --auth basic
    local code
    "$here/push.sh" "$work/amd64.tar" berth/test:1 >/dev/null
    ok "mode basic: skopeo push with alice's credentials"
    code=$(req "http://$REGISTRY/v2/")
    expect_code 401 "mode basic: /v2/ without credentials" "$code"
    check "mode basic: Basic challenge" grep -qi '^WWW-Authenticate: Basic realm=' "$work/hdr"
    code=$(req -H "Accept: $ACCEPT" "http://$REGISTRY/v2/berth/test/manifests/1")
    expect_code 401 "mode basic: manifest without credentials" "$code"
    code=$(req -H "Accept: $ACCEPT" -u "$REGISTRY_USER:$REGISTRY_PASS" "http://$REGISTRY/v2/berth/test/manifests/1")
    expect_code 200 "mode basic: manifest as alice ('s3cret pass!')" "$code"
    code=$(req -H "Accept: $ACCEPT" -u bob:bobpw "http://$REGISTRY/v2/berth/test/manifests/1")
    expect_code 200 "mode basic: manifest as bob" "$code"
    code=$(req -H "Accept: $ACCEPT" -u 'alice:s3cret pass' "http://$REGISTRY/v2/berth/test/manifests/1")
    expect_code 401 "mode basic: wrong password" "$code"
    if "$here/push.sh" --anonymous "$work/amd64.tar" berth/anon:1 >/dev/null 2>&1; then
        fail "mode basic: anonymous push succeeded"
    fi
    ok "mode basic: anonymous push refused"
}

# --- token flow, shared by token and tls+token -------------------------
token_checks() { # LABEL  (REGISTRY_* and TOKEN_* from the env file)
    local label=$1 code tok realm service scope n0 url tls=()
    [ "$REGISTRY_SCHEME" = http ] || tls=(--cacert "$REGISTRY_CA")
    url=$REGISTRY_SCHEME://$REGISTRY
    for repo in private/app public/app bobonly/app; do
        "$here/push.sh" "$work/amd64.tar" "$repo:1" >/dev/null
    done
    ok "$label: skopeo push as alice via the token server"

    code=$(req "${tls[@]}" "$url/v2/")
    expect_code 401 "$label: /v2/ without token" "$code"
    check "$label: /v2/ challenge is Bearer realm=TOKEN_URL,service=berth-test-registry" test \
        "$(hdr WWW-Authenticate)" = "Bearer realm=\"$TOKEN_URL\",service=\"berth-test-registry\""
    code=$(req "${tls[@]}" -H "Accept: $ACCEPT" "$url/v2/private/app/manifests/1")
    expect_code 401 "$label: manifest without token" "$code"
    realm=$(hdr WWW-Authenticate | sed -n 's/.*realm="\([^"]*\)".*/\1/p')
    service=$(hdr WWW-Authenticate | sed -n 's/.*service="\([^"]*\)".*/\1/p')
    scope=$(hdr WWW-Authenticate | sed -n 's/.*scope="\([^"]*\)".*/\1/p')
    check "$label: challenge names realm, service and scope" test \
        "$realm $service $scope" = "$TOKEN_URL berth-test-registry repository:private/app:pull"

    n0=$(wc -l <"$TOKEN_LOG")
    code=$(req "${tls[@]}" -u "$REGISTRY_USER:$REGISTRY_PASS" -G --data-urlencode "service=$service" \
        --data-urlencode "scope=$scope" "$realm")
    expect_code 200 "$label: token for alice" "$code"
    check "$label: token answer has token, access_token, expires_in 300, issued_at" \
        jq -e '(.token | length > 100) and .access_token == .token and .expires_in == 300
               and (.issued_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T"))' "$work/body" >/dev/null
    tok=$(jq -r .token "$work/body")
    check "$label: TOKEN_LOG got '<time> alice $scope'" \
        test "$(tail -1 "$TOKEN_LOG" | cut -d' ' -f2-)" = "alice $scope"
    check "$label: one TOKEN_LOG line per token request" test "$(wc -l <"$TOKEN_LOG")" = $((n0 + 1))
    code=$(req "${tls[@]}" -H "Accept: $ACCEPT" -H "Authorization: Bearer $tok" "$url/v2/private/app/manifests/1")
    expect_code 200 "$label: manifest with alice's Bearer token" "$code"

    code=$(req "${tls[@]}" -u 'alice:wrong' "$realm?service=$service&scope=$scope")
    expect_code 401 "$label: token server refuses a wrong password" "$code"
    check "$label: ... with a JSON errors body" jq -e '.errors[0].code == "UNAUTHORIZED"' "$work/body"

    # bob: a token with an empty access list, refused by the registry.
    req "${tls[@]}" -u bob:bobpw "$realm?service=$service&scope=$scope" >/dev/null
    check "$label: bob's token for private/app grants nothing" jq -e '.token' "$work/body"
    tok=$(jq -r .token "$work/body")
    code=$(req "${tls[@]}" -H "Accept: $ACCEPT" -H "Authorization: Bearer $tok" "$url/v2/private/app/manifests/1")
    expect_code 401 "$label: bob denied on private/app" "$code"
    check "$label: ... with error=\"insufficient_scope\"" grep -qi 'insufficient_scope' "$work/hdr"
    req "${tls[@]}" -u bob:bobpw "$realm?service=$service&scope=repository:bobonly/app:pull" >/dev/null
    tok=$(jq -r .token "$work/body")
    code=$(req "${tls[@]}" -H "Accept: $ACCEPT" -H "Authorization: Bearer $tok" "$url/v2/bobonly/app/manifests/1")
    expect_code 200 "$label: bob allowed on bobonly/app" "$code"

    req "${tls[@]}" "$realm?service=$service&scope=repository:public/app:pull" >/dev/null
    tok=$(jq -r .token "$work/body")
    code=$(req "${tls[@]}" -H "Accept: $ACCEPT" -H "Authorization: Bearer $tok" "$url/v2/public/app/manifests/1")
    expect_code 200 "$label: anonymous token pulls public/app" "$code"
    check "$label: TOKEN_LOG writes anonymous as '-'" \
        test "$(tail -1 "$TOKEN_LOG" | cut -d' ' -f2-)" = "- repository:public/app:pull"

    local sk=(--tls-verify=false)
    [ "$REGISTRY_SCHEME" = http ] || sk=(--cert-dir "$REGISTRY_CERT_DIR")
    check "$label: skopeo inspect as alice" skopeo inspect "${sk[@]}" --creds "$REGISTRY_USER:$REGISTRY_PASS" \
        "docker://$REGISTRY/private/app:1"
    check "$label: skopeo inspect anonymously of public/app" skopeo inspect "${sk[@]}" --no-creds \
        "docker://$REGISTRY/public/app:1"
    if skopeo inspect "${sk[@]}" --no-creds "docker://$REGISTRY/private/app:1" >/dev/null 2>&1; then
        fail "$label: anonymous skopeo inspect of private/app succeeded"
    fi
    ok "$label: anonymous skopeo inspect of private/app refused"
}

mode_token() {
    start token --auth token
    token_checks "mode token"
}

# --- mode tls ----------------------------------------------------------
mode_tls() {
    start tls --tls
    local code rc=0
    "$here/push.sh" "$work/amd64.tar" berth/test:1 >/dev/null
    ok "mode tls: skopeo push with --dest-cert-dir"
    check "mode tls: ca.crt is world-readable" test "$(stat -c %a "$REGISTRY_CA")" = 644
    code=$(req --cacert "$REGISTRY_CA" "https://$REGISTRY/v2/")
    expect_code 200 "mode tls: curl --cacert" "$code"
    code=$(req --cacert "$REGISTRY_CA" "https://localhost:${REGISTRY#*:}/v2/")
    expect_code 200 "mode tls: the cert also names localhost" "$code"
    curl -s -o /dev/null "https://$REGISTRY/v2/" || rc=$?
    check "mode tls: curl without the CA refuses (rc 60, got $rc)" test "$rc" = 60
    if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
        code=$(runuser -u nobody -- curl -s -o /dev/null -w '%{http_code}' --cacert "$REGISTRY_CA" \
            "https://$REGISTRY/v2/" || true)
        expect_code 200 "mode tls: reachable by an unprivileged user (nobody)" "$code"
    fi
    check "mode tls: skopeo inspect --cert-dir" skopeo inspect --cert-dir "$REGISTRY_CERT_DIR" \
        "docker://$REGISTRY/berth/test:1"
    if skopeo inspect "docker://$REGISTRY/berth/test:1" >/dev/null 2>&1; then
        fail "mode tls: skopeo inspect without the CA succeeded"
    fi
    ok "mode tls: skopeo inspect without the CA refused"
}

# --- mode none + proxy -------------------------------------------------
mode_proxy() {
    start proxy --proxy
    local d code layer size rc t1 t2 u
    check "mode proxy: REGISTRY is the proxy, not the registry" test "$REGISTRY" != "$REGISTRY_DIRECT"
    d=$("$here/push.sh" "$work/amd64.tar" berth/test:1)
    ok "mode proxy: skopeo push through the proxy (chunked PATCH, Location rewriting)"
    check "mode proxy: the pushed manifest is in the registry" test \
        "$(REGISTRY=$REGISTRY_DIRECT manifest_digest berth/test 1)" = "$d"
    code=$(req "http://$REGISTRY/v2/berth/test/blobs/uploads/" -X POST)
    expect_code 202 "mode proxy: upload POST" "$code"
    check "mode proxy: Location names the proxy" \
        grep -qi "^Location: http://$REGISTRY/v2/berth/test/blobs/uploads/" "$work/hdr"

    manifest_digest berth/test 1 >/dev/null
    layer=$(jq -r '.layers | max_by(.size) | .digest' "$work/body")
    size=$(jq -r '.layers | max_by(.size) | .size' "$work/body")

    echo "cut $layer 1000" >"$PROXY_CTL"
    rc=0
    curl -s -o "$work/part1" "http://$REGISTRY/v2/berth/test/blobs/$layer" || rc=$?
    check "mode proxy: cut: curl sees a short body (rc 18, got $rc)" test "$rc" = 18
    check "mode proxy: cut: exactly 1000 bytes arrived" test "$(stat -c %s "$work/part1")" = 1000
    check "mode proxy: cut: the rule is used up" grep -q '^#used cut' "$PROXY_CTL"
    code=$(curl -s -o "$work/part2" -D "$work/hdr" -w '%{http_code}' -r 1000- \
        "http://$REGISTRY/v2/berth/test/blobs/$layer" || true)
    expect_code 206 "mode proxy: cut: the Range request resumes" "$code"
    check "mode proxy: cut: Content-Range bytes 1000-$((size - 1))/$size" \
        test "$(hdr Content-Range)" = "bytes 1000-$((size - 1))/$size"
    check "mode proxy: cut: resumed blob has the right sha256" \
        test "$(cat "$work/part1" "$work/part2" | sha256sum | cut -d' ' -f1)" = "${layer#sha256:}"

    echo "corrupt $layer" >"$PROXY_CTL"
    code=$(req "http://$REGISTRY/v2/berth/test/blobs/$layer")
    expect_code 200 "mode proxy: corrupt: GET" "$code"
    check "mode proxy: corrupt: same length" test "$(stat -c %s "$work/body")" = "$size"
    check "mode proxy: corrupt: wrong sha256" test "$(sha "$work/body")" != "$layer"
    if skopeo copy --quiet --src-tls-verify=false "docker://$REGISTRY/berth/test:1" "dir:$work/pulled" \
        >/dev/null 2>&1; then
        fail "mode proxy: corrupt: skopeo accepted a corrupt blob"
    fi
    ok "mode proxy: corrupt: skopeo copy refuses the blob"

    echo "delay ${layer#sha256:} 400" >"$PROXY_CTL"
    t1=$(date +%s%N)
    code=$(req "http://$REGISTRY/v2/berth/test/blobs/$layer")
    t2=$(date +%s%N)
    expect_code 200 "mode proxy: delay: GET" "$code"
    check "mode proxy: delay: took >= 400 ms ($(((t2 - t1) / 1000000)) ms)" test $(((t2 - t1) / 1000000)) -ge 400
    check "mode proxy: delay: right sha256" test "$(sha "$work/body")" = "$layer"

    printf 'status /v2/berth/test/manifests/ 429 7\n' >"$PROXY_CTL"
    code=$(req -H "Accept: $ACCEPT" "http://$REGISTRY/v2/berth/test/manifests/1")
    expect_code 429 "mode proxy: status: injected code" "$code"
    check "mode proxy: status: Retry-After: 7" test "$(hdr Retry-After)" = 7
    check "mode proxy: status: registry-style errors body" \
        jq -e '.errors[0].code == "TOOMANYREQUESTS"' "$work/body"
    printf 'status /v2/berth/test/blobs/ 503 - 1\n' >"$PROXY_CTL"
    code=$(req "http://$REGISTRY/v2/berth/test/blobs/$layer")
    expect_code 503 "mode proxy: status with TIMES 1: first request" "$code"
    code=$(req "http://$REGISTRY/v2/berth/test/blobs/$layer")
    expect_code 200 "mode proxy: status with TIMES 1: second request passes" "$code"
    printf 'status /v2/berth/test/blobs/ 404\n' >"$PROXY_CTL"
    code=$(req "http://$REGISTRY/v2/berth/test/blobs/$layer")
    expect_code 404 "mode proxy: status 404" "$code"
    check "mode proxy: status 404 on a blob says BLOB_UNKNOWN" grep -q BLOB_UNKNOWN "$work/body"
    : >"$PROXY_CTL"

    u="GET /v2/berth/test/blobs/$layer"
    check "mode proxy: PROXY_LOG has the cut GET" grep -q " $u - 200 cut=1000\$" "$PROXY_LOG"
    check "mode proxy: PROXY_LOG has the resumed Range GET" grep -q " $u bytes=1000- 206\$" "$PROXY_LOG"
    check "mode proxy: PROXY_LOG has corrupt, delay, status" \
        test "$(grep -cE ' (corrupt|delay=400|status)$' "$PROXY_LOG")" -ge 6
    check "mode proxy: PROXY_LOG has the push" grep -q " PUT /v2/berth/test/manifests/1 - 201\$" "$PROXY_LOG"
}

# --- tls + token + proxy -----------------------------------------------
mode_tls_token() {
    start tls-token --auth token --tls --proxy
    check "mode tls+token: the token server is https" test "${TOKEN_URL%%:*}" = https
    token_checks "mode tls+token+proxy"
    local d
    d=$("$here/push.sh" "oci:$work/oci:v1" berth/multi:v1)
    check "mode tls+token+proxy: index pushed with its digest kept" test "$d" = "$index_digest"
    check "mode tls+token+proxy: skopeo inspect --raw shows two manifests" test "$(skopeo inspect --raw \
        --cert-dir "$REGISTRY_CERT_DIR" --creds "$REGISTRY_USER:$REGISTRY_PASS" \
        "docker://$REGISTRY/berth/multi:v1" | jq '.manifests | length')" = 2
    check "mode tls+token+proxy: PROXY_LOG saw the Bearer requests" grep -q ' GET /v2/private/app/manifests/1 - 200$' "$PROXY_LOG"
}

# --- token lifetime ----------------------------------------------------
mode_expiry() {
    start expiry --auth token --token-expires-in 1 --token-hard-expiry
    local code tok
    req "$TOKEN_URL?service=berth-test-registry" -u "$REGISTRY_USER:$REGISTRY_PASS" >/dev/null
    check "mode expiry: expires_in is 1" jq -e '.expires_in == 1' "$work/body"
    tok=$(jq -r .token "$work/body")
    code=$(req -H "Authorization: Bearer $tok" "http://$REGISTRY/v2/")
    expect_code 200 "mode expiry: fresh token accepted" "$code"
    sleep 2.1 # lifetime is expires_in..expires_in+1 s (exp has 1 s resolution)
    code=$(req -H "Authorization: Bearer $tok" "http://$REGISTRY/v2/")
    expect_code 401 "mode expiry: --token-hard-expiry token refused after expires_in" "$code"
}

(mode_none)
(mode_basic)
(mode_token)
(mode_tls)
(mode_proxy)
(mode_tls_token)
(mode_expiry)

for d in "${started[@]}"; do "$here/stop.sh" "$d"; done
"$here/stop.sh" "$work/none" # idempotent
check "stop.sh left nothing running" test -z "$(pgrep -f -- "$work/" || true)"
echo "# selftest took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
