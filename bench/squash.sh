#!/usr/bin/env bash
# Issue 27's comparison: staging without unpacking.  A Debian-like image
# (bench/mkdistro.py: real files from a matrix chroot, ~200 MB and ~14,000
# entries unpacked in 3 gzip layers; BENCH_IMAGE for another docker-save
# archive), cold, as alternating rounds (one of each per round, rotating):
#   from the docker-save archive: berth pull with ImageStorage=tree (what
#     berth did before), =squashfs (one SquashFS file), berth's SIF for
#     singularity, `docker load`, and the real `apptainer build
#     docker-archive:` 1.4.5 from the sid chroot of the version matrix;
#   from a loopback registry (Debian's docker-registry): berth pull tree and
#     squashfs against `docker pull`;
# then the warm start of `berth run ... true` on both storages (alternating
# pairs), and the cache's size against the image's compressed size.
# BENCH_ON=disk (a folder under /var/tmp, the root file system) or tmpfs (a
# tmpfs mounted there for the run).  dockerd keeps its images in
# /var/lib/docker whatever BENCH_ON says.  Medians, spread (min-max);
# timings are measured, never asserted.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
N=${BENCH_N_SQUASH:-3}
BERTH=${BERTH_BUILD:-$REPO/build}/berth
on=${BENCH_ON:-disk}
[ -x "$BERTH" ] || die "$BERTH not found (make first, or set BERTH_BUILD)"
[ "$(id -u)" -eq 0 ] || die "run as root (the tmpfs, the chroot, dockerd)"
case $on in disk | tmpfs) ;; *) die "BENCH_ON must be disk or tmpfs, not '$on'" ;; esac

out=$REPO/bench/out
mkdir -p "$out"
work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
chmod 0755 "$work"
REGISTRY="" tag=""
cleanup() {
	set +e
	[ -z "$tag" ] || docker rmi -f "$tag" ${REGISTRY:+"$REGISTRY/berth/distro:1"} >/dev/null 2>&1
	[ -z "$REGISTRY" ] || bash "$REPO/tests/harness/registry/stop.sh" "$work/reg" >/dev/null 2>&1
	mountpoint -q "$work/on" && umount "$work/on"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir "$work/on"
[ "$on" = disk ] || mount -t tmpfs -o size=6g,mode=0755 tmpfs "$work/on"
place=$work/on

# ---- the image -------------------------------------------------------------------
img=${BENCH_IMAGE:-$out/distro.tar}
tag=${BENCH_TAG:-berth/distro:1}
if [ ! -e "$img" ]; then
	# shellcheck disable=SC2012 # the newest chroot; its name has no odd characters
	src=$(ls -dt /var/cache/berth-matrix/trixie-* /var/cache/berth-matrix/sid-* 2>/dev/null | head -1 || true)
	[ -n "$src" ] || die "no matrix chroot to take a distribution's files from (bash tests/harness/matrix/chroot.sh trixie), or set BENCH_IMAGE"
	python3 "$REPO/bench/mkdistro.py" "$src" "$img"
fi
mkdir -p "$work/layers"
tar -xf "$img" -C "$work/layers"
mapfile -t layers < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[0]["Layers"]))' "$work/layers/manifest.json")
packed=0
for l in "${layers[@]}"; do packed=$((packed + $(stat -c %s "$work/layers/$l"))); done
entries=$(for l in "${layers[@]}"; do tar -tzf "$work/layers/$l"; done | sort -u | wc -l)
echo "on: $on ($(df --output=fstype "$place" | tail -1) at $place); $(nproc) cores; N=$N alternating rounds"
echo "image: $img, ${#layers[@]} gzip layers, $((packed / 1048576)) MB compressed, $entries entries"

# ---- contenders --------------------------------------------------------------------
for s in tree squashfs; do printf 'ImageStorage=%s\n' "$s" >"$work/$s.conf"; done
sing=${BERTH_TEST_SINGULARITY:-$REPO/tests/harness/fakes/singularity}
printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$sing" >"$work/sif.conf"
fresh() { rm -rf "$place/c-$1" && mkdir "$place/c-$1"; }
pull_as() { # STORAGE SOURCE [RUNTIME]
	BERTH_CONFIG=$work/$1.conf "$BERTH" pull --runtime "${3:-charliecloud}" --cache-dir "$place/c-$1" "$2"
}
tree_prep() { fresh tree; }
tree_run() { pull_as tree "$img"; }
sq_prep() { fresh squashfs; }
sq_run() { pull_as squashfs "$img"; }
sif_prep() { fresh sif; }
sif_run() { pull_as sif "$img" singularity; }
docker_ok=""
docker info >/dev/null 2>&1 && docker_ok=1
dload_prep() { docker rmi -f "$tag" >/dev/null 2>&1 || true; }
dload_run() { docker load -q -i "$img"; }

app_root=""
while read -r d; do
	if [ -d "$d" ] && [ -x "$d/usr/bin/apptainer" ]; then app_root=$d && break; fi
done < <(ls -dt /var/cache/berth-matrix/sid-* 2>/dev/null || true)
app_prep() { rm -rf "$place/app" && mkdir -p "$place/app/cache" "$place/app/tmp"; }
app_run() { # $place is under /var/tmp, which the chroot shares
	bash "$REPO/tests/harness/matrix/enter.sh" "$app_root" env APPTAINER_CACHEDIR="$place/app/cache" \
		APPTAINER_TMPDIR="$place/app/tmp" apptainer build --force "$place/app/distro.sif" \
		"docker-archive:$img"
}

echo "== cold staging from the docker-save archive"
contender "berth pull, ImageStorage=tree (before)" tree_prep tree_run
contender "berth pull, ImageStorage=squashfs" sq_prep sq_run
contender "berth pull --runtime singularity (SIF)" sif_prep sif_run
i_dload="" i_app=""
if [ -n "$docker_ok" ]; then
	i_dload=${#C_NAME[@]}
	contender "docker load" dload_prep dload_run dload_prep
else
	echo "docker load: skipped (dockerd not reachable; bash tests/harness/cluster/dockerd.sh start)"
fi
if [ "$on" = tmpfs ]; then
	# enter.sh binds /var/tmp without its submounts: the chroot would not see this tmpfs
	echo "apptainer build: skipped on tmpfs (the matrix chroot sees /var/tmp, not the tmpfs mounted in it)"
elif [ -n "$app_root" ]; then
	i_app=${#C_NAME[@]}
	contender "apptainer build docker-archive: (sid chroot)" app_prep app_run
else
	echo "apptainer build: skipped (no /var/cache/berth-matrix/sid-*/usr/bin/apptainer)"
fi
rounds
report
rline "ratio squashfs / tree" "$(ratio "${med[1]}" "${med[0]}")"
[ -z "$i_dload" ] || rline "ratio squashfs / docker load" "$(ratio "${med[1]}" "${med[$i_dload]}")"
[ -z "$i_app" ] || rline "ratio berth SIF / apptainer build" "$(ratio "${med[2]}" "${med[$i_app]}")" "(target <= 0.05)"
[ -z "$i_app" ] || echo "(apptainer's figure includes entering the chroot, tests/harness/matrix/enter.sh: about 30 ms)"
sizes() { du -sm "$place/c-$1/0/images" | cut -f1; }
echo "cache images/: tree $(sizes tree) MB, squashfs $(sizes squashfs) MB, SIF $(sizes sif) MB; the layers: $((packed / 1048576)) MB compressed"

# ---- from a registry ---------------------------------------------------------------
reset_contenders
if command -v docker-registry >/dev/null && [ -n "$docker_ok" ]; then
	bash "$REPO/tests/harness/registry/start.sh" "$work/reg" >/dev/null
	set -a
	# shellcheck disable=SC1091 # written by tests/harness/registry/start.sh
	. "$work/reg/env"
	set +a
	bash "$REPO/tests/harness/registry/push.sh" --env "$work/reg/env" "$img" berth/distro:1 >/dev/null
	ref=$REGISTRY/berth/distro:1
	for s in tree squashfs; do printf 'InsecureRegistries=%s\n' "$REGISTRY" >>"$work/$s.conf"; done
	rtree_run() { pull_as tree "$ref"; }
	rsq_run() { pull_as squashfs "$ref"; }
	dpull_prep() { docker rmi -f "$ref" "$tag" >/dev/null 2>&1 || true; }
	dpull_run() { docker pull -q "$ref"; }
	echo "== cold pull from http://$REGISTRY (loopback)"
	contender "berth pull, ImageStorage=tree (before)" tree_prep rtree_run
	contender "berth pull, ImageStorage=squashfs" sq_prep rsq_run
	contender "docker pull" dpull_prep dpull_run dpull_prep
	rounds
	report
	rline "ratio squashfs / docker pull" "$(ratio "${med[1]}" "${med[2]}")" "(target <= 0.5)"
	rline "ratio tree / docker pull" "$(ratio "${med[0]}" "${med[2]}")"
else
	echo "registry pull: skipped (docker-registry or dockerd missing)"
fi

# ---- warm start ----------------------------------------------------------------------
# A small image with a shell and `true` (the distribution sample has no libc).
python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$work/small.tar" >/dev/null
for s in tree squashfs; do fresh "$s"; done
warm() { BERTH_CONFIG=$work/$1.conf "$BERTH" run --runtime charliecloud --cache-dir "$place/c-$1" --image "$work/small.tar" -- /bin/true; }
# shellcheck disable=SC2034 # read by pair_ms through namerefs
A=(warm squashfs) B=(warm tree)
N=${BENCH_N_WARM:-15} pair_ms A B
echo "== warm start, berth run --runtime charliecloud IMAGE /bin/true, ${BENCH_N_WARM:-15} alternating pairs"
show_pair "ImageStorage=squashfs" "ImageStorage=tree"
read -r dm dlo dhi <<<"$PAIR_D"
printf '%-44s %6s ms  (%s-%s)  (target <= 10)\n' "squashfs - tree, within each pair" "$dm" "$dlo" "$dhi"
