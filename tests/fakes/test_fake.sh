#!/bin/bash
# Self-test of tests/fakes/singularity (the berth test stand-in).
# Run as root: builds as root, runs the exec cases as the unprivileged user
# berthtest (created if missing). Prints PASS/FAIL per case; exit 1 on failure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
FAKE="$HERE/singularity"
MKIMAGE="$TOP/tests/fixtures/mkimage.py"
U=berthtest

[ "$(id -u)" = 0 ] || { echo "run as root (exec cases use setpriv to $U)"; exit 2; }
id "$U" >/dev/null 2>&1 || useradd -m "$U"
UHOME=$(getent passwd "$U" | cut -d: -f6)
mkdir -p "$UHOME" && chown "$U:" "$UHOME"
UID_U=$(id -u "$U")

W=$(mktemp -d /tmp/berth-fake-test.XXXXXX)
chmod 755 "$W"
trap 'rm -rf "$W"' EXIT
export BERTH_FAKE_SINGULARITY_LOG="$W/build.log"

fails=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1${2:+: $2}"; fails=$((fails + 1)); }
check() { # name expected actual
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$2] got [$3]"; fi
}
asuser() {
	(cd "$UHOME" && setpriv --reuid="$U" --regid="$U" --init-groups \
		env -i HOME="$UHOME" PATH=/usr/bin:/bin "$@")
}
sx() { asuser "$FAKE" exec "$@"; }

python3 "$MKIMAGE" legacy "$W/x.tar" --env FOO=bar --workdir /work >/dev/null
python3 "$MKIMAGE" oci "$W/o.tar" --gzip-archive --gzip-layers >/dev/null

# --- build -------------------------------------------------------------
"$FAKE" -q build "$W/x.sif" "docker-archive:$W/x.tar"
check "build legacy" 0 $?
chmod 644 "$W/x.sif"
"$FAKE" -q build "$W/o.sif" "docker-archive:$W/o.tar"
check "build oci gzip" 0 $?
check "build log counts 2" 2 "$(wc -l <"$BERTH_FAKE_SINGULARITY_LOG")"
check "flattened (whiteout)" "" "$(unsquashfs -l "$W/x.sif" | grep removed-by-whiteout)"
"$FAKE" -q build "$W/x.sif" "docker-archive:$W/x.tar" 2>"$W/err"
check "build existing dest without --force: 255" 255 $?
"$FAKE" -q build --force "$W/x.sif" "docker-archive:$W/x.tar"
check "build --force" 0 $?
chmod 644 "$W/x.sif"
(cd "$W" && "$FAKE" -q build "$W/r.sif" docker-archive:x.tar 2>"$W/err")
check "relative docker-archive path: 255" 255 $?
grep -q '^FATAL:   ' "$W/err" && pass "relative path FATAL message" || fail "relative path FATAL message"
"$FAKE" -q build "$W/r.sif" "docker-archive://$W/x.tar" 2>/dev/null
check "docker-archive:// form: 255" 255 $?
check "no temp dir left" "" "$(ls /tmp | grep '^build-temp-')"
check "--version" "singularity-ce version 3.11.4-berth-fake" "$("$FAKE" --version)"
"$FAKE" run "$W/x.sif" true 2>/dev/null
check "run subcommand unsupported: 255" 255 $?

# --- exec ----------------------------------------------------------------
check "cat /etc/only-in-image" "only-in-image" "$(sx "$W/x.sif" cat /etc/only-in-image)"
check "id -u is caller" "$UID_U" "$(sx "$W/x.sif" id -u)"
sx "$W/x.sif" sh -c 'exit 42'
check "exit 42" 42 $?
sx "$W/x.sif" sh -c 'kill -9 $$'
check "kill -9 gives 137" 137 $?
sx "$W/x.sif" sh -c 'kill -TERM $$'
check "SIGTERM gives 143" 143 $?
sx --foo "$W/x.sif" true 2>"$W/err"
check "unknown flag: 255" 255 $?
check "unknown flag message" "FATAL:   unknown flag: --foo" "$(cat "$W/err")"
sx "$W/x.sif" nonexistent-cmd 2>/dev/null
check "missing command: 255" 255 $?

names=$(asuser SINGULARITYENV_XX=1 SINGULARITY_NO_EVAL=1 TERM=dumb OTHER=1 \
	"$FAKE" exec --cleanenv "$W/x.sif" env | cut -d= -f1 | sort | tr '\n' ' ')
check "--cleanenv env names" "FOO HOME LANG LD_LIBRARY_PATH PATH PS1 PWD SINGULARITY_CONTAINER SINGULARITY_ENVIRONMENT SINGULARITY_NAME TERM XX " "$names"
check "image env FOO" "bar" "$(sx -e "$W/x.sif" sh -c 'echo $FOO')"
check "SINGULARITYENV_ overrides image" "baz" \
	"$(asuser SINGULARITYENV_FOO=baz "$FAKE" exec -e "$W/x.sif" sh -c 'echo $FOO')"
check "host env passed without --cleanenv" "1" \
	"$(asuser OTHER=1 "$FAKE" exec "$W/x.sif" sh -c 'echo $OTHER')"
asuser 'SINGULARITYENV_A=$HOME' "$FAKE" exec -e "$W/x.sif" true 2>/dev/null
check "\$ in SINGULARITYENV_ without NO_EVAL: 255" 255 $?
check "literal with NO_EVAL" '$HOME' \
	"$(asuser 'SINGULARITYENV_A=$HOME' SINGULARITY_NO_EVAL=1 "$FAKE" exec -e "$W/x.sif" sh -c 'echo "$A"')"

mkdir -p "$W/ro" "$W/rw" && chown "$U:" "$W/ro" "$W/rw"
sx -B "$W/ro:/data/ro:ro" "$W/x.sif" sh -c 'echo x > /data/ro/f' 2>/dev/null
check ":ro bind refuses a write" "1 no-file" "$? $([ -e "$W/ro/f" ] && echo file || echo no-file)"
sx --bind "$W/rw:/newdir/rw:rw" "$W/x.sif" sh -c 'echo x > /newdir/rw/f'
check ":rw bind write owned by $U" "0 $U" "$? $(stat -c %U "$W/rw/f" 2>/dev/null)"
check "SINGULARITY_BIND honoured" "x" \
	"$(asuser SINGULARITY_BIND="$W/rw:/sb" "$FAKE" exec "$W/x.sif" cat /sb/f)"
sx "$W/x.sif" sh -c 'echo y > /etc/newfile' 2>/dev/null
check "image root read-only" 1 $?
check "--pwd" "/work" "$(sx --pwd /work "$W/x.sif" pwd)"
check "default cwd is caller's" "$UHOME" "$(sx "$W/x.sif" pwd)"
check "--containall: home empty, cwd home" "$UHOME:0" \
	"$(sx -C "$W/x.sif" sh -c 'echo "$(pwd):$(ls -A | wc -l)"')"
touch /tmp/berth-fake-visible
check "--containall: private /tmp" "no" \
	"$(sx --containall "$W/x.sif" sh -c '[ -e /tmp/berth-fake-visible ] && echo yes || echo no')"
rm -f /tmp/berth-fake-visible
check "stdin passes through" "hello" "$(echo hello | sx "$W/x.sif" cat)"
check "stdout/stderr separated" "out" "$(sx "$W/x.sif" sh -c 'echo out; echo err >&2' 2>/dev/null)"
check "no-FUSE fallback (unsquashfs)" "only-in-image" \
	"$(asuser BERTH_FAKE_SINGULARITY_NO_FUSE=1 "$FAKE" exec "$W/x.sif" cat /etc/only-in-image)"
check "no session dir left" "" "$(ls /tmp | grep '^berth-fake-singularity-')"

t0=$(date +%s%N); sx "$W/x.sif" true; t1=$(date +%s%N)
echo "INFO exec of 'true' took $(((t1 - t0) / 1000000)) ms"

if [ "$fails" -ne 0 ]; then echo "$fails case(s) FAILED"; exit 1; fi
echo "all cases passed"
