#!/usr/bin/env bash
# Issue 24's bench: berth's cold SIF staging for a real setuid SingularityCE
# 3.4.2 (SquashfsCompression=auto: lz4, the fastest it reads) against that
# SingularityCE's own `singularity build IMAGE.sif docker-archive://...` of
# the same docker-save archive (about 220 MB).  Alternating rounds
# (pair_ms), median and spread (min-max), on the disk of BENCH_DIR
# (/var/tmp) and, with BENCH_DIR=/dev/shm/..., on tmpfs.  Run as root (the
# build needs it).  Measured, never asserted.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
N=${BENCH_N_SIF:-3}
BERTH=${BERTH_BUILD:-$REPO/build}/berth
SING=${BERTH_SINGULARITY_CE:-/opt/singularity-3.4.2/bin/singularity}
[ -x "$SING" ] || { echo "no SingularityCE at $SING: run tests/harness/cluster/singularity-ce.sh" >&2; exit 1; }
out=$REPO/bench/out
mkdir -p "$out"
img=$out/big.tar
[ -e "$img" ] || python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$img" --big-mb 220 --tag berth/big:1 >/dev/null
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/berth-bench-sce.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$SING" >"$work/berth.conf"

berth_cold() {
	rm -rf "$work/cache" && mkdir "$work/cache"
	BERTH_CONFIG=$work/berth.conf "$BERTH" pull --runtime singularity --cache-dir "$work/cache" "$img"
}
sce_build() {
	rm -rf "$work/build.sif" "$work/tmp" && mkdir "$work/tmp"
	SINGULARITY_TMPDIR=$work/tmp SINGULARITY_CACHEDIR=$work/tmp \
		"$SING" -s build "$work/build.sif" "docker-archive://$img"
}
# shellcheck disable=SC2034 # read by pair_ms through namerefs
a=(berth_cold)
# shellcheck disable=SC2034
b=(sce_build)
echo "image: $(du -m "$img" | cut -f1) MB; $N alternating rounds in $work ($(stat -f -c %T "$work"))"
pair_ms a b
show_pair "berth cold SIF staging (lz4)" "singularity build (SingularityCE $("$SING" --version | awk '{print $NF}'))"
read -ra am <<<"$PAIR_A"
read -ra bm <<<"$PAIR_B"
printf '%-44s %6s x\n' "ratio berth / singularity build" "$(awk -v a="${am[0]}" -v b="${bm[0]}" 'BEGIN { printf "%.3f", a / b }')"
