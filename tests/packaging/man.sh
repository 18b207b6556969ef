#!/bin/bash
# Every man page in doc/ renders with man -l and with groff -ww (all
# warnings) without a single message on stderr.  Prints ok/not ok per check.
set -u
cd "$(dirname "$0")/../.." || exit 1
pages=(doc/berth.1 doc/spank_berth.8 doc/berth.conf.5)
fail=0
check() { # name, command...
	local name=$1 err
	shift
	if err=$("$@" 2>&1 >/dev/null) && [ -z "$err" ]; then
		echo "ok - $name"
	else
		echo "not ok - $name"
		printf '#   %s\n' "${err:-(non-zero exit)}"
		fail=1
	fi
}
for p in "${pages[@]}"; do
	if [ ! -f "$p" ]; then
		echo "not ok - $p exists"
		fail=1
		continue
	fi
	check "groff -ww -man $p is clean" groff -ww -man -Tutf8 "$p"
	check "man -l $p is clean" env MANWIDTH=80 MAN_KEEP_FORMATTING=0 man -l "$p"
done
exit $fail
