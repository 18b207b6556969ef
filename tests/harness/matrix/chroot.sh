#!/bin/bash
# Build (or reuse) a Debian chroot for the version matrix and print its path.
#
#   tests/harness/matrix/chroot.sh SUITE        SUITE: trixie | sid
#
# The chroot is made with debootstrap from the Debian archive this machine's
# apt uses, then the packages berth needs to build and test are installed
# with that release's own apt.  It is cached under BERTH_MATRIX_CACHE
# (/var/cache/berth-matrix) in a folder named after the suite and a hash of
# everything that decides its content (suite, package list, this script), so
# a second run costs a stat.  It is built in a temporary folder and renamed
# into place when complete: an interrupted build leaves nothing that a later
# run takes for a chroot.  One flock per suite: concurrent runs build once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=${1:?usage: chroot.sh trixie|sid}
cache=${BERTH_MATRIX_CACHE:-/var/cache/berth-matrix}
log() { echo "chroot.sh[$suite]: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"

# What every release needs to build berth against its own Slurm and to run
# the unit, conformance and end-to-end suites.
common=(
	build-essential pkg-config valgrind
	libslurm-dev slurmd slurmctld slurm-client munge
	libarchive-dev libjson-c-dev libcurl4-openssl-dev libcmocka-dev libssl-dev libyaml-dev
	charliecloud-runtime squashfs-tools squashfuse busybox-static bindfs fuse3
	libsquashfs-dev squashfs-tools-ng siftool xxhash
	docker-registry skopeo apache2-utils openssl
	python3 curl procps psmisc iproute2 util-linux passwd time bats jq
	debhelper dpkg-dev fakeroot ca-certificates
)
case $suite in
trixie) extra=(slurm-wlm-basic-plugins-dev) ;; # Apptainer: sid's .deb, below
sid) extra=(slurm-wlm-basic-plugins-dev apptainer) ;;
*) die "unknown suite '$suite' (trixie or sid)" ;;
esac
packages=("${common[@]}" "${extra[@]}")

mirror=${BERTH_MATRIX_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
	[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

key=$(printf '%s\n' "$suite" "${packages[@]}" | cat - "$0" | sha256sum | cut -c1-12)
root=$cache/$suite-$key
if [ -x "$root/usr/sbin/slurmd" ] && [ -f "$root/.berth-matrix-complete" ]; then
	echo "$root"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/$suite.lock"
flock 9
if [ -f "$root/.berth-matrix-complete" ]; then # built while we waited
	echo "$root"
	exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"

# Earlier, interrupted builds of this suite: ours to remove (we hold the lock).
for old in "$cache/.$suite".*; do
	[ -e "$old" ] || continue
	log "removing an interrupted build: $old"
	umount -R "$old" 2>/dev/null || true
	rm -rf --one-file-system "$old"
done
tmp=$(mktemp -d "$cache/.$suite.XXXXXX")
chmod 0755 "$tmp" # the root of a system: users traverse it
cleanup() {
	umount -R "$tmp/proc" "$tmp/dev" 2>/dev/null || true
	rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

t0=$SECONDS
log "debootstrap $suite from $mirror into $tmp"
debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$cache/$suite.debootstrap.log" 2>&1 ||
	{ tail -n 30 "$cache/$suite.debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# apt inside: the archive's Release files may be past Valid-Until; no
# recommends; no service starts from maintainer scripts.
printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\nAPT::Install-Recommends "false";\n' \
	>"$tmp/etc/apt/apt.conf.d/90berth-matrix"
printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
chmod 0755 "$tmp/usr/sbin/policy-rc.d"
echo "deb $mirror $suite main" >"$tmp/etc/apt/sources.list"
mount -t proc proc "$tmp/proc"
mount --bind /dev "$tmp/dev"
in_root() { chroot "$tmp" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
in_root apt-get update -q >/dev/null
log "installing ${#packages[@]} packages"
in_root apt-get install -y -q "${packages[@]}" >"$cache/$suite.apt.log" 2>&1 ||
	{ tail -n 30 "$cache/$suite.apt.log" >&2; die "apt-get install failed (log above)"; }

if [ "$suite" = trixie ]; then
	# Trixie has no Apptainer: sid's .deb, with trixie's own libraries.
	log "installing Apptainer from sid's .deb"
	echo "deb $mirror sid main" >"$tmp/etc/apt/sources.list.d/sid-download.list"
	in_root apt-get update -q >/dev/null
	in_root sh -c 'cd /tmp && apt-get download apptainer' >>"$cache/$suite.apt.log" 2>&1
	rm -f "$tmp/etc/apt/sources.list.d/sid-download.list"
	in_root apt-get update -q >/dev/null
	in_root sh -c 'apt-get install -y -q /tmp/apptainer_*.deb && rm -f /tmp/apptainer_*.deb' \
		>>"$cache/$suite.apt.log" 2>&1 ||
		{ tail -n 30 "$cache/$suite.apt.log" >&2; die "installing sid's apptainer failed"; }
fi

# Apptainer as root here lacks CAP_SYS_RESOURCE unless told to take the
# capabilities from the file (see NOTES: "Newer Slurm and real Apptainer").
conf="$tmp/etc/apptainer/apptainer.conf"
if [ -f "$conf" ]; then
	sed -i 's/^root default capabilities = .*/root default capabilities = file/' "$conf"
fi
in_root apt-get clean
umount "$tmp/proc" "$tmp/dev"
mkdir -p "$tmp/.oldroot"
{
	echo "suite=$suite"
	echo "built=$(date -u +%FT%TZ)"
	echo "slurm=$(in_root dpkg-query -W -f='${Version}' slurmd)"
	echo "apptainer=$(in_root dpkg-query -W -f='${Version}' apptainer 2>/dev/null || echo none)"
	echo "charliecloud=$(in_root dpkg-query -W -f='${Version}' charliecloud-runtime)"
} >"$tmp/.berth-matrix-complete"
mv -T "$tmp" "$root"
trap - EXIT
log "built in $((SECONDS - t0))s: $root"
# Older builds of this suite (another key) are of no use any more, unless
# a process still runs in one (a cluster, a shell): those stay.
in_use() { # enter.sh makes ROOT the "/" of a mount namespace
	grep -qs " $1 / " /proc/[0-9]*/mountinfo
}
for old in "$cache/$suite"-*; do
	[ "$old" = "$root" ] || [ ! -d "$old" ] || in_use "$old" || rm -rf --one-file-system "$old"
done
echo "$root"
