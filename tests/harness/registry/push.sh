#!/bin/bash
# push.sh [--env FILE] [--anonymous] SOURCE REF [extra skopeo copy options...]
#
# Pushes an image to a test registry with skopeo and prints the pushed
# manifest's digest.  SOURCE is a docker-save archive path, or any skopeo
# source name (docker-archive:X, oci:DIR:TAG, oci-archive:X, dir:X); oci:
# sources are pushed with --all --preserve-digests (image indexes).  REF is
# REPO:TAG (on $REGISTRY) or HOST:PORT/REPO:TAG.
#
# Connection settings come from the environment (REGISTRY, REGISTRY_SCHEME,
# REGISTRY_CERT_DIR, REGISTRY_AUTH, REGISTRY_USER, REGISTRY_PASS), or from a
# start.sh env file given with --env.  http: --dest-tls-verify=false;
# https: --dest-cert-dir.  With auth basic/token it sends alice's
# credentials unless --anonymous.
set -euo pipefail

usage() { echo "usage: push.sh [--env FILE] [--anonymous] SOURCE REF [skopeo copy options...]" >&2; exit 2; }
anonymous=0
while [ $# -gt 0 ]; do
    case $1 in
    --env)
        # shellcheck disable=SC1090
        . "${2:?}"
        shift 2 ;;
    --anonymous) anonymous=1; shift ;;
    -*) usage ;;
    *) break ;;
    esac
done
[ $# -ge 2 ] || usage
src=$1 ref=$2
shift 2

opts=()
case $src in
docker-archive:*|oci-archive:*|dir:*) ;;
oci:*) opts+=(--all --preserve-digests) ;;
*) src=docker-archive:$src ;;
esac

# A first component with '.' or ':' (or "localhost") names a host.
first=${ref%%/*}
if [ "$first" = "$ref" ] || { [[ $first != *[.:]* ]] && [ "$first" != localhost ]; }; then
    ref=${REGISTRY:?REGISTRY is not set (source the start.sh env file or pass --env)}/$ref
fi

if [ "${REGISTRY_SCHEME:-http}" = https ]; then
    opts+=(--dest-cert-dir "${REGISTRY_CERT_DIR:?REGISTRY_CERT_DIR is not set}")
else
    opts+=(--dest-tls-verify=false)
fi
if [ $anonymous = 1 ] || [ "${REGISTRY_AUTH:-}" = none ] || [ -z "${REGISTRY_USER:-}" ]; then
    opts+=(--dest-no-creds)
else
    opts+=(--dest-creds "$REGISTRY_USER:$REGISTRY_PASS")
fi

digestfile=$(mktemp)
trap 'rm -f "$digestfile"' EXIT
skopeo --insecure-policy copy --quiet --retry-times 0 --digestfile "$digestfile" \
    "${opts[@]}" "$@" "$src" "docker://$ref"
cat "$digestfile"
echo
