#!/bin/bash
# packaging/rpm/berth.spec parses: `rpmspec -P` succeeds with nothing on
# stderr (no errors, no warnings), and the parsed spec installs what the
# Debian package installs.  Installs the rpm tools with apt if missing.
set -u
cd "$(dirname "$0")/../.." || exit 1
SPEC=packaging/rpm/berth.spec
if ! command -v rpmspec >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rpm >&2
fi
fail=0
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
if rpmspec -P "$SPEC" >"$out" 2>"$err" && [ ! -s "$err" ]; then
	echo "ok - rpmspec -P $SPEC"
else
	echo "not ok - rpmspec -P $SPEC"
	sed 's/^/#   /' "$err"
	fail=1
fi
for want in \
	'^BuildRequires: *slurm-devel$' '^BuildRequires: *libarchive-devel$' \
	'^BuildRequires: *json-c-devel$' '^BuildRequires: *libcurl-devel$' \
	'^BuildRequires: *openssl-devel$' \
	'^/usr/bin/berth$' '/slurm/spank_berth\.so$' \
	'^%config\(noreplace\) /etc/slurm/berth\.conf$' \
	'^%config\(noreplace\) /etc/slurm/plugstack\.conf\.d/berth\.conf$' \
	'^#required .*/spank_berth\.so$' \
	'/man1/berth\.1\*$' '/man5/berth\.conf\.5\*$' '/man8/spank_berth\.8\*$'; do
	if grep -Eq "$want" "$out"; then
		echo "ok - spec has $want"
	else
		echo "not ok - spec has $want"
		fail=1
	fi
done
exit $fail
