#!/usr/bin/env bats
# Executor conformance suite: one file, run unchanged against every runtime.
#
#   BERTH_RUNTIME=charliecloud|singularity|docker bats --tap conformance.bats
#
# Normally started by tests/conformance/run.sh, once per available runtime,
# as an unprivileged user.  Optional environment:
#   BERTH                 the berth command (default: <repo>/build/berth)
#   BERTH_CONFORMANCE_DIR a work folder the user owns (default: bats' temp)
#   BERTH_SINGULARITY     singularity/apptainer binary (default: the strict
#                         stand-in tests/harness/fakes/singularity)
#   BERTH_CONFIG          berth configuration (default: one written here)
#   BERTH_SING_FORMAT     SingularityImageFormat of that configuration
#                         (auto, sif, sandbox; default auto)
#   BERTH_IMAGE_STORAGE   ImageStorage of that configuration (default auto, as
#                         berth's: one mounted SquashFS file where squashfuse
#                         works, else the tree; tree or squashfs pin one)
#
# Everything goes through `berth run` (see DESIGN.md, "The executor
# interface"); the image is staged by berth run itself into a per-suite cache.

# ---- names a runtime adds to the container environment -------------------
# The environment inside must be exactly: image Env, then --env, then
# --env-pass.  Each runtime adds a few names of its own; the env test ignores
# exactly these and nothing else.
#   charliecloud: ch-run sets CH_RUNNING=Y and HOME (the user's home); PWD,
#     SHLVL and _ come from the shell / exec conventions; PATH is added by
#     ch-run only when the image sets none (added below in that case).
#   singularity/apptainer: the action scripts under /.singularity.d set HOME,
#     PS1, PROMPT_COMMAND (Apptainer), PWD, SHLVL, _, LANG, TERM and their
#     own SINGULARITY_* / APPTAINER_* bookkeeping variables (CONTAINER, NAME,
#     ENVIRONMENT, BIND; Apptainer also APPNAME, COMMAND, and NO_EVAL under
#     both prefixes, mirroring the APPTAINER_NO_EVAL that berth gives the
#     runtime so values arrive unevaluated), and LD_LIBRARY_PATH pointing at
#     /.singularity.d/libs (where --nv and friends put host libraries).
#     Checked against the real Apptainer 1.4.5 (tests/harness/matrix/);
#     SingularityCE 3.4.2 sets SINGULARITY_APPNAME (empty) too.
#   docker: the daemon sets HOME and HOSTNAME; PWD, SHLVL, _ as above.
IGNORE_charliecloud="CH_RUNNING HOME PWD SHLVL _"
IGNORE_singularity="HOME PS1 PROMPT_COMMAND PWD SHLVL _ LANG TERM LD_LIBRARY_PATH
	SINGULARITY_CONTAINER SINGULARITY_NAME SINGULARITY_ENVIRONMENT SINGULARITY_BIND
	SINGULARITY_NO_EVAL SINGULARITY_APPNAME APPTAINER_CONTAINER APPTAINER_NAME APPTAINER_ENVIRONMENT
	APPTAINER_BIND APPTAINER_APPNAME APPTAINER_COMMAND APPTAINER_NO_EVAL"
IGNORE_docker="HOME HOSTNAME PWD SHLVL _"

# ---- helpers --------------------------------------------------------------

# brun [berth run options] -- CMD...: run a container with the suite's image
# (override with IMG=...), stdin from /dev/null; sets $status, and leaves
# stdout in $OUT and stderr in $ERR.  Both are echoed so a failure shows them.
brun() {
	status=0
	timeout 120 "$BERTH" run --runtime "$BERTH_RUNTIME" --image "${IMG:-$IMAGE}" \
		--cache-dir "$CACHE" $AS_USER_OPT "$@" >"$OUT" 2>"$ERR" </dev/null || status=$?
	show
}

# give PATH...: hand test files to the caller (the docker pass creates
# them as root; the container runs as the caller and must use them).
give() {
	[ -z "${AS_ROOT_FOR:-}" ] || chown -R "$CALLER_UID:$CALLER_GID" "$@"
}

# as_caller CMD...: run CMD as the caller (the test user, in the docker pass).
as_caller() {
	if [ -n "${AS_ROOT_FOR:-}" ]; then
		setpriv --reuid="$CALLER_UID" --regid="$CALLER_GID" --init-groups "$@"
	else
		"$@"
	fi
}

show() {
	echo "# berth run exit status: $status"
	echo "# --- stdout:"
	tr '\0' '\n' <"$OUT" | sed 's/^/#   /'
	echo "# --- stderr:"
	tr '\0' '\n' <"$ERR" | sed 's/^/#   /'
}

# alive PID: the process exists and is not a zombie.
alive() {
	local s
	s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$s" ] && [[ $s != Z* ]]
}

# image_env ARCHIVE: the image config's Env, one entry per line.
image_env() {
	python3 - "$1" <<'EOF'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile("manifest.json"))
c = json.load(t.extractfile(m[0]["Config"]))
for kv in c.get("config", {}).get("Env") or []:
    print(kv)
EOF
}

# env_of FILE: `env -0` output (as written by the container) as sorted
# NAME=VALUE lines, minus the runtime's own names.
env_of() {
	local ignore="IGNORE_$BERTH_RUNTIME" kv name
	local -A skip=()
	for name in ${!ignore} $EXTRA_IGNORE; do skip[$name]=1; done
	while IFS= read -r -d '' kv; do
		name=${kv%%=*}
		[ -n "${skip[$name]:-}" ] || printf '%s\n' "$kv"
	done <"$1" | LC_ALL=C sort
}

# ---- suite setup ----------------------------------------------------------

setup_file() {
	# The point of the suite is the unprivileged case: refuse to run as root,
	# except for docker.  Docker is root-equivalent: berth's root side runs
	# the container for the user (the plugin does in a job), so the suite
	# plays that root side with `berth run --user` and checks everything
	# as the user: CALLER_UID/CALLER_GID are whose container it is.
	if [ "$(id -u)" -eq 0 ] && [ "${BERTH_RUNTIME:-}" = docker ]; then
		export AS_ROOT_FOR=${BERTH_TEST_USER:-berthtest}
		CALLER_UID=$(id -u "$AS_ROOT_FOR")
		CALLER_GID=$(id -g "$AS_ROOT_FOR")
	elif [ "$(id -u)" -eq 0 ]; then
		echo "conformance suite must run as an unprivileged user (run.sh does)" >&2
		return 1
	else
		CALLER_UID=$(id -u)
		CALLER_GID=$(id -g)
	fi
	export CALLER_UID CALLER_GID
	case ${BERTH_RUNTIME:-} in
	charliecloud | singularity | docker) ;;
	*)
		echo "BERTH_RUNTIME must be charliecloud, singularity or docker" >&2
		return 1
		;;
	esac
	REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	export REPO
	export BERTH=${BERTH:-$REPO/build/berth}
	[ -x "$BERTH" ] || {
		echo "no berth command at $BERTH" >&2
		return 1
	}
	export W=${BERTH_CONFORMANCE_DIR:-$BATS_FILE_TMPDIR}/$BERTH_RUNTIME
	rm -rf "$W"
	mkdir -p "$W"
	# CacheDir must exist (the Slurm plugin makes it on a node); berth
	# makes CacheDir/<uid> itself.
	export CACHE=$W/cache
	mkdir -p "$CACHE"
	# Image with Env and WorkingDir, and one without a WorkingDir.
	export IMAGE=$W/image.tar IMAGE_NOWD=$W/image-nowd.tar
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$IMAGE" --workdir /work \
		--env IMG_VAR=from-image --env IMG_OVERRIDE=image-value >/dev/null
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$IMAGE_NOWD" >/dev/null
	export EXTRA_IGNORE=""
	if [ "$BERTH_RUNTIME" = charliecloud ] && ! image_env "$IMAGE" | grep -q '^PATH='; then
		EXTRA_IGNORE=PATH
	fi
	if [ -z "${BERTH_CONFIG:-}" ]; then
		local sing=${BERTH_SINGULARITY:-${BERTH_TEST_SINGULARITY:-$REPO/tests/harness/fakes/singularity}}
		local chrun
		chrun=$(command -v ch-run || echo /usr/bin/ch-run)
		export BERTH_CONFIG=$W/berth.conf
		cat >"$BERTH_CONFIG" <<-EOF
			AllowedRuntimes=charliecloud,singularity,docker
			SingularityPath=$sing
			SingularityImageFormat=${BERTH_SING_FORMAT:-auto}
			ChRunPath=$chrun
			ImageStorage=${BERTH_IMAGE_STORAGE:-auto}
			DockerAllowedMounts=$W
		EOF
	fi
}

setup() {
	T=$(mktemp -d "$W/t.XXXXXX")
	give "$T"
	AS_USER_OPT=${AS_ROOT_FOR:+--user $CALLER_UID:$CALLER_GID}
	OUT=$T/stdout
	ERR=$T/stderr
	: >"$OUT"
	: >"$ERR"
}

teardown() {
	# A FUSE mount left by a failed test must not block the clean-up.
	if [ -n "${FUSE_MNT:-}" ] && mountpoint -q "$FUSE_MNT"; then
		fusermount -u "$FUSE_MNT" || fusermount -u -z "$FUSE_MNT" || true
	fi
	# A berth run left by a failed test: TERM first (berth run --runtime
	# docker removes its container then; a SIGKILL would leave it running).
	[ -z "${HOST_LISTENER:-}" ] || kill "$HOST_LISTENER" 2>/dev/null || true
	if [ -n "${KILL_PID:-}" ]; then
		kill -TERM "$KILL_PID" 2>/dev/null || true
		local i
		for ((i = 0; i < 50; i++)); do
			alive "$KILL_PID" || break
			sleep 0.1
		done
		kill -KILL "$KILL_PID" 2>/dev/null || true
	fi
	chmod -R u+rwX "$T" 2>/dev/null || true
	rm -rf "$T"
}

# ---- cases ----------------------------------------------------------------

@test "[$BERTH_RUNTIME] runs as an unprivileged user" {
	[ "$CALLER_UID" -ne 0 ]
	[ "$CALLER_GID" -ne 0 ]
	brun -- id -u
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = "$CALLER_UID" ]
}

@test "[$BERTH_RUNTIME] echo" {
	brun -- echo hello world
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = "hello world" ]
}

@test "[$BERTH_RUNTIME] stdout and stderr are kept apart" {
	brun -- sh -c 'echo to-stdout; echo to-stderr >&2'
	[ "$status" -eq 0 ]
	# stdout holds exactly the command's output: berth writes nothing there
	printf 'to-stdout\n' | cmp - "$OUT"
	grep -qx to-stderr "$ERR"
	! grep -q to-stdout "$ERR" || false
}

@test "[$BERTH_RUNTIME] stdin is delivered" {
	status=0
	printf 'abc\0def\nlast line without newline' >"$T/in"
	timeout 120 "$BERTH" run --runtime "$BERTH_RUNTIME" --image "$IMAGE" \
		--cache-dir "$CACHE" $AS_USER_OPT -- cat <"$T/in" >"$OUT" 2>"$ERR" || status=$?
	show
	[ "$status" -eq 0 ]
	cmp "$T/in" "$OUT"
	# and through a pipe, as the spec writes it
	printf 'abc' | timeout 120 "$BERTH" run --runtime "$BERTH_RUNTIME" \
		--image "$IMAGE" --cache-dir "$CACHE" $AS_USER_OPT -- cat >"$OUT" 2>"$ERR" || status=$?
	show
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = abc ]
}

@test "[$BERTH_RUNTIME] no TTY: stdio are the caller's pipes and files" {
	brun -- sh -c 'test -t 0 || test -t 1 || test -t 2 || echo no-tty'
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = no-tty ]
}

@test "[$BERTH_RUNTIME] exit code 0" {
	brun -- true
	[ "$status" -eq 0 ]
}

@test "[$BERTH_RUNTIME] exit code 1" {
	brun -- sh -c 'echo ran; exit 1'
	[ "$status" -eq 1 ]
	[ "$(cat "$OUT")" = ran ]
}

@test "[$BERTH_RUNTIME] exit code 42" {
	brun -- sh -c 'exit 42'
	[ "$status" -eq 42 ]
}

# A SIF cannot be looked into before the runtime runs (berth has no
# SquashFS reader): there Apptainer's own 255 stands (README, "Exit status").
skip_if_sif() {
	if [ "$BERTH_RUNTIME" = singularity ] &&
		compgen -G "$CACHE/$CALLER_UID/images/*/image.sif" >/dev/null; then
		skip "singularity with SIF images: the command is not checked before the run"
	fi
}

@test "[$BERTH_RUNTIME] a command not in the container gives 127, the reason on stderr" {
	brun -- true # staged, so that skip_if_sif can tell the format
	skip_if_sif
	brun -- no-such-command-berth
	[ "$status" -eq 127 ]
	grep -q 'no-such-command-berth' "$ERR"
	brun -- /no/such/dir/command
	[ "$status" -eq 127 ]
	grep -q '/no/such/dir/command' "$ERR"
}

@test "[$BERTH_RUNTIME] a file that is not executable gives 126, the reason on stderr" {
	brun -- true
	skip_if_sif
	brun -- /etc/only-in-image
	[ "$status" -eq 126 ]
	grep -q '/etc/only-in-image' "$ERR"
	brun -- /etc
	[ "$status" -eq 126 ]
	grep -q '/etc' "$ERR"
}

@test "[$BERTH_RUNTIME] berth's own failure gives 125, the reason on stderr" {
	IMG=$T/no-such-image.tar brun -- true
	[ "$status" -eq 125 ]
	grep -q '^berth: .*no-such-image.tar' "$ERR"
	# a command that exits 125 itself is still the command's, untold
	brun -- sh -c 'exit 125'
	[ "$status" -eq 125 ]
	[ ! -s "$ERR" ]
}

# bimage ARGS...: berth inspect --cached / berth cache rm for this runtime;
# sets $status, stdout in $OUT, stderr in $ERR.
bimage() {
	status=0
	timeout 120 "$BERTH" "$@" >"$OUT" 2>"$ERR" </dev/null || status=$?
	show
}

@test "[$BERTH_RUNTIME] inspect --cached and cache rm: not cached, cached, in use, removed" {
	# An image of this test's own (a digest no other test or helper uses:
	# for docker, dockerd is shared).
	local img=$T/own.tar n=$((100000 + RANDOM * 8 + $$ % 8)) i digest
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$img" \
		--env "OWN=$BERTH_RUNTIME-$n-$(date +%s%N)" >/dev/null
	give "$img"
	bimage inspect --cached --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$img"
	[ "$status" -eq 1 ]
	grep -q ' not-cached$' "$OUT"
	digest=$(cut -d' ' -f1 "$OUT")
	[[ $digest == sha256:* ]]
	bimage cache rm --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$img"
	[ "$status" -eq 1 ]
	grep -q '^berth: .*nothing to remove' "$ERR"
	IMG=$img brun -- true
	[ "$status" -eq 0 ]
	# cached: by the archive and by its digest
	bimage inspect --cached --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$img"
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = "$digest cached" ]
	bimage inspect --cached --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$digest"
	[ "$status" -eq 0 ]
	# in use: a container runs it; rm refuses and says so
	"$BERTH" run --runtime "$BERTH_RUNTIME" --image "$img" --cache-dir "$CACHE" \
		$AS_USER_OPT -- sh -c "exec sleep $n" >"$T/bg.out" 2>"$T/bg.err" </dev/null 3>&- &
	KILL_PID=$!
	for ((i = 0; i < 600; i++)); do
		pgrep -u "$CALLER_UID" -x -f "sleep $n" >/dev/null && break
		alive "$KILL_PID" || break
		sleep 0.1
	done
	sed 's/^/# background run: /' "$T/bg.err"
	pgrep -u "$CALLER_UID" -x -f "sleep $n" >/dev/null
	bimage cache rm --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$img"
	[ "$status" -eq 1 ]
	grep -q '^berth: .*in use' "$ERR"
	bimage inspect --cached --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$digest"
	[ "$status" -eq 0 ]
	kill -TERM "$KILL_PID"
	wait "$KILL_PID" || true
	KILL_PID=
	# ended: removed, then not cached, then nothing to remove
	bimage cache rm --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$digest"
	[ "$status" -eq 0 ]
	grep -q "^$digest removed" "$OUT"
	bimage inspect --cached --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$img"
	[ "$status" -eq 1 ]
	# and it stages again at its next use
	IMG=$img brun -- true
	[ "$status" -eq 0 ]
	bimage cache rm --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$img"
	[ "$status" -eq 0 ]
	# an error is neither yes nor no
	bimage inspect --cached --runtime "$BERTH_RUNTIME" --cache-dir "$CACHE" "$T/none.tar"
	[ "$status" -eq 2 ]
	grep -q '^berth: ' "$ERR"
}

@test "[$BERTH_RUNTIME] death by SIGKILL gives 137" {
	brun -- sh -c 'kill -9 $$'
	[ "$status" -eq 137 ]
}

@test "[$BERTH_RUNTIME] death by SIGTERM gives 143" {
	brun -- sh -c 'kill -TERM $$'
	[ "$status" -eq 143 ]
}

@test "[$BERTH_RUNTIME] environment is exactly image Env + --env + --env-pass" {
	export CANARY=1 PASSED_VAR=passed-value
	brun --env IMG_OVERRIDE=from-cli --env NEW_VAR=new --env-pass PASSED_VAR -- env -0
	unset CANARY PASSED_VAR
	[ "$status" -eq 0 ]
	{
		image_env "$IMAGE" | grep -v '^IMG_OVERRIDE='
		echo IMG_OVERRIDE=from-cli
		echo NEW_VAR=new
		echo PASSED_VAR=passed-value
	} | grep -v "^\\(${EXTRA_IGNORE:-#}\\)=" | LC_ALL=C sort >"$T/expected"
	env_of "$OUT" >"$T/actual"
	echo "# expected / actual (runtime-added names removed):"
	diff -u "$T/expected" "$T/actual" | sed 's/^/#   /' || true
	cmp "$T/expected" "$T/actual"
	# The caller's environment does not leak in.
	! tr '\0' '\n' <"$OUT" | grep -q '^CANARY=' || false
}

@test "[$BERTH_RUNTIME] hostile env values arrive unchanged" {
	local -A want=(
		[H_SPACES]='two  spaces and	a tab'
		[H_SQUOTE]="it's"
		[H_DQUOTE]='say "hi"'
		[H_DOLLAR]='$HOME'
		[H_SUBST]='$(id)'
		[H_BACKTICK]='`id`'
		[H_EQUALS]='a=b==c='
		[H_BACKSLASH]='ends with \'
		[H_NEWLINE]=$'line one\nline two\n'
		[H_EMPTY]=''
		[H_GLOB]='* ? [a]'
		[H_DASH]='-e -n'
	)
	local args=() name
	for name in "${!want[@]}"; do args+=(--env "$name=${want[$name]}"); done
	export H_PASSED=${want[H_SUBST]}' '${want[H_BACKSLASH]}
	brun "${args[@]}" --env-pass H_PASSED -- env -0
	unset H_PASSED
	[ "$status" -eq 0 ]
	want[H_PASSED]='$(id) ends with \'
	local -A got=()
	local kv
	while IFS= read -r -d '' kv; do got[${kv%%=*}]=${kv#*=}; done <"$OUT"
	local bad=0
	for name in "${!want[@]}"; do
		if [ -z "${got[$name]+set}" ]; then
			echo "# $name missing"
			bad=1
		elif [ "${got[$name]}" != "${want[$name]}" ]; then
			echo "# $name: want $(printf %q "${want[$name]}") got $(printf %q "${got[$name]}")"
			bad=1
		fi
	done
	[ "$bad" -eq 0 ]
	# Byte-exact through a shell too: the value as a file.
	brun --env "H_NEWLINE=${want[H_NEWLINE]}" -- sh -c 'printf %s "$H_NEWLINE"'
	[ "$status" -eq 0 ]
	printf %s "${want[H_NEWLINE]}" | cmp - "$OUT"
}

@test "[$BERTH_RUNTIME] --env-pass copies the caller's value" {
	export PASS_ME='from the caller: $x "y" z'
	brun --env-pass PASS_ME -- sh -c 'printf %s "$PASS_ME"'
	unset PASS_ME
	[ "$status" -eq 0 ]
	printf %s 'from the caller: $x "y" z' | cmp - "$OUT"
}

@test "[$BERTH_RUNTIME] --workdir sets the working directory" {
	brun --workdir /data -- pwd
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = /data ]
	brun --workdir /data -- cat hello.txt
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = "hello from the image" ]
}

@test "[$BERTH_RUNTIME] image WorkingDir is honoured by default" {
	brun -- pwd
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = /work ]
}

@test "[$BERTH_RUNTIME] working directory is / when the image sets none" {
	IMG=$IMAGE_NOWD brun -- pwd
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = / ]
}

@test "[$BERTH_RUNTIME] image Env is honoured" {
	brun -- sh -c 'printf %s "$IMG_VAR"'
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = from-image ]
}

@test "[$BERTH_RUNTIME] --env overrides an image value" {
	brun --env IMG_VAR=from-cli -- sh -c 'printf %s "$IMG_VAR"'
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = from-cli ]
}

@test "[$BERTH_RUNTIME] read-only bind refuses writes" {
	mkdir "$T/ro"
	echo original >"$T/ro/file"
	give "$T/ro"
	local before
	before=$(stat -c '%s %Y' "$T/ro/file")
	brun --bind "$T/ro:/mnt/ro:ro" -- sh -c \
		'cat /mnt/ro/file; echo changed > /mnt/ro/file; echo rc=$?; touch /mnt/ro/new; echo rc=$?'
	[ "$status" -eq 0 ]
	grep -qx original "$OUT"
	! grep -qx rc=0 "$OUT" || false
	grep -q 'Read-only file system' "$ERR"
	[ "$(cat "$T/ro/file")" = original ]
	[ "$(stat -c '%s %Y' "$T/ro/file")" = "$before" ]
	[ ! -e "$T/ro/new" ]
}

@test "[$BERTH_RUNTIME] read-write bind accepts writes (:rw and default)" {
	mkdir "$T/rw" "$T/rw2"
	echo original >"$T/rw/file"
	give "$T/rw" "$T/rw2"
	# /berth-rw is not in the image: berth makes the mount point.
	brun --bind "$T/rw:/berth-rw:rw" --bind "$T/rw2:/mnt/rw2" -- sh -c \
		'cat /berth-rw/file && echo changed > /berth-rw/file && echo new > /mnt/rw2/new'
	[ "$status" -eq 0 ]
	grep -qx original "$OUT"
	[ "$(cat "$T/rw/file")" = changed ]
	[ "$(cat "$T/rw2/new")" = new ]
}

# nested OUTER INPUT DEEP: a read-only input inside a read-write output,
# a read-write folder inside the input; none of them inside another on
# the host, so every mount point is missing.  Each order must give the same.
nested_binds() {
	rm -rf "$T/out" "$T/in" "$T/deep"
	mkdir "$T/out" "$T/in" "$T/deep"
	echo input >"$T/in/file"
	give "$T/out" "$T/in" "$T/deep"
	brun "$@" -- sh -c 'cat /mnt/out/in/file; echo r >/mnt/out/result;
		echo d >/mnt/out/in/deep/d; echo x >/mnt/out/in/x && echo LEAK; true'
	[ "$status" -eq 0 ]
	grep -qx input "$OUT"
	! grep -q LEAK "$OUT" || false
	grep -q 'Read-only file system' "$ERR"
	[ "$(cat "$T/out/result")" = r ]
	[ "$(cat "$T/deep/d")" = d ]
	[ ! -e "$T/out/in/x" ] && [ ! -e "$T/in/x" ]
	# the points are made in the outer folders, as Docker and Apptainer
	# make them, and are the caller's
	[ "$(stat -c %u "$T/out/in")" = "$CALLER_UID" ]
	[ "$(stat -c %u "$T/in/deep")" = "$CALLER_UID" ]
}

@test "[$BERTH_RUNTIME] nested binds in any order, each with its own ro/rw" {
	local o=$T/out:/mnt/out i=$T/in:/mnt/out/in:ro d=$T/deep:/mnt/out/in/deep
	nested_binds --bind "$o" --bind "$i" --bind "$d"
	nested_binds --bind "$d" --bind "$i" --bind "$o"
	nested_binds --bind "$i" --bind "$o" --bind "$d"
}

@test "[$BERTH_RUNTIME] a working folder the image lacks is made, outside the cached image" {
	brun --workdir /berth-wd/sub -- pwd
	# A setuid SingularityCE cannot run a SIF in berth's namespace, where
	# the folder is made: refused by name, as berth documents (README).
	if [ "$status" -ne 0 ] && grep -q "a working folder the image lacks with SingularityCE .*: this setuid installation needs the sandbox image format" "$ERR"; then
		skip "refused by name: setuid SingularityCE with SIF images (README)"
	fi
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = /berth-wd/sub ]
	brun -- sh -c 'test -e /berth-wd && echo LEFT; true'
	[ "$status" -eq 0 ]
	! grep -q LEFT "$OUT" || false
	[ -z "$(find "$CACHE" -name berth-wd 2>/dev/null)" ]
	# inside a bind: in the bound folder, as Docker makes it
	mkdir "$T/o"
	give "$T/o"
	brun --bind "$T/o:/mnt/o" --workdir /mnt/o/w -- pwd
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = /mnt/o/w ]
	[ -d "$T/o/w" ]
}

@test "[$BERTH_RUNTIME] a FUSE mount can be bound in" {
	command -v bindfs >/dev/null || {
		echo "# bindfs is not installed"
		return 1
	}
	[ -r /dev/fuse ] && [ -w /dev/fuse ] || {
		echo "# /dev/fuse is not usable by $(id -un)"
		return 1
	}
	mkdir "$T/fsrc" "$T/fmnt"
	echo "through fuse" >"$T/fsrc/file"
	give "$T/fsrc" "$T/fmnt"
	# allow_other lets a runtime whose mounts are made by root (docker) read
	# it; it needs user_allow_other in /etc/fuse.conf (run.sh adds it).
	local opts=()
	grep -qs '^[[:space:]]*user_allow_other' /etc/fuse.conf && opts=(-o allow_other)
	bindfs "${opts[@]}" "$T/fsrc" "$T/fmnt"
	FUSE_MNT=$T/fmnt
	mountpoint -q "$T/fmnt"
	grep -q " $T/fmnt fuse" /proc/self/mounts
	brun --bind "$T/fmnt:/fuse:ro" -- cat /fuse/file
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = "through fuse" ]
	fusermount -u "$T/fmnt"
	! mountpoint -q "$T/fmnt" || false
}

@test "[$BERTH_RUNTIME] files written in a rw bind are the caller's and deletable" {
	mkdir "$T/own"
	give "$T/own"
	brun --bind "$T/own:/out" -- sh -c \
		'echo a > /out/file && mkdir /out/sub && echo b > /out/sub/file2'
	[ "$status" -eq 0 ]
	local me f
	me="$CALLER_UID:$CALLER_GID"
	for f in "$T/own/file" "$T/own/sub" "$T/own/sub/file2"; do
		echo "# $f: $(stat -c '%u:%g %A' "$f")"
		[ "$(stat -c %u:%g "$f")" = "$me" ]
	done
	as_caller rm "$T/own/sub/file2"
	as_caller rmdir "$T/own/sub"
	as_caller rm "$T/own/file"
	[ -z "$(ls -A "$T/own")" ]
}

@test "[$BERTH_RUNTIME] SIGTERM to berth run ends the container within 2 s" {
	local n=$((100000 + RANDOM * 8 + $$ % 8))
	# fd 3 closed: bats waits for every holder of it.
	"$BERTH" run --runtime "$BERTH_RUNTIME" --image "$IMAGE" \
		--cache-dir "$CACHE" $AS_USER_OPT -- sh -c "echo started; exec sleep $n" \
		>"$OUT" 2>"$ERR" </dev/null 3>&- &
	KILL_PID=$!
	local berth_pid=$KILL_PID i
	for ((i = 0; i < 1200; i++)); do
		grep -q started "$OUT" && pgrep -u "$CALLER_UID" -x -f "sleep $n" >/dev/null && break
		alive "$berth_pid" || break
		sleep 0.1
	done
	show
	grep -q started "$OUT"
	echo "# container process: $(pgrep -u "$CALLER_UID" -a -x -f "sleep $n")"
	pgrep -u "$CALLER_UID" -x -f "sleep $n" >/dev/null
	kill -TERM "$berth_pid"
	local gone=0
	for ((i = 0; i < 20; i++)); do
		sleep 0.1
		if ! alive "$berth_pid" && ! pgrep -u "$CALLER_UID" -x -f "sleep $n" >/dev/null; then
			gone=1
			break
		fi
	done
	local rc=0
	alive "$berth_pid" && echo "# berth run still running after 2 s"
	pgrep -u "$CALLER_UID" -a -f "sleep $n" | sed 's/^/# left over: /' || true
	kill -KILL "$KILL_PID" 2>/dev/null || true
	wait "$KILL_PID" || rc=$?
	local p
	for p in $(pgrep -u "$CALLER_UID" -x -f "sleep $n"); do kill -KILL "$p" || true; done
	KILL_PID=
	echo "# berth run exit status after SIGTERM: $rc"
	[ "$gone" -eq 1 ]
}

@test "[$BERTH_RUNTIME] uid and gid inside equal the caller's" {
	brun -- sh -c 'id -u; id -g'
	[ "$status" -eq 0 ]
	printf '%s\n%s\n' "$CALLER_UID" "$CALLER_GID" | cmp - "$OUT"
}

@test "[$BERTH_RUNTIME] the image's /etc/only-in-image is readable" {
	[ ! -e /etc/only-in-image ]
	brun -- cat /etc/only-in-image
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = only-in-image ]
}

@test "[$BERTH_RUNTIME] a command only in the image runs" {
	! command -v image-only-command >/dev/null || false
	brun -- image-only-command
	[ "$status" -eq 0 ]
	[ "$(cat "$OUT")" = "image-only-command ran" ]
}

# ---- what each runtime isolates ------------------------------------------
# One case per row of the README's table "What each runtime isolates", by
# default and with --unshare=net,ipc,uts (--container-unshare).  OWN_<rt>
# lists the rows the runtime makes the container's own by default; the
# rest are the node's.  Home: never bound unless asked (--mount-home).
OWN_charliecloud=""
OWN_singularity="pid tmp ipc dev"
OWN_docker="pid tmp ipc uts dev"

# the rows --unshare=net,ipc,uts adds, on every runtime
UNSHARED="net ipc uts"

# expect ROW [unshare]: "own" or "host" for this runtime
expect() {
	local var=OWN_$BERTH_RUNTIME
	local own=" ${!var} "
	[ -z "${2:-}" ] || own="$own $UNSHARED "
	[[ $own == *" $1 "* ]] && echo own || echo host
}

# probe [unshare]: what the container sees, as NAME=VALUE lines in $PROBE,
# made once per runtime pass (per kind) and kept in $W.
probe() {
	local kind=${1:-default} opts=()
	[ "$kind" = default ] || opts=(--unshare=net,ipc,uts)
	PROBE=$W/probe-$kind
	[ -s "$PROBE" ] && return 0
	# the node's side: a file in its /tmp and in the caller's home, and a
	# device node no container's minimal /dev has
	local home dev
	home=$(getent passwd "$CALLER_UID" | cut -d: -f6)
	as_caller touch "/tmp/berth-isolation.$$" "$home/.berth-isolation.$$"
	for dev in /dev/kmsg /dev/loop-control /dev/cpu_dma_latency /dev/fuse /dev/tty0 ""; do
		[ -z "$dev" ] || [ -e "$dev" ] && break
	done
	brun "${opts[@]}" -- sh -c '
		for n in pid net ipc uts; do echo "ns_$n=$(readlink /proc/self/ns/$n)"; done
		echo "hostname=$(cat /proc/sys/kernel/hostname)"
		echo "ifaces=$(sed -n "s/^ *\([^:|]*\):.*/\1/p" /proc/net/dev | sort | tr "\n" " ")"
		echo "sysnet=$(ls /sys/class/net | sort | tr "\n" " ")"
		if test -e "$1"; then echo tmp=host; else echo tmp=own; fi
		if test -e "$2"; then echo home=bound; else echo home=absent; fi
		if test -z "$3"; then echo dev=unknown; elif test -e "$3"; then echo dev=host; else echo dev=own; fi
	' sh "/tmp/berth-isolation.$$" "$home/.berth-isolation.$$" "$dev"
	rm -f "/tmp/berth-isolation.$$" "$home/.berth-isolation.$$"
	[ "$status" -eq 0 ]
	cp "$OUT" "$PROBE"
}

# seen KEY: its value in $PROBE
seen() {
	sed -n "s/^$1=//p" "$PROBE"
}

# ns_is NS own|host: the container's namespace NS against this process's
ns_is() {
	local inside host
	inside=$(seen "ns_$1")
	host=$(readlink "/proc/self/ns/$1")
	echo "# $1: inside $inside, here $host, expected $2"
	[ -n "$inside" ]
	if [ "$2" = own ]; then [ "$inside" != "$host" ]; else [ "$inside" = "$host" ]; fi
}

@test "[$BERTH_RUNTIME] isolation, PIDs: as the README's table says" {
	probe
	ns_is pid "$(expect pid)"
	probe unshare
	ns_is pid "$(expect pid)" # --unshare adds no PID namespace
}

@test "[$BERTH_RUNTIME] isolation, /tmp: as the README's table says" {
	probe
	echo "# /tmp: $(seen tmp), expected $(expect tmp)"
	[ "$(seen tmp)" = "$(expect tmp)" ]
}

@test "[$BERTH_RUNTIME] isolation, hostname: the node's, in a UTS namespace of its own with --unshare=uts" {
	probe
	ns_is uts "$(expect uts)"
	[ "$(seen hostname)" = "$(cat /proc/sys/kernel/hostname)" ]
	probe unshare
	ns_is uts own
	[ "$(seen hostname)" = "$(cat /proc/sys/kernel/hostname)" ]
}

@test "[$BERTH_RUNTIME] isolation, IPC: as the README's table says; its own with --unshare=ipc" {
	probe
	ns_is ipc "$(expect ipc)"
	probe unshare
	ns_is ipc own
}

@test "[$BERTH_RUNTIME] isolation, network: the node's; loopback alone with --unshare=net" {
	probe
	ns_is net host
	echo "# interfaces: $(seen ifaces)"
	[ "$(seen ifaces)" = "$(sed -n 's/^ *\([^:|]*\):.*/\1/p' /proc/net/dev | sort | tr '\n' ' ')" ]
	probe unshare
	ns_is net own
	[ "$(seen ifaces)" = "lo " ]
	# Apptainer without a setuid starter binds the node's /sys (it mounts
	# no sysfs of the new network's): the names of the node's interfaces
	# stay listed there, none of them usable (README, the table's note)
	if [ "$BERTH_RUNTIME" = singularity ] &&
		"${BERTH_SINGULARITY:-${BERTH_TEST_SINGULARITY:-false}}" --version 2>/dev/null | grep -q '^apptainer'; then
		echo "# /sys/class/net (Apptainer: the node's sysfs): $(seen sysnet)"
		return 0
	fi
	[ "$(seen sysnet)" = "lo " ]
}

# A listener on a port the node already uses, and a client through the
# container's loopback (up): the port is free only in a network of its own.
@test "[$BERTH_RUNTIME] isolation, network: with --unshare=net (and --network-none) a port the node uses is free inside" {
	# (no descriptor of bats' kept open: it would wait for the process; a
	# client that reaches it is let go at once)
	python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
open(sys.argv[1] + ".new", "w").write("%d\n" % s.getsockname()[1])
__import__("os").rename(sys.argv[1] + ".new", sys.argv[1])
while True: s.accept()[0].close()' \
		"$T/port" </dev/null >/dev/null 2>&1 3>&- &
	HOST_LISTENER=$!
	local i port=""
	for ((i = 0; i < 100; i++)); do
		port=$(cat "$T/port" 2>/dev/null) && break
		sleep 0.05
	done
	[ -n "$port" ]
	local listen='(busybox nc -l -p "$1" && echo listened) &
		for i in $(seq 100); do echo hello | busybox nc 127.0.0.1 "$1" && break; sleep 0.05; done
		wait'
	brun -- sh -c "$listen" sh "$port"
	! grep -qx listened "$OUT" || false # the node's network: taken
	brun --unshare=net -- sh -c "$listen" sh "$port"
	[ "$status" -eq 0 ]
	grep -qx listened "$OUT" # bound, and a client came through the loopback
	# the alias is berth run's own parsing: one runtime is enough
	[ "$BERTH_RUNTIME" = charliecloud ] || return 0
	brun --network-none -- sh -c "$listen" sh "$port"
	[ "$status" -eq 0 ]
	grep -qx listened "$OUT"
}

@test "[$BERTH_RUNTIME] isolation, the user's home: not there unless asked for" {
	probe
	[ "$(seen home)" = absent ]
	probe unshare
	[ "$(seen home)" = absent ]
}

@test "[$BERTH_RUNTIME] isolation, devices: as the README's table says" {
	probe
	[ "$(seen dev)" != unknown ] || skip "no device node here that containers leave out"
	echo "# devices: $(seen dev), expected $(expect dev)"
	[ "$(seen dev)" = "$(expect dev)" ]
}

@test "[$BERTH_RUNTIME] --unshare refuses a namespace berth does not unshare, and a typo" {
	local bad
	for bad in pid net,pid nett net, ""; do
		brun --unshare="$bad" -- true
		[ "$status" -eq 125 ]
		grep -q "give a comma-separated list of net, ipc and uts" "$ERR"
	done
}

# Keep this last: bats runs the cases in file order.
@test "[$BERTH_RUNTIME] no temporary folders left in the cache" {
	local dir
	dir=$CACHE/$(id -u)
	[ -d "$dir" ] || {
		echo "# no per-user cache at $dir: $(ls -A "$CACHE" 2>&1)"
		return 1
	}
	echo "# $dir: $(ls -A "$dir")"
	if [ -d "$dir/tmp" ]; then
		find "$dir/tmp" -mindepth 1 -maxdepth 2 | sed 's/^/# left: /'
		[ -z "$(find "$dir/tmp" -mindepth 1 -maxdepth 1)" ]
	fi
	# and no container process of ours survives the suite
	! pgrep -u "$CALLER_UID" -a -x -f 'sleep [0-9]{6}' || false
}
