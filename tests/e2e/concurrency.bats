#!/usr/bin/env bats
# Many jobs needing the same cold image at once: all succeed, the image is
# converted exactly once (per runtime that converts: charliecloud's rootfs,
# singularity's SIF or sandbox), counted in the user's conversions.log.

load helpers

setup_file() {
	require_cluster
}

conversions() { # digest-prefix artifact
	local log=$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)/conversions.log
	[ -e "$log" ] || { echo 0; return; }
	grep -c " $1 $2 " "$log" || true
}

cold_image() { # name: a new image (a unique label: a new digest) nobody converted yet
	local img=$IMAGES/$1-$$-$RANDOM.tar
	mkdir -p "$IMAGES"
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$img" --tag "berth/cold:1" \
		--label "cold=$(date +%s%N)-$RANDOM" >/dev/null
	chmod 644 "$img"
	echo "$img"
}

sixteen_at_once() { # runtime image
	local d pids=() i rc=0
	d=$(job_dir)
	for i in $(seq 16); do
		as_user sbatch --wait --overcommit --mem=100M --container-runtime="$1" \
			--container-image="$2" -o "$d/out.$i" --wrap='cat /etc/only-in-image' \
			>/dev/null 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	for i in $(seq 16); do grep -qx only-in-image "$d/out.$i" || rc=1; done
	return $rc
}

digest_of() { "$REPO/build/berth" inspect "$1" | awk '/^digest/ {print $2}'; }

one_conversion() { # runtime artifact
	img=$(cold_image "cold-$1.tar")
	digest=$(digest_of "$img")
	[ "$(conversions "$digest" "$2")" -eq 0 ]
	E2E_TIMEOUT=600 sixteen_at_once "$1" "$img"
	[ "$(conversions "$digest" "$2")" -eq 1 ]
}

# The artifact the cluster's charliecloud makes: the rootfs folder, or one
# SquashFS file (ImageStorage).
charliecloud_leaf() {
	case $(BERTH_CONFIG=$BERTH_CLUSTER_DIR/etc/berth.conf "$BERTH_CLUSTER_DIR/bin/berth" config |
		sed -n 's/^# charliecloud images here: \([a-z]*\) .*/\1/p') in
	squashfs) echo rootfs.sqfs ;;
	*) echo rootfs ;;
	esac
}

@test "16 jobs at once on a cold image (charliecloud): all succeed, one conversion" {
	one_conversion charliecloud "$(charliecloud_leaf)"
}

# The artifact the cluster's singularity makes: a SIF or a sandbox folder,
# as SingularityImageFormat (auto: from the installation) decides.
singularity_leaf() {
	case $(BERTH_CONFIG=$BERTH_CLUSTER_DIR/etc/berth.conf "$BERTH_CLUSTER_DIR/bin/berth" config |
		sed -n 's/^# singularity images here: \([a-z]*\).*/\1/p') in
	sif) sif_leaf ;;
	sandbox) echo sandbox ;;
	*) echo "berth config names no singularity image format" >&2; return 1 ;;
	esac
}

@test "16 jobs at once on a cold image (singularity): all succeed, one conversion" {
	leaf=$(singularity_leaf)
	one_conversion singularity "$leaf"
}

# Issue 25 item 3 through Slurm: the same image made cold again (its entry
# removed, as `berth cache rm` would) before one more round of 16 jobs on
# each runtime that converts (with the tests above: two cold rounds each,
# ~7 s a round here): every job stages and runs.
# (tests/pipeline/stress.bats does 512 stagings per artifact without Slurm.)
@test "16 cold jobs at once, one more round per runtime, the entry removed first: none fails" {
	u=$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)
	img=$(cold_image cold-rounds.tar)
	digest=$(digest_of "$img")
	SECONDS=0
	for rt in charliecloud singularity; do
		rm -rf "${u:?}/images/${digest#sha256:}"
		E2E_TIMEOUT=600 sixteen_at_once "$rt" "$img" || {
			echo "$rt: a job failed" >&2
			return 1
		}
	done
	echo "# 32 cold jobs in ${SECONDS}s" >&3
	[ -z "$(ls -A "$u/tmp")" ]
}

# Issue 25 item 6 through Slurm: an entry damaged behind berth's back (the
# SIF truncated, or the rootfs emptied) is found by the next job's staging,
# which says so on srun's stderr, rebuilds it, and runs right.
@test "a damaged cache entry: the next job says it was damaged, rebuilds it, and runs right" {
	u=$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)
	img=$(cold_image damaged.tar)
	digest=$(digest_of "$img")
	for rt in charliecloud singularity; do
		run as_user srun --container-runtime=$rt --container-image="$img" cat /etc/only-in-image
		[ "$status" -eq 0 ]
		entry=$u/images/${digest#sha256:}
		# image.sif, or image.lz4.sif & co. (the compression the runtime reads),
		# or charliecloud's rootfs.sqfs (ImageStorage=squashfs): one file
		one='image*.sif'
		[ "$rt" != charliecloud ] || one=rootfs.sqfs
		sif=$(find "$entry" -maxdepth 1 -name "$one" | head -n 1)
		if [ -n "$sif" ]; then
			: >"$sif"
		else
			leaf=rootfs
			[ "$rt" = charliecloud ] || leaf=sandbox
			[ -d "$entry/$leaf/etc" ]
			rm -rf "${entry:?}/$leaf/"*
		fi
		run as_user srun --container-runtime=$rt --container-image="$img" cat /etc/only-in-image
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"berth: the cached copy of $img was damaged ("*"); rebuilt it"* ]]
		[ "${lines[-1]}" = only-in-image ]
	done
}

@test "after the jobs: no build folder, no partial download left in the cache" {
	u=$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)
	[ -z "$(ls "$u/tmp")" ]
	[ -z "$(ls "$u/downloads" | grep -v '\.lock$' | grep part || true)" ]
}
