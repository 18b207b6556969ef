#!/bin/bash
# Build the .deb (tests/packaging/build-deb.sh), install it, check what it
# installed, run a real container job on the test cluster with the
# INSTALLED plugin and command, then put everything back: the cluster runs
# <repo>/build again and the package is removed and purged (its two
# conffiles included), so the machine is left as it was.
#
# Root.  Needs the test cluster (tests/harness/cluster/start.sh).  Prints ok/not ok
# per check; exits non-zero when any check fails.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLUSTER=${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}
fail=0
ok() { echo "ok - $*"; }
# shellcheck disable=SC2317 # called through check
quiet() { "$@" >/dev/null 2>&1; }
nok() { echo "not ok - $*"; fail=1; }
check() { # description, command...
	local what=$1
	shift
	if "$@"; then ok "$what"; else nok "$what"; fi
}

[ "$(id -u)" -eq 0 ] || { echo "not ok - run as root"; exit 1; }
if dpkg-query -W -f='${Status}' berth 2>/dev/null | grep -q 'installed'; then
	echo "not ok - berth is already installed; not touching it"
	exit 1
fi
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
PLUGIN=/usr/lib/$MA/slurm-wlm/spank_berth.so
WORK=$(mktemp -d /tmp/berth-debinst.XXXXXX)
chmod 0755 "$WORK" # the job user reads the image from here

INSTALLED=0 SWITCHED=0
restore() {
	trap - EXIT INT TERM
	if [ "$SWITCHED" = 1 ]; then
		if BERTH_BUILD="$ROOT/build" bash "$ROOT/tests/harness/cluster/start.sh" >"$WORK/restore.log" 2>&1 &&
			cmp -s "$ROOT/build/spank_berth.so" "$CLUSTER/bin/spank_berth.so" &&
			cmp -s "$ROOT/build/berth" "$CLUSTER/bin/berth"; then
			ok "cluster restored to $ROOT/build"
		else
			nok "cluster restored to $ROOT/build"
			tail -20 "$WORK/restore.log" | sed 's/^/#   /'
		fi
	fi
	if [ "$INSTALLED" = 1 ]; then
		check "dpkg -r berth" quiet dpkg -r berth
		check "dpkg --purge berth (conffiles gone)" quiet dpkg --purge berth
		check "no berth files left" test ! -e "$PLUGIN" -a ! -e /usr/bin/berth \
			-a ! -e /etc/slurm/berth.conf -a ! -e /etc/slurm/plugstack.conf.d/berth.conf
	fi
	rm -rf "$WORK"
	exit $fail
}
trap restore EXIT INT TERM

# ---- build
bash "$ROOT/tests/packaging/build-deb.sh" "$WORK/deb" >"$WORK/build.out"
build_rc=$?
grep -E '^(not )?ok ' "$WORK/build.out"
DEB=$(tail -1 "$WORK/build.out")
[ $build_rc -eq 0 ] || fail=1
if [ ! -f "$DEB" ]; then
	nok "built a .deb"
	exit 1
fi

# ---- install
if dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1; then
	INSTALLED=1
	ok "dpkg -i $(basename "$DEB")"
else
	nok "dpkg -i $(basename "$DEB")"
	sed 's/^/#   /' "$WORK/dpkg.log"
	dpkg-query -W berth >/dev/null 2>&1 && INSTALLED=1
	exit 1
fi
dpkg -L berth >"$WORK/files"
for f in "$PLUGIN" /usr/bin/berth \
	/usr/share/man/man1/berth.1.gz /usr/share/man/man5/berth.conf.5.gz \
	/usr/share/man/man8/spank_berth.8.gz \
	/etc/slurm/berth.conf /etc/slurm/plugstack.conf.d/berth.conf; do
	check "dpkg -L berth lists $f" grep -qxF "$f" "$WORK/files"
	check "$f is installed" test -f "$f"
done
conffiles=$(dpkg-query -W -f='${Conffiles}' berth)
for f in /etc/slurm/berth.conf /etc/slurm/plugstack.conf.d/berth.conf; do
	check "$f is a conffile" grep -q " $f " <<<"$conffiles"
done
check "/usr/bin/berth version prints 'berth 0.1.0'" \
	test "$(/usr/bin/berth version)" = "berth 0.1.0"
check "berth config reads the installed (all-default) berth.conf" \
	grep -qx 'DefaultRuntime=charliecloud' <(/usr/bin/berth config)
PS=/etc/slurm/plugstack.conf.d/berth.conf
check "$PS has the plugin line, commented" grep -qx "#required $PLUGIN" "$PS"
check "$PS enables nothing" bash -c "! grep -Evq '^[[:space:]]*(#|\$)' '$PS'"
for page in 1:berth 5:berth.conf 8:spank_berth; do
	check "man ${page%%:*} ${page#*:} resolves to the installed page" \
		grep -q "^/usr/share/man/man${page%%:*}/${page#*:}\.${page%%:*}\.gz$" \
		<(man -w "${page%%:*}" "${page#*:}" 2>/dev/null)
done

# ---- a real job with the installed binaries
mkdir -p "$WORK/bin"
ln -s "$PLUGIN" "$WORK/bin/spank_berth.so"
ln -s /usr/bin/berth "$WORK/bin/berth"
SWITCHED=1
if BERTH_BUILD="$WORK/bin" bash "$ROOT/tests/harness/cluster/start.sh" >"$WORK/start.log" 2>&1; then
	ok "cluster started with the installed binaries"
else
	nok "cluster started with the installed binaries"
	tail -20 "$WORK/start.log" | sed 's/^/#   /'
fi
check "the cluster's plugin is the installed one" cmp -s "$PLUGIN" "$CLUSTER/bin/spank_berth.so"
check "the cluster's berth is the installed one" cmp -s /usr/bin/berth "$CLUSTER/bin/berth"
python3 "$ROOT/tests/harness/fixtures/mkimage.py" legacy "$WORK/image.tar" >/dev/null &&
	chmod 0644 "$WORK/image.tar"
got=$(timeout 120 bash "$ROOT/tests/harness/cluster/submit.sh" \
	srun --container-image="$WORK/image.tar" cat /etc/only-in-image 2>"$WORK/job.err")
if [ "$got" = only-in-image ]; then
	ok "srun --container-image with the installed plugin prints only-in-image"
else
	nok "srun --container-image with the installed plugin prints only-in-image (got '$got')"
	sed 's/^/#   /' "$WORK/job.err"
fi
restore
