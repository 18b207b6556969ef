#!/usr/bin/env bash
# make fuzz FUZZ_SECONDS=N: build the libFuzzer target with clang and run it
# for N seconds from a seed corpus of generated archives (good and bad).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${BUILD:-$repo/build}
out=$build/fuzz
mkdir -p "$out/corpus" "$out/findings"
clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	$(pkg-config --cflags libarchive json-c libcrypto libcurl) \
	-o "$out/fuzz_image" "$here/fuzz_image.c" \
	"$repo"/conf/error.c "$repo"/executor/tarmember.c "$repo"/executor/sha256.c "$repo"/executor/image.c \
	"$repo"/executor/flatten.c "$repo"/executor/fs.c "$repo"/executor/imageref.c \
	$(pkg-config --libs libarchive json-c libcrypto)
# Small seeds: every layout and every defect mkimage knows (no big ones).
for kind in legacy oci multi not-a-tar truncated no-manifest bad-manifest-json \
	manifest-not-array missing-config missing-layer digest-mismatch \
	config-digest-mismatch dotdot absolute symlink-escape symlink-chain \
	hardlink-escape whiteout-dotdot device-nodes setuid; do
	[ -e "$out/corpus/$kind.tar" ] ||
		python3 "$repo/tests/fixtures/mkimage.py" "$kind" "$out/corpus/$kind.tar" >/dev/null
done
[ -e "$out/corpus/oci-gz.tar" ] ||
	python3 "$repo/tests/fixtures/mkimage.py" oci "$out/corpus/oci-gz.tar" --gzip-layers >/dev/null
"$out/fuzz_image" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=4000000 \
	-artifact_prefix="$out/findings/" -print_final_stats=1 "$out/corpus" 2>&1 |
	grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|Done' || true
# References and URL pins: parse, format, parse again must agree.
clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-o "$out/fuzz_imageref" "$here/fuzz_imageref.c" "$repo"/conf/error.c "$repo"/executor/imageref.c
mkdir -p "$out/ref-corpus"
for s in ubuntu:22.04 'nvcr.io#nvidia/pytorch:24.05-py3' 'myreg#lab/tool:1' \
	'docker://[::1]:5000/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000' \
	'etag:"abc 1"' 'lm:Sun, 29 Nov 2026 23:00:00 GMT'; do
	printf '%s' "$s" >"$out/ref-corpus/$(printf '%s' "$s" | sha256sum | cut -c1-16)"
done
"$out/fuzz_imageref" -max_total_time="${FUZZ_SECONDS:-60}" -artifact_prefix="$out/findings/" \
	-print_final_stats=1 "$out/ref-corpus" 2>&1 |
	grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Done' || true
# Mounts, names, berth.conf text and plugstack arguments (fuzz_conf.c).
clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-o "$out/fuzz_conf" "$here/fuzz_conf.c" "$repo"/conf/error.c "$repo"/conf/config.c \
	"$repo"/conf/mounts.c "$repo"/conf/names.c
mkdir -p "$out/conf-corpus"
printf '\000./:/mnt:ro+nosuid,tmpfs:/t:size=1m+mode=0700,/dev/null:/null' >"$out/conf-corpus/mounts"
printf '\001build:no_exec' >"$out/conf-corpus/name"
printf '\002DefaultRuntime=singularity\nAllowedRuntimes=charliecloud,singularity\nCacheMaxSize=10G\nContainerScope=user\nDockerAllowedMounts=/data,/scratch\n' \
	>"$out/conf-corpus/conf"
printf '\003DefaultRuntime=docker AllowedRuntimes=docker PullParallel=8' >"$out/conf-corpus/args"
"$out/fuzz_conf" -max_total_time="${FUZZ_SECONDS:-60}" -artifact_prefix="$out/findings/" \
	-print_final_stats=1 "$out/conf-corpus" 2>&1 |
	grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Done' || true
n=$(find "$out/findings" -type f | wc -l)
echo "fuzz: $n finding(s) in $out/findings"
[ "$n" -eq 0 ]
