#!/bin/bash
# Build the berth .deb from a copy of the working tree, with
# packaging/debian as ./debian, then run lintian on it.
#
#   bash tests/packaging/build-deb.sh [OUTDIR]
#
# OUTDIR (default: a new temp folder) receives berth_*.deb, the .changes,
# .buildinfo, build.log and lintian.txt.  The last line of stdout is the
# path of the .deb.  Fails when the build fails or lintian reports any E:.
# Prints ok/not ok lines for the build and for lintian.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$(mktemp -d /tmp/berth-deb.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# BERTH_DEB_LINTIAN=0 skips lintian (the version matrix builds the package
# in each release; lintian's verdict does not depend on the release).
lint=${BERTH_DEB_LINTIAN:-1}
tools=(debhelper dpkg-dev fakeroot)
[ "$lint" = 0 ] || tools+=(devscripts lintian)
need=()
for p in "${tools[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "# installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
fi

WORK=$(mktemp -d /tmp/berth-debbuild.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
SRC=$WORK/berth-0.1.0
mkdir -p "$SRC"
# Tracked and untracked-but-not-ignored files: no build/ output, no .git.
# Without git (a matrix chroot): everything but those two.
if command -v git >/dev/null && git -C "$ROOT" rev-parse >/dev/null 2>&1; then
	(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' |
		tar --null -T - -cf -) | tar -C "$SRC" -xf -
else
	tar -C "$ROOT" --exclude=./.git --exclude=./build -cf - . | tar -C "$SRC" -xf -
fi
rm -rf "$SRC/debian"
cp -a "$ROOT/packaging/debian" "$SRC/debian"

fail=0
t0=$SECONDS
if (cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$OUT/build.log" 2>&1; then
	echo "ok - dpkg-buildpackage -us -uc -b ($((SECONDS - t0)) s)"
else
	echo "not ok - dpkg-buildpackage -us -uc -b (see $OUT/build.log)"
	tail -30 "$OUT/build.log" | sed 's/^/#   /'
	exit 1
fi
mv "$WORK"/*.deb "$WORK"/*.changes "$WORK"/*.buildinfo "$OUT"/
deb=$(find "$OUT" -maxdepth 1 -name "berth_*.deb" | head -1)

if [ "$lint" = 0 ]; then
	echo "$deb"
	exit 0
fi
# Any E: fails the check; nothing is suppressed.
lintian --display-info "$OUT"/*.changes >"$OUT/lintian.txt" 2>&1 || true
grep -E '^[EWIP]: ' "$OUT/lintian.txt" | sed 's/^/# lintian: /' || true
if grep -q '^E: ' "$OUT/lintian.txt"; then
	echo "not ok - lintian: no E: lines"
	fail=1
else
	echo "ok - lintian: no E: lines ($(grep -c '^W: ' "$OUT/lintian.txt" || true) W:)"
fi
echo "$deb"
exit $fail
