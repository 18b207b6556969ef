#!/bin/bash
# Install the Debian 12 packages berth needs to build and test, and only the
# ones that are missing: dpkg-query decides, so a second run is fast and needs
# no network.
set -euo pipefail

# The last line: what tests/harness/cluster/singularity-ce.sh needs to build
# SingularityCE 3.4.2 from ../shared/runtimes/ (with libssl-dev,
# squashfs-tools, pkg-config and build-essential above).
PACKAGES=(
    build-essential pkg-config clang clang-tidy cppcheck valgrind
    libslurm-dev slurm-wlm-basic-plugins-dev slurm-wlm slurmd slurmctld munge
    libarchive-dev libjson-c-dev libyaml-dev libcurl4-openssl-dev libcmocka-dev libssl-dev
    docker.io charliecloud-runtime squashfs-tools busybox-static bindfs fuse3
    squashfuse python3 curl procps psmisc iproute2 time bats jq
    debhelper dpkg-dev devscripts lintian fakeroot rpm groff man-db
    debootstrap libsquashfs-dev squashfs-tools-ng siftool xxhash
    docker-registry skopeo apache2-utils openssl iptables
    mpich libmpich-dev
    golang-go libseccomp-dev uuid-dev cryptsetup-bin
)

missing=()
for p in "${PACKAGES[@]}"; do
    # db:Status-Status is "installed" only for a fully installed package;
    # dpkg-query fails outright for one it has never heard of.
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "packages.sh: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "packages.sh: missing: ${missing[*]}; run as root to install" >&2
    exit 1
fi

echo "packages.sh: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# Services must not be started by the postinst scripts (a clean container has
# no init anyway); tests/harness/cluster/start.sh starts what it needs itself.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y --no-install-recommends "${missing[@]}"
