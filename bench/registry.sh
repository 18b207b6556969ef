#!/usr/bin/env bash
# Cold pulls of a big image (>= 200 MB, 7 gzip layers) from a loopback
# registry (Debian's docker-registry, plain http, no auth), side by side in
# one run, as alternating rounds (one of each per round, in a rotating
# order): berth pull --runtime charliecloud (download + verify + flatten to
# a rootfs) against `docker pull`, `skopeo copy` to a local dir (download
# only) and the real `apptainer pull` (download + extract + SIF) from the
# sid chroot of the version matrix.  Then a second image that shares all
# but its top layer (only that layer should be fetched), and where berth's
# time goes.  Medians, spread (min-max).  Timings are measured, never
# asserted.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
N=${BENCH_N_REGISTRY:-5}
BERTH=${BERTH_BUILD:-$REPO/build}/berth
uid=$(id -u)

[ -x "$BERTH" ] || die "$BERTH not found (make first, or set BERTH_BUILD)"
for tool in docker-registry skopeo jq python3 curl; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
chmod 0755 "$work"
docker_ok="" REGISTRY="" cfg="" cfg2=""
docker_clean() { # our two images gone from dockerd, by tag and by id
	[ -n "$REGISTRY" ] || return 0
	docker rmi -f "$REGISTRY/berth/big:1" "$REGISTRY/berth/big2:1" >/dev/null 2>&1 || true
	# By id too: an earlier `docker load` of the same config would keep
	# the image (and all its layers) under another tag.
	[ -z "$cfg" ] || docker rmi -f "$cfg" "$cfg2" >/dev/null 2>&1 || true
	if [ -n "$cfg" ] && docker image ls -q --no-trunc | grep -qF -e "$cfg" -e "$cfg2"; then
		echo "bench: dockerd still lists $cfg or $cfg2" >&2
		return 1
	fi
}
cleanup() {
	set +e
	[ -z "$docker_ok" ] || docker_clean
	bash "$REPO/tests/harness/registry/stop.sh" "$work/reg" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

uniq_list() { printf '%s\n' "$@" | sort -n | uniq | paste -sd/; }

# ---- images and registry ------------------------------------------------------
mkdir -p "$work/img"
python3 "$REPO/tests/harness/fixtures/mkimage.py" oci "$work/img/big.tar" --big-mb 220 \
	--tag berth/big:1 --gzip-layers >/dev/null
python3 "$REPO/tests/harness/fixtures/mkimage.py" oci "$work/img/big2.tar" --big-mb 220 \
	--tag berth/big2:1 --gzip-layers --workdir /x >/dev/null
bash "$REPO/tests/harness/registry/start.sh" "$work/reg" >/dev/null
set -a
# shellcheck disable=SC1091 # written by tests/harness/registry/start.sh
. "$work/reg/env"
set +a
reglog=$work/reg/registry.log
bash "$REPO/tests/harness/registry/push.sh" --env "$work/reg/env" "$work/img/big.tar" berth/big:1 >/dev/null
bash "$REPO/tests/harness/registry/push.sh" --env "$work/reg/env" "$work/img/big2.tar" berth/big2:1 >/dev/null
rm -rf "$work/img"
skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/berth/big:1" >"$work/m1.json"
skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/berth/big2:1" >"$work/m2.json"
cfg=$(jq -r .config.digest "$work/m1.json")
cfg2=$(jq -r .config.digest "$work/m2.json")
mapfile -t layers < <(jq -r '.layers[].digest' "$work/m1.json")
mapfile -t layers2 < <(jq -r '.layers[].digest' "$work/m2.json")
shared=$(comm -12 <(printf '%s\n' "${layers[@]}" | sort) <(printf '%s\n' "${layers2[@]}" | sort) | wc -l)
mb=$(jq '[.layers[].size] | add / 1048576 | floor' "$work/m1.json")
[ "$shared" -eq $((${#layers2[@]} - 1)) ] || echo "WARNING: big2 should share all but one layer with big; it shares $shared of ${#layers2[@]}"

printf 'CacheDir=%s\nInsecureRegistries=%s\n' "$work/cache" "$REGISTRY" >"$work/berth.conf"
printf 'PullParallel=1\n' | cat "$work/berth.conf" - >"$work/berth1.conf"
export BERTH_CONFIG=$work/berth.conf

echo "machine: $(nproc) cores (nproc); the figures differ between machines (cores, disk, page cache)"
echo "registry: http://$REGISTRY (docker-registry $(docker-registry --version 2>/dev/null | awk '{print $NF}'), loopback, no auth)"
echo "image berth/big:1: $mb MB in ${#layers[@]} gzip layers; berth/big2:1 shares $shared of its ${#layers2[@]} layers (all but the top one)"

# ---- contenders -----------------------------------------------------------------
cache_fresh() { rm -rf "$work/cache" && mkdir "$work/cache"; }
berth_pull() { "$BERTH" pull --runtime charliecloud "$REGISTRY/berth/$1:1"; }
berth_big() { berth_pull big; }
berth_big2() { berth_pull big2; }

mark=0
mark_log() { mark=$(wc -l <"$reglog"); }
gets_since() { # REPO [DIGEST]: GETs of that repo's blobs by berth since mark
	sleep 0.2 # the access log line is written when the answer is done
	tail -n +$((mark + 1)) "$reglog" | grep -F "\"GET /v2/berth/$1/blobs/${2:-}" | grep -cF '"berth/' || true
}
COLD_GETS=()
berth_cold_prep() { cache_fresh; mark_log; }
berth_cold_post() { COLD_GETS+=("$(gets_since big)"); }

docker_pull_big() { docker pull -q "$REGISTRY/berth/big:1"; }
docker_pull_big2() { docker pull -q "$REGISTRY/berth/big2:1"; }
docker_prep() { docker_clean || die "cannot remove our images from dockerd"; }

skopeo_prep() { rm -rf "$work/skopeo-dir"; }
skopeo_run() {
	skopeo --insecure-policy copy --quiet --src-tls-verify=false \
		"docker://$REGISTRY/berth/big:1" "dir:$work/skopeo-dir"
}

app_root=""
while read -r d; do # the newest sid chroot that has it
	if [ -d "$d" ] && [ -x "$d/usr/bin/apptainer" ]; then app_root=$d && break; fi
done < <(ls -dt /var/cache/berth-matrix/sid-* 2>/dev/null || true)
app_prep() { rm -rf "$work/app" && mkdir -p "$work/app/cache" "$work/app/tmp"; }
app_run() { # $work is under /var/tmp, which the chroot shares
	bash "$REPO/tests/harness/matrix/enter.sh" "$app_root" env APPTAINER_CACHEDIR="$work/app/cache" \
		APPTAINER_TMPDIR="$work/app/tmp" apptainer pull --force --no-https \
		"$work/app/big.sif" "docker://$REGISTRY/berth/big:1"
}

# ---- cold pulls of big:1 ---------------------------------------------------------
echo "== cold pull of berth/big:1, $N alternating rounds (each contender cold every time; one untimed warm-up round first)"
contender "berth pull (download + verify + flatten)" berth_cold_prep berth_big berth_cold_post
# Warm-up round, which also checks that each contender works here.
cache_fresh
clock "$work/warm.log" berth_big >/dev/null || die "berth pull of $REGISTRY/berth/big:1 failed"
if ! docker info >/dev/null 2>&1; then
	echo "docker pull: skipped (dockerd not reachable; bash tests/harness/cluster/dockerd.sh start)"
else
	docker_ok=1
	docker_prep
	if clock "$work/warm.log" docker_pull_big >/dev/null 2>&1 &&
		[ "$(docker image inspect -f '{{.Id}}' "$REGISTRY/berth/big:1" 2>/dev/null)" = "$cfg" ]; then
		contender "docker pull (download + extract)" docker_prep docker_pull_big
	else
		echo "docker pull: skipped (dockerd cannot pull from http://$REGISTRY: $(tail -1 "$work/warm.log"))"
		docker_ok=""
	fi
fi
skopeo_prep
clock "$work/warm.log" skopeo_run >/dev/null || die "skopeo copy failed"
contender "skopeo copy to dir: (download only)" skopeo_prep skopeo_run
app_note=""
if [ -z "$app_root" ]; then
	echo "apptainer pull: skipped (no /var/cache/berth-matrix/sid-*/usr/bin/apptainer; tests/harness/matrix builds it)"
elif [ "$uid" -ne 0 ]; then
	echo "apptainer pull: skipped (tests/harness/matrix/enter.sh needs root)"
else
	app_prep
	if clock "$work/warm.log" app_run >/dev/null 2>&1; then
		app_version=$(bash "$REPO/tests/harness/matrix/enter.sh" "$app_root" apptainer --version 2>/dev/null | awk '{print $NF}')
		contender "apptainer pull $app_version (download + extract + SIF)" app_prep app_run
		t_enter=()
		for _ in 1 2 3; do t_enter+=("$(clock "$work/warm.log" bash "$REPO/tests/harness/matrix/enter.sh" "$app_root" true)"); done
		read -r enter_ms _ <<<"$(spread "${t_enter[@]}")"
		app_note="(apptainer's figure includes ${enter_ms} ms of tests/harness/matrix/enter.sh, chroot $(basename "$app_root"))"
	else
		echo "apptainer pull: skipped (it failed in $app_root: $(grep -v '^INFO' "$work/warm.log" | tail -1))"
	fi
fi
rounds
report
[ -z "$app_note" ] || echo "$app_note"
echo "blob GETs per cold berth pull: $(uniq_list "${COLD_GETS[@]}") (the manifest names $((${#layers[@]} + 1)) blobs: ${#layers[@]} layers + the config)"
for i in "${!C_NAME[@]}"; do
	case ${C_NAME[$i]} in
	docker*) rline "ratio docker pull / berth" "$(ratio "${med[i]}" "${med[0]}")" "(target >= 2)" ;;
	skopeo*) rline "ratio skopeo copy / berth" "$(ratio "${med[i]}" "${med[0]}")" "(skopeo only downloads)" ;;
	apptainer*) rline "ratio apptainer pull / berth" "$(ratio "${med[i]}" "${med[0]}")" "(apptainer also builds a SquashFS SIF)" ;;
	esac
done

# ---- the second image ------------------------------------------------------------
echo "== berth/big2:1 (shares $shared of ${#layers2[@]} layers with berth/big:1), $N alternating rounds"
reset_contenders
WARM_GETS=() WARM_CFG_GETS=() COLD2_GETS=()
berth_warm_prep() { { cache_fresh && berth_big >/dev/null 2>&1; } || die "berth pull of big:1 failed"; mark_log; }
berth_warm_post() { WARM_GETS+=("$(gets_since big2)"); WARM_CFG_GETS+=("$(gets_since big2 "$cfg2")"); }
berth_cold2_post() { COLD2_GETS+=("$(gets_since big2)"); }
docker_warm_prep() { { docker_prep && docker_pull_big >/dev/null 2>&1; } || die "docker pull of big:1 failed"; }
contender "berth pull big2, after big (blobs warm)" berth_warm_prep berth_big2 berth_warm_post
contender "berth pull big2, cold" berth_cold_prep berth_big2 berth_cold2_post
[ -z "$docker_ok" ] || contender "docker pull big2, after big (layers warm)" docker_warm_prep docker_pull_big2
rounds
report
echo "blob GETs of big2 per berth pull after big: $(uniq_list "${WARM_GETS[@]}") (of which the config: $(uniq_list "${WARM_CFG_GETS[@]}")); cold: $(uniq_list "${COLD2_GETS[@]}")"
rline "ratio berth big2 cold / after big" "$(ratio "${med[1]}" "${med[0]}")"
[ -z "$docker_ok" ] || rline "ratio docker big2 after big / berth big2 after big" "$(ratio "${med[2]}" "${med[0]}")"

# ---- where berth's time goes ---------------------------------------------------
echo "== where berth's cold pull of big:1 goes, $N alternating rounds"
reset_contenders
blobs=$work/cache/$uid/blobs/sha256
flatten_prep() { # blobs warm, images/ and locks/ gone: flatten (+ manifest) only
	{ cache_fresh && berth_big >/dev/null 2>&1; } || die "berth pull of big:1 failed"
	rm -rf "$work/cache/$uid/images" "$work/cache/$uid/locks"
}
blobs_prep() { [ -e "$blobs/${cfg#sha256:}" ] || { cache_fresh && berth_big >/dev/null 2>&1; }; }
berth_p1() { BERTH_CONFIG=$work/berth1.conf berth_big; }
layer_files() { local l; for l in "${layers[@]}"; do echo "$blobs/${l#sha256:}"; done; }
# zlib's inflate and OpenSSL's SHA-256, what berth uses (GNU zcat and
# coreutils sha256sum are 2-3x slower here).
gunzip_py='import sys, zlib
n = 0
for f in sys.argv[1:]:
    d = zlib.decompressobj(31)
    with open(f, "rb", buffering=0) as fh:
        while b := fh.read(1 << 20):
            n += len(d.decompress(b))
print(n)'
ref_gunzip() { mapfile -t f < <(layer_files) && python3 -c "$gunzip_py" "${f[@]}"; }
ref_sha() { mapfile -t f < <(layer_files) && openssl dgst -sha256 "${f[@]}" >/dev/null; }
tar_prep() { blobs_prep && rm -rf "$work/tar-root" && mkdir "$work/tar-root"; }
ref_tar() { for l in "${layers[@]}"; do tar -xzf "$blobs/${l#sha256:}" -C "$work/tar-root"; done; }
contender "berth cold pull (PullParallel=4, the default)" cache_fresh berth_big
contender "berth flatten only (blobs warm, images/ empty)" flatten_prep berth_big
contender "berth cold pull with PullParallel=1" cache_fresh berth_p1
contender "reference: gunzip (zlib) of the ${#layers[@]} layer blobs" blobs_prep ref_gunzip
contender "reference: SHA-256 (openssl) of the ${#layers[@]} layer blobs" blobs_prep ref_sha
contender "reference: tar -xzf of the ${#layers[@]} layers in order" tar_prep ref_tar
rounds
report
printf '%-52s %7s ms  (medians: cold - flatten only)\n' "berth download + manifest" "$((med[0] - med[1]))"
rline "ratio berth flatten only / tar -xzf" "$(ratio "${med[1]}" "${med[5]}")"
rline "ratio berth PullParallel=1 / PullParallel=4" "$(ratio "${med[2]}" "${med[0]}")"
timed_pull() { # LABEL
	sync
	/usr/bin/time -f '%e s %M KB (%U s user, %S s sys, %P CPU)' -o "$work/time" \
		"$BERTH" pull --runtime charliecloud "$REGISTRY/berth/big:1" >/dev/null 2>&1 || die "berth pull failed"
	printf '%-52s %s\n' "/usr/bin/time, $1:" "$(cat "$work/time")"
}
cache_fresh
timed_pull "one cold berth pull"
rm -rf "$work/cache/$uid/images" "$work/cache/$uid/locks"
timed_pull "flatten only"
plain=$(ref_gunzip)
stored=$(jq '[.layers[].size] | add' "$work/m1.json")
echo "layers: $((stored / 1048576)) MB stored, $((plain / 1048576)) MB after gunzip (ratio $(ratio "$plain" "$stored")): seeded random" \
	"data, so gzip only frames it and gunzip is cheap here; real images compress 2-4x and gunzip weighs more"
