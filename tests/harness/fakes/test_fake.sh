#!/bin/bash
# Self-test of tests/harness/fakes/singularity (the berth test stand-in for
# Apptainer 1.4.5).  Run as root: builds as root and as the unprivileged
# user berthtest (created if missing), runs the exec cases as berthtest.
# Prints PASS/FAIL per case; exit 1 on any failure.  The expectations are
# what the real Apptainer 1.4.5 does (see README.md, "Last compared against").
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../../.." && pwd)
FAKE="$HERE/singularity"
MKIMAGE="$TOP/tests/harness/fixtures/mkimage.py"
U=berthtest
DEFPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

[ "$(id -u)" = 0 ] || { echo "run as root (exec cases use setpriv to $U)"; exit 2; }
id "$U" >/dev/null 2>&1 || useradd -m "$U"
UHOME=$(getent passwd "$U" | cut -d: -f6)
mkdir -p "$UHOME" && chown "$U:" "$UHOME"
UID_U=$(id -u "$U")

W=$(mktemp -d /tmp/berth-fake-test.XXXXXX)
chmod 755 "$W"
trap 'rm -rf "$W"' EXIT
export BERTH_FAKE_SINGULARITY_LOG="$W/build.log"
# others' leftovers (the unsquashfs path of a killed session) are not ours
tmp_before=$(ls /tmp | grep '^berth-fake-singularity-')

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
sx() { asuser "$FAKE" -q exec "$@"; }
# NO_EVAL, as berth sets it, for the environment cases
sxe() { asuser APPTAINER_NO_EVAL=1 "$@"; }

python3 "$MKIMAGE" legacy "$W/x.tar" --env FOO=bar --workdir /work >/dev/null
python3 "$MKIMAGE" oci "$W/o.tar" --gzip-archive --gzip-layers >/dev/null
python3 "$MKIMAGE" legacy "$W/p.tar" --env PATH=/img/bin:/usr/bin:/bin >/dev/null
python3 "$MKIMAGE" legacy "$W/q.tar" --env 'Q=a"b' >/dev/null
chmod 644 "$W"/*.tar

# --- version, usage -------------------------------------------------------
check "--version" "apptainer version 1.4.5-berth-fake" "$("$FAKE" --version)"
check "version" "1.4.5-berth-fake" "$("$FAKE" version)"
"$FAKE" run "$W/x.sif" true 2>/dev/null
check "run (real, not emulated): 255" 255 $?
"$FAKE" nosuchcommand >/dev/null 2>&1
check "unknown command: 1 (usage)" 1 $?
"$FAKE" --nosuchflag exec "$W/x.sif" true >/dev/null 2>&1
check "unknown global flag: 1 (usage)" 1 $?

# --- build -------------------------------------------------------------
"$FAKE" -q build "$W/x.sif" "docker-archive:$W/x.tar"
check "build legacy" 0 $?
"$FAKE" -q build "$W/o.sif" "docker-archive:$W/o.tar"
check "build oci gzip" 0 $?
check "build log counts 2" 2 "$(wc -l <"$BERTH_FAKE_SINGULARITY_LOG")"
check "flattened (whiteout)" "" "$(unsquashfs -l "$W/x.sif" | grep removed-by-whiteout)"
check "SIF mode 0755 (umask 022)" 755 "$(umask 022; "$FAKE" -q build "$W/m.sif" "docker-archive:$W/x.tar"; stat -c %a "$W/m.sif")"
"$FAKE" build "$W/x.sif" "docker-archive:$W/x.tar" 2>"$W/err"
check "build existing dest without --force: 255" 255 $?
check "build existing dest message" "FATAL:   While checking build target: build target 'x.sif' already exists. Use --force if you want to overwrite it" "$(cat "$W/err")"
"$FAKE" -q build --force "$W/x.sif" "docker-archive:$W/x.tar"
check "build --force" 0 $?
"$FAKE" build -F "$W/b.sif" "docker-archive:$W/x.tar" 2>"$W/err"
check "build INFO lines" "INFO:    Starting build...|INFO:    Fetching OCI image...|INFO:    Extracting OCI image...|INFO:    Inserting Apptainer configuration...|INFO:    Creating SIF file...|INFO:    Build complete: $W/b.sif" "$(paste -sd'|' "$W/err")"
(cd "$W" && "$FAKE" -q build "$W/r.sif" docker-archive:x.tar)
check "relative docker-archive path (as the real one): 0" 0 $?
"$FAKE" -q build "$W/s.sif" "docker-archive://$W/x.tar"
check "docker-archive:///abs (as the real one): 0" 0 $?
"$FAKE" -q build "$W/t.sif" "docker-archive:$W/x.tar:berth/test:latest" 2>"$W/err"
check "':' in the archive path: 255" 255 $?
grep -q '^FATAL:   ' "$W/err" && pass "':' FATAL message" || fail "':' FATAL message"
"$FAKE" -q build "$W/t.sif" "docker-archive:$W/nope.tar" 2>"$W/err"
check "missing archive: 255" "255 FATAL:   While performing build: conveyor failed to get: error reading the docker archive file: open $W/nope.tar: no such file or directory" "$? $(cat "$W/err")"
check "no temp dir left" "" "$(ls /tmp | grep '^build-temp-')"
# images the user builds (files then show as the user's, as on the real one)
mkdir "$W/u" && chown "$U:" "$W/u"
asuser "$FAKE" -q build "$W/u/u.sif" "docker-archive:$W/x.tar" &&
	asuser "$FAKE" -q build "$W/u/p.sif" "docker-archive:$W/p.tar" &&
	asuser "$FAKE" -q build "$W/u/q.sif" "docker-archive:$W/q.tar"
check "build as $U" 0 $?
mv "$W"/u/*.sif "$W/"
chmod 644 "$W"/*.sif

# --- exec: basics, statuses, messages ------------------------------------
check "cat /etc/only-in-image" "only-in-image" "$(sx "$W/x.sif" cat /etc/only-in-image)"
check "id -u is caller" "$UID_U" "$(sx "$W/x.sif" id -u)"
sx "$W/x.sif" sh -c 'exit 42'
check "exit 42" 42 $?
sx "$W/x.sif" sh -c 'kill -9 $$'
check "kill -9 gives 137" 137 $?
sx "$W/x.sif" sh -c 'kill -TERM $$'
check "SIGTERM gives 143" 143 $?
sx -C "$W/x.sif" sh -c 'kill -TERM $$'
check "SIGTERM gives 143 (--containall, PID namespace)" 143 $?
asuser "$FAKE" exec "$W/x.sif" true 2>"$W/err"
if PATH=/usr/bin:/bin:$DEFPATH command -v gocryptfs >/dev/null; then want=""; else
	want="INFO:    gocryptfs not found, will not be able to use gocryptfs"; fi
check "gocryptfs notice without -q" "$want" "$(grep gocryptfs "$W/err")"
asuser "$FAKE" --quiet exec "$W/x.sif" true 2>"$W/err"
check "no notice with --quiet" "" "$(cat "$W/err")"
asuser SINGULARITYENV_X=1 APPTAINERENV_X=2 "$FAKE" -q exec "$W/x.sif" true 2>"$W/err"
check "-q keeps WARNING" 2 "$(grep -c '^WARNING: ' "$W/err")"
asuser SINGULARITYENV_X=1 APPTAINERENV_X=2 "$FAKE" -s exec "$W/x.sif" nonexistent-cmd 2>"$W/err"
check "-s keeps only FATAL" "FATAL:   \"nonexistent-cmd\": executable file not found in \$PATH" "$(cat "$W/err")"
sx --foo "$W/x.sif" true >/dev/null 2>"$W/err"
check "unknown flag: 1 (usage)" 1 $?
check "unknown flag message" "Error for command \"exec\": unknown flag: --foo" "$(head -n1 "$W/err")"
sx --nv "$W/x.sif" true 2>/dev/null
check "real but unemulated flag (--nv): 255" 255 $?
sx "$W/x.sif" nonexistent-cmd 2>"$W/err"
check "command not found: 255" 255 $?
check "command not found message" "FATAL:   \"nonexistent-cmd\": executable file not found in \$PATH" "$(cat "$W/err")"
sx "$W/x.sif" /nonexistent 2>"$W/err"
check "missing path: 255 + message" "255 FATAL:   stat /nonexistent: no such file or directory" "$? $(cat "$W/err")"
sx --pwd /nonexistent "$W/x.sif" true 2>"$W/err"
check "--pwd missing: 255 + message" "255 FATAL:   failed to set working directory: chdir /nonexistent: no such file or directory" "$? $(cat "$W/err")"
sx -B "$W/nope:/x" "$W/x.sif" true 2>"$W/err"
check "missing bind source: 255" 255 $?
check "missing bind source messages" "WARNING: skipping mount of $W/nope: stat $W/nope: no such file or directory|FATAL:   container creation failed: mount hook function failure: mount $W/nope->/x error: while mounting $W/nope: mount source $W/nope doesn't exist" "$(paste -sd'|' "$W/err")"
asuser APPTAINER_CONTAINALL=yes "$FAKE" -q exec "$W/x.sif" true 2>/dev/null
check "env flag not a Go bool: 255" 255 $?
check "argv[0] is the path found" "/bin/cat" "$(sx "$W/x.sif" cat /proc/self/cmdline | tr '\0' '\n' | head -n1)"

# --- exec: environment ---------------------------------------------------
names=$(sxe SINGULARITYENV_XX=1 TERM=dumb OTHER=1 \
	"$FAKE" -q exec --cleanenv "$W/x.sif" env | cut -d= -f1 | sort | tr '\n' ' ')
check "--cleanenv env names" "APPTAINER_APPNAME APPTAINER_BIND APPTAINER_COMMAND APPTAINER_CONTAINER APPTAINER_ENVIRONMENT APPTAINER_NAME APPTAINER_NO_EVAL FOO HOME LANG LD_LIBRARY_PATH PATH PROMPT_COMMAND PS1 PWD SINGULARITY_BIND SINGULARITY_CONTAINER SINGULARITY_ENVIRONMENT SINGULARITY_NAME SINGULARITY_NO_EVAL TERM XX " "$names"
check "APPTAINER_CONTAINER / NAME" "$W/x.sif x.sif" "$(sx -e "$W/x.sif" sh -c 'echo "$APPTAINER_CONTAINER $SINGULARITY_NAME"')"
check "PS1 and PROMPT_COMMAND" 'Apptainer> |PS1="Apptainer> "; unset PROMPT_COMMAND' \
	"$(sx -e "$W/x.sif" sh -c 'printf "%s|%s" "$PS1" "$PROMPT_COMMAND"')"
check "host PROMPT_COMMAND kept (no --cleanenv)" 'pc; PROMPT_COMMAND="${PROMPT_COMMAND%%; PROMPT_COMMAND=*}"; PS1="Apptainer> "' \
	"$(asuser PROMPT_COMMAND=pc "$FAKE" -q exec "$W/x.sif" sh -c 'printf %s "$PROMPT_COMMAND"')"
check "no LC_CTYPE leak (Python's locale coercion)" "" "$(sx "$W/x.sif" env | grep '^LC_')"
check "USER_PATH (no --cleanenv)" "/usr/bin:/bin:/bin:/usr/bin:/sbin:/usr/sbin:/usr/local/bin:/usr/local/sbin" \
	"$(sx "$W/x.sif" sh -c 'echo $USER_PATH')"
check "image env FOO" "bar" "$(sx -e "$W/x.sif" sh -c 'echo $FOO')"
check "image Env wins over the host's (no --cleanenv)" "bar" "$(asuser FOO=host "$FAKE" -q exec "$W/x.sif" sh -c 'echo $FOO')"
check "APPTAINERENV_ overrides image" "baz" \
	"$(asuser APPTAINERENV_FOO=baz "$FAKE" -q exec -e "$W/x.sif" sh -c 'echo $FOO')"
check "APPTAINERENV_ wins over SINGULARITYENV_" "a" \
	"$(asuser SINGULARITYENV_FOO=s APPTAINERENV_FOO=a "$FAKE" -q exec -e "$W/x.sif" sh -c 'echo $FOO' 2>/dev/null)"
check "host env passed without --cleanenv" "1" \
	"$(asuser OTHER=1 "$FAKE" -q exec "$W/x.sif" sh -c 'echo $OTHER')"
asuser APPTAINERENV_HOME=/elsewhere "$FAKE" -q exec -e "$W/x.sif" sh -c 'echo $HOME' >"$W/out" 2>"$W/err"
check "APPTAINERENV_HOME ignored, WARNING" "$UHOME|WARNING: Overriding HOME environment variable with APPTAINERENV_HOME is not permitted" \
	"$(cat "$W/out")|$(cat "$W/err")"
asuser 'APPTAINERENV_A=$HOME' "$FAKE" -q exec -e "$W/x.sif" true 2>/dev/null
check "\$ in APPTAINERENV_ without NO_EVAL: 255" 255 $?
asuser 'APPTAINERENV_A=a\b' "$FAKE" -q exec -e "$W/x.sif" true 2>/dev/null
check "backslash in APPTAINERENV_ without NO_EVAL: 255" 255 $?
check "literal with NO_EVAL" '$HOME `id` a\b' \
	"$(sxe 'APPTAINERENV_A=$HOME `id` a\b' "$FAKE" -q exec -e "$W/x.sif" sh -c 'echo "$A"')"
check "NO_EVAL exported inside" "1 1" "$(sxe "$FAKE" -q exec -e "$W/x.sif" sh -c 'echo "$APPTAINER_NO_EVAL $SINGULARITY_NO_EVAL"')"
check "image Env value with a quote: mangled as the real one mangles it" 'a\"b' \
	"$(sx -e "$W/q.sif" sh -c 'printf %s "$Q"')"

# --- exec: PATH rules ----------------------------------------------------
check "image PATH + missing defaults" "/img/bin:/usr/bin:/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin" \
	"$(sx -e "$W/p.sif" /bin/sh -c 'echo $PATH')"
check "host PATH ignored" "$DEFPATH" "$(asuser PATH=/host/bin:/usr/bin:/bin "$FAKE" -q exec "$W/x.sif" /bin/sh -c 'echo $PATH')"
for e in "" -e; do
	check "APPTAINERENV_PATH replaces [$e]" "/cli/bin" \
		"$(sxe APPTAINERENV_PATH=/cli/bin "$FAKE" -q exec $e "$W/p.sif" /bin/sh -c 'echo $PATH')"
	check "PREPEND/APPEND around the image PATH [$e]" "/pre:/img/bin:/usr/bin:/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/app" \
		"$(sxe APPTAINERENV_PREPEND_PATH=/pre APPTAINERENV_APPEND_PATH=/app "$FAKE" -q exec $e "$W/p.sif" /bin/sh -c 'echo $PATH')"
	check "PREPEND/APPEND ignored when PATH is given [$e]" "/cli/bin" \
		"$(sxe APPTAINERENV_PATH=/cli/bin APPTAINERENV_PREPEND_PATH=/pre APPTAINERENV_APPEND_PATH=/app "$FAKE" -q exec $e "$W/p.sif" /bin/sh -c 'echo $PATH')"
done
check "command found through the container's PATH" 255 "$(sxe APPTAINERENV_PATH=/nowhere "$FAKE" -q exec "$W/x.sif" true 2>/dev/null; echo $?)"

# --- exec: mounts, home, working directory ---------------------------------
mkdir -p "$W/ro" "$W/rw" && chown "$U:" "$W/ro" "$W/rw"
sx -B "$W/ro:/data/ro:ro" "$W/x.sif" sh -c 'echo x > /data/ro/f' 2>/dev/null
check ":ro bind refuses a write" "1 no-file" "$? $([ -e "$W/ro/f" ] && echo file || echo no-file)"
sx --bind "$W/rw:/newdir/rw:rw" "$W/x.sif" sh -c 'echo x > /newdir/rw/f'
check ":rw bind write owned by $U" "0 $U" "$? $(stat -c %U "$W/rw/f" 2>/dev/null)"
check "APPTAINER_BIND honoured, listed inside after the command line's" "x|/a,/sb" \
	"$(asuser APPTAINER_BIND="$W/rw:/sb" "$FAKE" -q exec -B "$W/ro:/a" "$W/x.sif" sh -c 'printf "%s|%s" "$(cat /sb/f)" "$APPTAINER_BIND"')"
sx "$W/x.sif" sh -c 'echo y > /etc/newfile' 2>/dev/null
check "image root read-only" 1 $?
check "--writable-tmpfs: image folders writable" "$U" \
	"$(sx -C --writable-tmpfs "$W/u.sif" sh -c 'touch /usr/new && stat -c %U /usr/new' 2>&1)"
# Checked against the real 1.4.5 (no /etc/subuid entry): uid 0 mapped to
# the caller alone; --writable writes the sandbox folder itself; --no-pid
# keeps the host's PID namespace, but not under --containall.
check "--fakeroot --ignore-subuid --ignore-fakeroot-command: 0 UID 1" "0:0 $(id -u "$U") 1" \
	"$(sx -C --no-home --fakeroot --ignore-subuid --ignore-fakeroot-command "$W/x.sif" \
		sh -c 'echo "$(id -u):$(id -g) $(awk "{print \$2, \$3}" /proc/self/uid_map)"')"
mkdir -p "$W/sbx" && (cd "$W/sbx" && unsquashfs -q -n -d t "$W/x.sif" >/dev/null 2>&1 || true)
if [ -d "$W/sbx/t" ]; then
	chown -R "$U:" "$W/sbx"
	sx --writable "$W/sbx/t" sh -c 'echo w > /written' 2>/dev/null
	check "--writable on a sandbox writes the folder" "w" "$(cat "$W/sbx/t/written" 2>&1)"
fi
check "--no-pid (without --containall): the host's PID namespace" "$(readlink /proc/self/ns/pid)" \
	"$(sx --no-pid "$W/x.sif" readlink /proc/self/ns/pid)"
ns=$(sx -C --no-pid "$W/x.sif" readlink /proc/self/ns/pid)
check "--containall keeps its PID namespace even with --no-pid (as the real 1.4.5)" other \
	"$([ -n "$ns" ] && [ "$ns" != "$(readlink /proc/self/ns/pid)" ] && echo other || echo "$ns")"
check "--contain --ipc: no PID namespace, the contained file system" "$(readlink /proc/self/ns/pid) 0" \
	"$(cd / && sx --contain --ipc --no-home "$W/x.sif" sh -c 'echo "$(readlink /proc/self/ns/pid) $(ls -A /tmp | wc -l)"')"
check "--pwd" "/work" "$(sx --pwd /work "$W/x.sif" pwd)"
check "default cwd is caller's" "$UHOME" "$(sx "$W/x.sif" pwd)"
check "--containall: home empty, cwd home" "$UHOME:0" \
	"$(sx -C "$W/x.sif" sh -c 'echo "$(pwd):$(ls -A | wc -l)"')"
mkdir -p /var/tmp/berth-fake-home.$$ && chown "$U:" /var/tmp/berth-fake-home.$$ && touch /var/tmp/berth-fake-home.$$/mark
check "--containall --home under /var/tmp: visible" "mark" \
	"$(sx -C --home /var/tmp/berth-fake-home.$$ "$W/x.sif" ls /var/tmp/berth-fake-home.$$)"
rm -rf /var/tmp/berth-fake-home.$$
out=$(sx -C --home /nohome-$$ "$W/x.sif" sh -c 'echo "$HOME:$(ls -A | wc -l)"')
check "--home with a missing source: empty home, no error" "0 /nohome-$$:0" "$? $out"
sx -C --no-home --pwd / "$W/x.sif" sh -c 'test -d "$HOME"'
check "--containall --no-home: no home folder" 1 $?
touch /tmp/berth-fake-visible
check "--containall: private /tmp" "no" \
	"$(sx --containall "$W/x.sif" sh -c '[ -e /tmp/berth-fake-visible ] && echo yes || echo no')"
rm -f /tmp/berth-fake-visible
check "--containall: PID namespace" "yes" "$(sx -C "$W/x.sif" sh -c '[ $$ -lt 10 ] && echo yes || echo no')"
sx -C "$W/x.sif" sh -c 'sleep 4711 >/dev/null 2>&1 &'
sleep 0.2
check "--containall: background processes end with the command" "" "$(pgrep -f 'sleep 4711')"
check "--containall: /dev as the real one's" "fd mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero " \
	"$(sx -C "$W/x.sif" ls /dev | tr '\n' ' ')"
check "no new privileges, no bounding caps" "NoNewPrivs:1 CapBnd:0000000000000000" \
	"$(sx "$W/x.sif" sh -c 'grep -E "^(NoNewPrivs|CapBnd)" /proc/self/status' | tr -d '\t' | sort -r | tr '\n' ' ' | sed 's/ $//')"
check "stdin passes through" "hello" "$(echo hello | sx "$W/x.sif" cat)"
check "stdout/stderr separated" "out" "$(sx "$W/x.sif" sh -c 'echo out; echo err >&2' 2>/dev/null)"
check "no-FUSE fallback (unsquashfs)" "only-in-image" \
	"$(asuser BERTH_FAKE_SINGULARITY_NO_FUSE=1 "$FAKE" -q exec "$W/x.sif" cat /etc/only-in-image)"
check "no session dir left" "$tmp_before" "$(ls /tmp | grep '^berth-fake-singularity-')"
# a cancelled step SIGKILLs the runtime: the real one leaves nothing on the
# host (its session tmpfs lives in the container's mount namespace)
{
	sx "$W/x.sif" sh -c 'sleep 4712' &
	sleep 1
	pkill -KILL -f 'fakes/singularity -q exec .*sleep 4712'
	wait
	pkill -KILL -f 'sleep 4712'
} 2>/dev/null
check "SIGKILLed: nothing left on the host" "$tmp_before" "$(ls /tmp | grep '^berth-fake-singularity-')"

t0=$(date +%s%N); sx "$W/x.sif" true; t1=$(date +%s%N)
echo "INFO exec of 'true' took $(((t1 - t0) / 1000000)) ms"

if [ "$fails" -ne 0 ]; then echo "$fails case(s) FAILED"; exit 1; fi
echo "all cases passed"
