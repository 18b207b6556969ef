#!/bin/bash
# Print the versions a matrix row ran with, as KEY=VALUE lines: the
# release, Slurm, gcc and each runtime (the singularity binary the tests
# use: BERTH_TEST_SINGULARITY, else the stand-in).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
. /etc/os-release
echo "release=${PRETTY_NAME:-unknown}"
echo "slurm=$(slurmd -V 2>/dev/null | awk '{print $2}')"
echo "gcc=$(gcc -dumpfullversion 2>/dev/null)"
echo "charliecloud=ch-run $(USER=root ch-run --version 2>&1 | head -n1)"
if [ -n "${BERTH_TEST_SINGULARITY:-}" ]; then
	echo "singularity=$("$BERTH_TEST_SINGULARITY" --version 2>/dev/null | head -n1)"
else
	echo "singularity=stand-in (tests/harness/fakes, $(sed -n 's/^Last compared against: *//p' "$repo/tests/harness/fakes/README.md" | head -n1))"
fi
v=$(curl -sf --max-time 2 --unix-socket /var/run/docker.sock http://x/version 2>/dev/null |
	sed -n 's/.*"Version":"\([^"]*\)".*/\1/p' | head -n1)
echo "docker=${v:+dockerd $v}"
