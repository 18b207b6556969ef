#!/usr/bin/env bash
# Static checks: lint.sh cppcheck | clang-tidy | exports | layers
set -u
cd "$(dirname "$0")/.."
srcs=$(find conf executor cli spank -name "*.c" | sort)
incs="-I. -I/usr/include/json-c -I/usr/include/x86_64-linux-gnu"
case ${1:-all} in
cppcheck)
	# memleak is off: cppcheck does not know __attribute__((cleanup)) and
	# reports every _cleanup_free_ pointer; leaks are caught by ASan and
	# valgrind in the unit tests instead.
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem -D__GNUC__ \
		--suppress=memleak $srcs
	;;
clang-tidy)
	clang-tidy --quiet $srcs -- -std=gnu11 -DBERTH_VERSION="\"lint\"" $incs 2>/dev/null | grep -E 'warning:|error:' && exit 1
	exit 0
	;;
exports)
	# The plugin must export the SPANK hooks and plugin symbols, nothing else.
	bad=$(nm -D --defined-only "${BUILD:-build}/spank_berth.so" | awk '{print $3}' |
		grep -Ev '^(slurm_spank_[a-z_]+|plugin_name|plugin_type|plugin_version|spank_plugin_version)$')
	[ -z "$bad" ] || { echo "unexpected exports: $bad"; exit 1; }
	# ...and need nothing from outside but libc and Slurm (a missing
	# symbol would only show when slurmstepd loads it).
	missing=$(nm -u "${BUILD:-build}/spank_berth.so" | awk '$1 == "U" {print $2}' |
		grep -Ev '@GLIBC|^(slurm_|spank_)')
	[ -z "$missing" ] || { echo "plugin needs symbols nobody provides: $missing"; exit 1; }
	;;
layers)
	# Includes point downward only, none from outside the root, and no
	# import circle between source files (tests/lint_layers.py says how).
	python3 tests/lint_layers.py "${BUILD:-build}"
	;;
*)
	"$0" cppcheck && "$0" clang-tidy && "$0" exports && "$0" layers
	;;
esac
