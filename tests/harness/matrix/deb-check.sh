#!/bin/bash
# In a matrix chroot: `make deb`'s build, its pin on this release's Slurm,
# and an install + purge with this release's dpkg (dependencies satisfied,
# the plugin where this Slurm looks for it, the command runs).
#   deb-check.sh OUTDIR
set -euo pipefail
out=${1:?usage: deb-check.sh OUTDIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
slurm=$(dpkg-query -W -f='${Version}' libslurm-dev)
rm -rf "$out"
deb=$(BERTH_DEB_LINTIAN=0 bash "$repo/tests/packaging/build-deb.sh" "$out" | tail -n1)
[ -f "$deb" ] || { echo "deb-check: no package built (log: $out/build.log)"; exit 1; }
depends=$(dpkg-deb -f "$deb" Depends)
echo "deb-check: $(basename "$deb"): Depends: $depends"
case $depends in
*"slurm-wlm-basic-plugins (= $slurm)"*) ;;
*) echo "deb-check: the package does not pin this release's Slurm $slurm"; exit 1 ;;
esac
dpkg -i "$deb" >"$out/install.log" 2>&1 || { cat "$out/install.log"; dpkg -P berth >/dev/null 2>&1; exit 1; }
trap 'dpkg -P berth >/dev/null 2>&1 || true' EXIT
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
test -f "/usr/lib/$ma/slurm-wlm/spank_berth.so" || { echo "deb-check: plugin not installed"; exit 1; }
/usr/bin/berth version
echo "deb-check: installs and runs with Slurm $slurm"
