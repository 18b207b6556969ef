#!/usr/bin/env bash
# Executor conformance: run tests/conformance/conformance.bats once per
# available runtime, as the unprivileged test user, and print the TAP of all
# runs on stdout (tests/run-all.sh counts its "ok" / "not ok" lines).  Exits
# non-zero on any failure.
#
#   charliecloud  always
#   singularity   always: the real binary named by BERTH_TEST_SINGULARITY,
#                 else the strict stand-in tests/harness/fakes/singularity
#   docker        when dockerd answers on /var/run/docker.sock and berth
#                 supports it; otherwise a visible "ok N # skip" line
#
# Started as root (make test): the suite runs as BERTH_TEST_USER (default
# berthtest, created if missing) through setpriv, with a clean environment,
# in a work folder under /var/tmp that the user owns and that is removed
# afterwards.  Started as another user, it runs the suite as that user.
# Charliecloud runs twice: with BERTH_IMAGE_STORAGE (default auto), then
# with ImageStorage=tree; BERTH_CONFORMANCE_STORAGES="auto" runs only those.
# BERTH_RUNTIMES="charliecloud singularity" limits the runtimes; BATS_FILTER=REGEX
# runs only the tests whose names match (bats -f).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "${BUILD:-$repo/build}" 2>/dev/null && pwd) || build=${BUILD:-$repo/build}
berth=$build/berth
suite=$here/conformance.bats
user=${BERTH_TEST_USER:-berthtest}
runtimes=${BERTH_RUNTIMES:-charliecloud singularity docker}
sing=${BERTH_TEST_SINGULARITY:-$repo/tests/harness/fakes/singularity}
upath=/usr/local/bin:/usr/bin:/bin

if [ "$(id -u)" -eq 0 ]; then
	id "$user" >/dev/null 2>&1 || useradd -m "$user" >&2
	# FUSE as the user: the device must be open to it, and allow_other
	# (for runtimes whose mounts root makes) needs user_allow_other.
	if [ -c /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
		chmod 0666 /dev/fuse
	fi
	if ! grep -qs '^[[:space:]]*user_allow_other' /etc/fuse.conf; then
		echo user_allow_other >>/etc/fuse.conf
	fi
	uhome=$(getent passwd "$user" | cut -d: -f6)
	as_user() {
		setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups \
			env -i HOME="$uhome" USER="$user" LOGNAME="$user" PATH="$upath" "$@"
	}
else
	user=$(id -un)
	uhome=$HOME
	as_user() { env -i HOME="$uhome" USER="$user" LOGNAME="$user" PATH="$upath" "$@"; }
fi

work=$(mktemp -d /var/tmp/berth-conformance.XXXXXX)
chown "$user:" "$work"
chmod 0700 "$work"
cd "$work" || exit 1
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	cd / || true
	# FUSE mounts a failed test may have left, deepest first
	local m
	awk -v w="$work" 'index($2, w "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r m; do
			fusermount -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
	chmod -R u+rwX "$work" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=0

# run_suite RUNTIME [VAR=VALUE...]: one bats run as the user; TAP to stdout.
# Docker runs as root acting for the user (berth run --user), the way the
# plugin's root side does: the job user never touches the Docker socket.
run_suite() {
	local rt=$1 rc
	shift
	if [ "$rt" = docker ] && [ "$(id -u)" -eq 0 ]; then
		env -i PATH="$upath" HOME=/root BERTH_RUNTIME="$rt" BERTH="$berth" \
			BERTH_CONFORMANCE_DIR="$work" BERTH_TEST_USER="$user" "$@" \
			bats --tap ${BATS_FILTER:+-f "$BATS_FILTER"} "$suite" </dev/null
	else
		as_user BERTH_RUNTIME="$rt" BERTH="$berth" BERTH_CONFORMANCE_DIR="$work" \
			BERTH_IMAGE_STORAGE="${BERTH_IMAGE_STORAGE:-auto}" "$@" bats --tap ${BATS_FILTER:+-f "$BATS_FILTER"} "$suite" </dev/null
	fi
	rc=$?
	if [ "$rc" -ne 0 ]; then
		failed=1
		# a bats that died without saying "not ok" still counts as a failure
		echo "# [$rt] bats exited $rc"
	fi
	return 0
}

# skip_runtime RUNTIME REASON: a TAP block that shows the skip.
skip_runtime() {
	echo "1..1"
	echo "ok 1 # skip $1: $2"
}

# fail_runtime RUNTIME REASON
fail_runtime() {
	echo "1..1"
	echo "not ok 1 [$1] $2"
	failed=1
}

if [ ! -x "$berth" ]; then
	echo "1..1"
	echo "not ok 1 conformance: no berth command at $berth (make first)"
	exit 1
fi

for rt in $runtimes; do
	case $rt in
	charliecloud)
		chrun=$(command -v ch-run)
		if [ -z "$chrun" ]; then
			fail_runtime "$rt" "ch-run not found"
			continue
		fi
		echo "# [$rt] ch-run: $chrun, version $(as_user "$chrun" --version 2>&1 | head -1)"
		# The default (auto: one SquashFS file per image where squashfuse
		# works here), then the tree that auto falls back to, unless
		# BERTH_CONFORMANCE_STORAGES says otherwise (the version matrix's
		# rows run the default only).
		storages=${BERTH_IMAGE_STORAGE:-auto}
		[ "$storages" = tree ] || storages="$storages tree"
		for storage in ${BERTH_CONFORMANCE_STORAGES:-$storages}; do
			echo "# [$rt] ImageStorage=$storage"
			BERTH_IMAGE_STORAGE=$storage run_suite "$rt"
		done
		;;
	singularity)
		if [ ! -x "$sing" ]; then
			fail_runtime "$rt" "no singularity binary at $sing"
			continue
		fi
		if [ -n "${BERTH_TEST_SINGULARITY:-}" ]; then kind="real binary"; else kind="stand-in"; fi
		echo "# [$rt] singularity ($kind): $sing, version: $(as_user "$sing" --version 2>&1 | head -1)"
		# Both image formats berth makes: the one auto picks for this
		# installation, then the other one.
		printf 'SingularityPath=%s\nAllowedRuntimes=charliecloud,singularity\n' "$sing" >"$work/auto.conf"
		auto=$(BERTH_CONFIG=$work/auto.conf "$berth" config 2>/dev/null |
			sed -n 's/^# singularity images here: \([a-z]*\).*/\1/p')
		[ -n "$auto" ] || auto=sandbox
		other=sif
		[ "$auto" = sif ] && other=sandbox
		echo "# [$rt] image formats: auto ($auto), then $other"
		run_suite "$rt" BERTH_SINGULARITY="$sing"
		run_suite "$rt" BERTH_SINGULARITY="$sing" BERTH_SING_FORMAT="$other"
		;;
	docker)
		ping=$(curl -s -m 5 --unix-socket /var/run/docker.sock http://x/_ping 2>/dev/null)
		if [ "$ping" != OK ]; then
			skip_runtime "$rt" "dockerd not running"
			continue
		fi
		ver=$(curl -s -m 5 --unix-socket /var/run/docker.sock http://x/version |
			python3 -c 'import json,sys; print(json.load(sys.stdin).get("Version","?"))' 2>/dev/null)
		echo "# [$rt] dockerd ${ver:-?} on /var/run/docker.sock; berth run as root --user $user"
		run_suite "$rt"
		;;
	*)
		fail_runtime "$rt" "unknown runtime"
		;;
	esac
done

exit "$failed"
