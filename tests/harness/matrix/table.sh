#!/bin/bash
# Print the version matrix as a Markdown table (Slurm release x runtime ->
# passed/failed) from the rows' .results and .versions files (a row's
# optional label= line leads its first cell), then, as the
# last line, "N passed, N failed" over every row.  Exits 1 on any failure
# or a row with no results.
#   tests/harness/matrix/table.sh OUTDIR SUITE...
out=${1:?usage: table.sh OUTDIR SUITE...}
shift
runtimes="charliecloud singularity docker"
total_ok=0
total_fail=0
cell() { # results runtime -> "P passed, F failed"
	local ok fail
	ok=$(grep -c "^$2 ok$" "$1" 2>/dev/null)
	fail=$(grep -c "^$2 fail$" "$1" 2>/dev/null)
	echo "${ok:-0} passed, ${fail:-0} failed"
}
version() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n1; }

echo
echo "| Slurm release | runtime-independent (build, unit, lint, packaging) | charliecloud | singularity | docker |"
echo "|---|---|---|---|---|"
for suite in "$@"; do
	r=$out/$suite.results
	v=$out/$suite.versions
	if [ ! -s "$r" ]; then
		echo "| $suite: no results | | | | |"
		total_fail=$((total_fail + 1))
		continue
	fi
	# a row that is not a plain Slurm release (the SingularityCE one)
	# names itself first: label=... in its .versions
	label=$(version "$v" label)
	row="| ${label:+$label on }Slurm $(version "$v" slurm) ($(version "$v" release)) | $(cell "$r" common)"
	for rt in $runtimes; do
		row+=" | $(cell "$r" "$rt")<br>$(version "$v" "$rt")"
	done
	echo "$row |"
	total_ok=$((total_ok + $(grep -c ' ok$' "$r")))
	total_fail=$((total_fail + $(grep -c ' fail$' "$r")))
done
echo
echo "$total_ok passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
