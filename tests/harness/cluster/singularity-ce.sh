#!/bin/bash
# A real, setuid SingularityCE 3.4.2 for the version matrix (issue 24): built
# from the unmodified source in ../shared/runtimes/ (beside the clone, as CI
# lays it out; BERTH_RUNTIMES_DIR overrides) with its kernel-6 patch, and
# installed setuid root under $PREFIX (/opt/singularity-3.4.2).
#
# Build-or-reuse: a finished install leaves $PREFIX/.berth-built holding the
# sha256 of the tarball and of the patch; when it matches, nothing is done
# (about 0.1 s), so every CI run may call this.  One flock: two callers build
# once.  Prints the path of the singularity binary as its last line.
# About 2 minutes on 2 cores; the Go build needs no network (vendor/).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
# beside the clone first; then where this project's machines keep shared/
# (a CI clone may sit elsewhere, e.g. in /tmp)
RUNTIMES=${BERTH_RUNTIMES_DIR:-}
if [ -z "$RUNTIMES" ]; then
    for d in "$ROOT/../shared/runtimes" /work/shared/runtimes; do
        [ -d "$d" ] && { RUNTIMES=$d; break; }
    done
    RUNTIMES=${RUNTIMES:-$ROOT/../shared/runtimes}
fi
PREFIX=${BERTH_SINGULARITY_CE_PREFIX:-/opt/singularity-3.4.2}
VERSION=3.4.2
WORK=${BERTH_SINGULARITY_CE_WORK:-/var/tmp/berth-sing-ce}
LOCK=/var/tmp/berth-sing-ce.lock

die() { echo "singularity-ce.sh: $*" >&2; exit 1; }

tarball=$RUNTIMES/singularity-$VERSION.tar.xz
patchf=$RUNTIMES/singularity-$VERSION-kernel6.patch
[ -r "$tarball" ] || die "no $tarball: put the SingularityCE $VERSION source there or set BERTH_RUNTIMES_DIR"
[ -r "$patchf" ] || die "no $patchf: it belongs beside the source tarball"
[ "$(id -u)" -eq 0 ] || die "must run as root (the starter is installed setuid root)"

stamp=$PREFIX/.berth-built
want=$(sha256sum "$tarball" "$patchf" | awk '{print $1}' | tr '\n' ' ')

exec 9>"$LOCK"
flock 9

# Reuse only a complete install of these very sources whose starter is still
# setuid root (a copy or an rsync can drop the bit).
starter=$PREFIX/libexec/singularity/bin/starter-suid
if [ -r "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -u "$starter" ] &&
    "$PREFIX/bin/singularity" --version >/dev/null 2>&1; then
    echo "singularity-ce.sh: SingularityCE $VERSION already installed in $PREFIX"
    echo "$PREFIX/bin/singularity"
    exit 0
fi

command -v go >/dev/null || die "no go: run tests/harness/cluster/packages.sh (golang-go)"

echo "singularity-ce.sh: building SingularityCE $VERSION into $PREFIX (about 2 minutes)"
t0=$(date +%s)
rm -rf "$WORK" "$PREFIX"
mkdir -p "$WORK"
tar -xJf "$tarball" -C "$WORK"
src=$WORK/singularity-$VERSION
[ -d "$src" ] || src=$WORK/singularity
[ -d "$src" ] || die "the tarball has no singularity-$VERSION/ or singularity/ folder"
patch -d "$src" -p1 --quiet <"$patchf"

# Offline Go build from vendor/, with its own caches (never root's).
export GOPROXY=off GOFLAGS=-mod=vendor GOCACHE=$WORK/go/cache GOPATH=$WORK/go/path
cd "$src"
# -V: a tarball carries no VERSION file for mconfig to read.
./mconfig -V "$VERSION" -p "$PREFIX" >"$WORK/mconfig.log" 2>&1 ||
    { tail -n 30 "$WORK/mconfig.log"; die "mconfig failed (log: $WORK/mconfig.log)"; }
# .clean-starter alone first: under -j it races the Makefile's go clean -cache.
if ! { make -C builddir .clean-starter && make -C builddir -j"$(nproc)" &&
    make -C builddir install; } >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log"
    die "build failed (log: $WORK/build.log)"
fi
[ -u "$starter" ] || die "the install left $starter without its setuid bit"
echo "$want" >"$stamp"
rm -rf "$WORK/go" "$src"
echo "singularity-ce.sh: built in $(($(date +%s) - t0)) s: $("$PREFIX/bin/singularity" --version)"
echo "$PREFIX/bin/singularity"
