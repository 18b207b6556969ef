#!/bin/bash
# Start a throw-away docker-registry (distribution 2.8) on 127.0.0.1 with
# its config, storage, keys and logs in DIR; optionally token auth, TLS and
# the fault proxy.  Prints shell-assignable lines (also written to DIR/env).
# See tests/harness/registry/README.md.  Stop it with stop.sh DIR.
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: start.sh DIR [--auth none|basic|token] [--tls] [--proxy] [--port N]
                    [--proxy-port N] [--token-port N]
                    [--token-expires-in N] [--token-hard-expiry]
EOF
    exit 2
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || usage
case $1 in -*) usage ;; esac
mkdir -p "$1"
dir=$(cd "$1" && pwd)
shift

auth=none tls=0 proxy=0 port='' proxy_port='' token_port=''
expires_in=300 hard_expiry=()
while [ $# -gt 0 ]; do
    case $1 in
    --auth) auth=${2:?}; shift 2 ;;
    --auth=*) auth=${1#*=}; shift ;;
    --tls) tls=1; shift ;;
    --proxy) proxy=1; shift ;;
    --port) port=${2:?}; shift 2 ;;
    --proxy-port) proxy_port=${2:?}; shift 2 ;;
    --token-port) token_port=${2:?}; shift 2 ;;
    --token-expires-in|--expires-in) expires_in=${2:?}; shift 2 ;;
    --token-hard-expiry) hard_expiry=(--hard-expiry); shift ;;
    *) usage ;;
    esac
done
case $auth in none|basic|token) ;; *) echo "start.sh: --auth must be none, basic or token" >&2; exit 2 ;; esac

die() { echo "start.sh: $*" >&2; exit 1; }
for tool in docker-registry openssl python3 curl; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian: docker-registry openssl python3 curl)"
done
[ "$auth" != basic ] || command -v htpasswd >/dev/null || die "htpasswd not found (Debian: apache2-utils)"
if [ -e "$dir/registry.pid" ] && kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
    die "a registry from $dir is already running (stop.sh $dir first)"
fi

# Anything half-started is stopped again if we fail.
on_exit() {
    local rc=$?
    [ $rc -eq 0 ] || "$here/stop.sh" "$dir" >/dev/null 2>&1 || true
}
trap on_exit EXIT

# World-readable folder: tests may run clients as an unprivileged user.
chmod 0755 "$dir"
"$here/stop.sh" "$dir" # stragglers of an earlier, half-dead instance
rm -f "$dir"/env "$dir"/*.log "$dir"/proxy.ctl "$dir"/*.pid
mkdir -p "$dir/storage"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# A port someone else holds would answer the readiness probe for us.
check_free() { # PORT WHAT
    python3 -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null ||
        die "port $1 ($2) is already in use on 127.0.0.1"
}
port=${port:-$(free_port)}
check_free "$port" registry

scheme=http
if [ $tls = 1 ]; then
    scheme=https
    # Test CA + server cert for 127.0.0.1/localhost (Go wants the SAN).
    mkdir -p "$dir/tls" "$dir/certs.d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/tls/ca.key" -out "$dir/ca.crt" -days 30 -subj "/CN=berth test CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        2>/dev/null || die "openssl: cannot make the CA"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/tls/server.key" -out "$dir/tls/server.csr" -subj "/CN=localhost" \
        2>/dev/null || die "openssl: cannot make the server key"
    printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
        'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
        'extendedKeyUsage=serverAuth' >"$dir/tls/server.ext"
    openssl x509 -req -in "$dir/tls/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/tls/ca.key" \
        -CAcreateserial -days 30 -extfile "$dir/tls/server.ext" -out "$dir/tls/server.crt" \
        2>/dev/null || die "openssl: cannot sign the server cert"
    # skopeo/podman --cert-dir style folder: only the CA (a stray *.key
    # without *.cert there makes containers/image fail).
    cp "$dir/ca.crt" "$dir/certs.d/ca.crt"
    chmod 0644 "$dir/ca.crt" "$dir/certs.d/ca.crt" "$dir/tls/server.crt"
    chmod 0755 "$dir/tls" "$dir/certs.d"
fi

auth_yaml=''
case $auth in
basic)
    # bcrypt is the only hash distribution accepts.
    { htpasswd -Bbn alice 's3cret pass!'; htpasswd -Bbn bob bobpw; } | grep -v '^$' >"$dir/htpasswd"
    auth_yaml="auth:
  htpasswd:
    realm: berth-test-registry
    path: $dir/htpasswd"
    ;;
token)
    token_port=${token_port:-$(free_port)}
    check_free "$token_port" "token server"
    mkdir -p "$dir/token"
    # The registry trusts tokens whose x5c chain ends in rootcertbundle;
    # a self-signed signing cert is its own root.
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/token/sign.key" \
        -out "$dir/token/sign.crt" -days 30 -subj "/CN=berth-test-issuer" \
        2>/dev/null || die "openssl: cannot make the token signing key"
    chmod 0644 "$dir/token/sign.crt"
    token_url="$scheme://127.0.0.1:$token_port/token"
    auth_yaml="auth:
  token:
    realm: $token_url
    service: berth-test-registry
    issuer: berth-test-issuer
    rootcertbundle: $dir/token/sign.crt"
    ;;
esac

tls_yaml=''
if [ $tls = 1 ]; then
    tls_yaml="  tls:
    certificate: $dir/tls/server.crt
    key: $dir/tls/server.key"
fi

cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: berth-test-registry-secret
  headers:
    X-Content-Type-Options: [nosniff]
$tls_yaml
health:
  storagedriver:
    enabled: false
$auth_yaml
EOF

# Daemons: own session, stdin/stdout/stderr detached so $(start.sh) returns.
launch() { # PIDFILE LOG CMD...
    local pidfile=$1 log=$2
    shift 2
    setsid "$@" </dev/null >>"$log" 2>&1 &
    echo $! >"$pidfile"
}

wait_http() { # NAME PIDFILE URL [CURL ARGS...] -> waits for any HTTP answer
    local name=$1 pidfile=$2 url=$3 code
    shift 3
    for _ in $(seq 100); do
        kill -0 "$(cat "$pidfile")" 2>/dev/null || return 1
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)
        case $code in 200|401|404|405)
            sleep 0.05 # and still alive (not dying on a bind error)
            kill -0 "$(cat "$pidfile")" 2>/dev/null && return 0 ;;
        esac
        sleep 0.1
    done
    echo "start.sh: $name did not answer at $url within 10 s" >&2
    return 1
}

cacert=()
[ $tls = 0 ] || cacert=(--cacert "$dir/ca.crt")

if [ "$auth" = token ]; then
    tls_args=()
    [ $tls = 0 ] || tls_args=(--tls-cert "$dir/tls/server.crt" --tls-key "$dir/tls/server.key")
    launch "$dir/tokenserver.pid" "$dir/tokenserver.log" \
        python3 "$here/tokenserver.py" --listen "127.0.0.1:$token_port" \
        --key "$dir/token/sign.key" --cert "$dir/token/sign.crt" "${tls_args[@]}" \
        --expires-in "$expires_in" "${hard_expiry[@]}" --log "$dir/token.log"
    wait_http "token server" "$dir/tokenserver.pid" "$scheme://127.0.0.1:$token_port/token" "${cacert[@]}" ||
        die "token server failed to start; $dir/tokenserver.log says: $(tail -5 "$dir/tokenserver.log")"
    : >"$dir/token.log" # forget the readiness probe
fi

launch "$dir/registry.pid" "$dir/registry.log" docker-registry serve "$dir/config.yml"
wait_http registry "$dir/registry.pid" "$scheme://127.0.0.1:$port/v2/" "${cacert[@]}" ||
    die "docker-registry failed to start; $dir/registry.log says: $(grep -v '^127.0.0.1 ' "$dir/registry.log" | tail -5)"

client_port=$port
if [ $proxy = 1 ]; then
    proxy_port=${proxy_port:-$(free_port)}
    check_free "$proxy_port" "fault proxy"
    : >"$dir/proxy.ctl"
    chmod 0666 "$dir/proxy.ctl"
    tls_args=()
    [ $tls = 0 ] || tls_args=(--tls-cert "$dir/tls/server.crt" --tls-key "$dir/tls/server.key" --cacert "$dir/ca.crt")
    launch "$dir/proxy.pid" "$dir/faultproxy.log" \
        python3 "$here/faultproxy.py" --listen "127.0.0.1:$proxy_port" \
        --upstream "$scheme://127.0.0.1:$port" "${tls_args[@]}" \
        --log "$dir/proxy.log" --ctl "$dir/proxy.ctl"
    wait_http "fault proxy" "$dir/proxy.pid" "$scheme://127.0.0.1:$proxy_port/v2/" "${cacert[@]}" ||
        die "fault proxy failed to start; $dir/faultproxy.log says: $(tail -5 "$dir/faultproxy.log")"
    : >"$dir/proxy.log" # forget the readiness probe
    client_port=$proxy_port
fi

q() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # single-quote for sh
{
    echo "REGISTRY=127.0.0.1:$client_port"
    echo "REGISTRY_DIRECT=127.0.0.1:$port"
    echo "REGISTRY_SCHEME=$scheme"
    echo "REGISTRY_AUTH=$auth"
    if [ $tls = 1 ]; then
        echo "REGISTRY_CA=$(q "$dir/ca.crt")"
        echo "REGISTRY_CERT_DIR=$(q "$dir/certs.d")"
    fi
    echo "REGISTRY_USER=alice"
    echo "REGISTRY_PASS=$(q 's3cret pass!')"
    if [ "$auth" = token ]; then
        echo "TOKEN_URL=$(q "$token_url")"
        echo "TOKEN_LOG=$(q "$dir/token.log")"
    fi
    if [ $proxy = 1 ]; then
        echo "PROXY_LOG=$(q "$dir/proxy.log")"
        echo "PROXY_CTL=$(q "$dir/proxy.ctl")"
    fi
} >"$dir/env.tmp"
chmod 0644 "$dir/env.tmp"
mv "$dir/env.tmp" "$dir/env"
cat "$dir/env"
