#!/usr/bin/env bash
# Which SquashFS compression should berth's SIFs have for a runtime that
# reads no zstd (SingularityCE)?  For each compression (BENCH_COMPS, default
# "gzip lz4"; xz is slow), in alternating rounds (the order rotates each
# round): cold staging (`berth pull` of a 220 MB image into an empty
# cache: flatten + libsquashfs on every core) and warm start (`singularity
# exec IMAGE.sif true` of that SIF as BENCH_USER through the setuid
# starter), medians and spread (min-max), and the SIF's size.  Timings are
# measured, never asserted.  Run as root:
#   BENCH_SINGULARITY=/opt/singularity-3.4.2/bin/singularity bench/sif-compression.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${BENCH_N_COMP:-5}
NS=${BENCH_N_START:-11}
read -r -a COMPS <<<"${BENCH_COMPS:-gzip lz4}"
USER_=${BENCH_USER:-berthtest}
BERTH=${BERTH_BUILD:-$REPO/build}/berth
SING=${BENCH_SINGULARITY:-/opt/singularity-3.4.2/bin/singularity}
[ -x "$SING" ] || die "no $SING (tests/harness/cluster/singularity-ce.sh builds one)"
out=$REPO/bench/out
mkdir -p "$out"
img=$out/big.tar
[ -e "$img" ] || python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$img" --big-mb 220 --tag berth/big:1 >/dev/null
work=$(mktemp -d /var/tmp/berth-bench-comp.XXXXXX)
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT

pull() { # COMP CACHE
	rm -rf "$2" && mkdir -p "$2"
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\nSquashfsCompression=%s\n' "$SING" "$1" >"$work/$1.conf"
	BERTH_CONFIG=$work/$1.conf "$BERTH" pull --runtime singularity --cache-dir "$2" "$img"
}
declare -A cold start size sif
for c in "${COMPS[@]}"; do cold[$c]="" start[$c]=""; done
for ((i = 0; i < N; i++)); do
	order=("${COMPS[@]:i % ${#COMPS[@]}}" "${COMPS[@]:0:i % ${#COMPS[@]}}")
	((i % 2)) && mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
	for c in "${order[@]}"; do
		t=$(clock "$work/pull.$c.log" pull "$c" "$work/cache-$c") || exit 1
		cold[$c]+=" $t"
	done
done
for c in "${COMPS[@]}"; do
	sif[$c]=$(ls "$work"/cache-"$c"/0/images/*/image*.sif)
	size[$c]=$(($(stat -c %s "${sif[$c]}") / 1048576))
	chmod -R a+rX "$work/cache-$c"
done
runas() { setpriv --reuid="$USER_" --regid="$USER_" --init-groups env -i PATH=/usr/bin:/bin HOME=/tmp "$@"; }
for c in "${COMPS[@]}"; do runas "$SING" -q exec "${sif[$c]}" true || die "$c: the SIF does not start"; done
for ((i = 0; i < NS; i++)); do
	order=("${COMPS[@]:i % ${#COMPS[@]}}" "${COMPS[@]:0:i % ${#COMPS[@]}}")
	for c in "${order[@]}"; do
		t0=$(now_ms)
		runas "$SING" -q exec "${sif[$c]}" true
		start[$c]+=" $(($(now_ms) - t0))"
	done
done
echo "image: $(du -m "$img" | cut -f1) MB; $(nproc) cores; $SING ($("$SING" --version))"
echo "cold staging: $N alternating rounds; warm start: $NS rounds as $USER_"
printf '%-6s %28s %28s %8s\n' comp "cold staging ms (min-max)" "warm start ms (min-max)" "SIF MB"
for c in "${COMPS[@]}"; do
	# shellcheck disable=SC2086 # one number per word
	read -r cm cl ch <<<"$(spread ${cold[$c]})"
	# shellcheck disable=SC2086
	read -r sm sl sh <<<"$(spread ${start[$c]})"
	printf '%-6s %14s (%s-%s) %16s (%s-%s) %8s\n' "$c" "$cm" "$cl" "$ch" "$sm" "$sl" "$sh" "${size[$c]}"
done
