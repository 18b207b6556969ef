#!/usr/bin/env bash
# The soak test: SOAK_JOBS (default 300) container jobs back to back through
# the test cluster, mixed runtimes (charliecloud, singularity, docker), image
# sizes, options and failures (exit codes, a missing command, a refused
# mount, a killed task), four at a time.  Before and after, the same count
# of: slurmd's open files, mounts, the test user's processes, berth's Docker
# containers, the cache's temporary entries, staged Docker binds, berth's
# own layer mounts, the test user's entries in /tmp, /var/tmp and /dev/shm.  Prints TAP; run as root with the cluster and dockerd up
# (`make soak`: tests/run-all.sh's "soak" group, not in make test).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/helpers.bash
. "$repo/tests/e2e/helpers.bash"
JOBS=${SOAK_JOBS:-300}
UIDT=$(id -u "${BERTH_TEST_USER:-berthtest}")
n=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $1"; }

small=$(make_image legacy.tar legacy --tag berth/test:1)
big=$(make_image soak-big.tar legacy --tag berth/soak:1 --big-mb 24)
d=$(job_dir)
mkdir -p "$d/in" && echo input >"$d/in/f" && chown -R "${BERTH_TEST_USER:-berthtest}" "$d/in"

# One number per resource; the same before and after, once jobs are gone.
census() {
	local slurmd fds
	slurmd=$(cat "$BERTH_CLUSTER_DIR/pids/slurmd.pid" 2>/dev/null || pgrep -o -x slurmd)
	fds=$(ls "/proc/$slurmd/fd" 2>/dev/null | wc -l)
	echo "slurmd-fds=$fds"
	echo "mounts=$(wc -l </proc/self/mountinfo)"
	echo "user-processes=$(pgrep -u "$UIDT" | wc -l)"
	echo "docker-containers=$(docker ps -aq --filter label=berth.uid="$UIDT" | wc -l)"
	echo "cache-tmp=$(find "$BERTH_CLUSTER_DIR/cache/$UIDT/tmp" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
	echo "staged-binds=$(find "$BERTH_CLUSTER_DIR/cache/.docker-binds" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
	echo "layer-mounts=$(grep -c " $BERTH_CLUSTER_DIR/cache/$UIDT/layer" /proc/self/mountinfo)"
	# what the runtimes or berth leave in the shared temporary folders (a
	# cancelled step SIGKILLs the runtime: its session must not stay)
	echo "user-tmp=$(find /tmp /var/tmp /dev/shm -mindepth 1 -maxdepth 1 -uid "$UIDT" 2>/dev/null | wc -l)"
}

# Job i: the runtime, image, options and command cycle through the cases.
one_job() {
	local i=$1 rt img
	rt=$(printf 'charliecloud\nsingularity\ndocker\n' | sed -n "$((i % 3 + 1))p")
	img=$small
	[ $((i % 10)) -eq 7 ] && img=$big
	case $((i % 8)) in
	0) as_user srun -Q --container-runtime="$rt" --container-image="$img" true ;;
	1) as_user srun -Q --container-runtime="$rt" --container-image="$img" sh -c 'exit 3'
	   [ $? -eq 3 ] ;;
	2) as_user srun -Q --container-runtime="$rt" --container-image="$img" \
		--container-mounts="$d/in:/in:ro" cat /in/f >/dev/null ;;
	3) ! as_user srun -Q --container-runtime="$rt" --container-image="$img" no-such-command \
		2>/dev/null ;;
	4) # writable: the image's root folder is the user's in charliecloud and
	   # singularity; in docker its files stay root's, so the check is that
	   # the container's root is mounted read-write (read-only without it)
	   local check='echo x >/w'
	   [ "$rt" = docker ] && check='grep -q "^overlay / overlay rw," /proc/mounts'
	   as_user srun -Q --container-runtime="$rt" --container-image="$img" \
		--container-writable sh -c "$check" ;;
	5) # refused by docker (outside DockerAllowedMounts); unreadable in the others
	   ! as_user srun -Q --container-runtime="$rt" --container-image="$img" \
		--container-mounts=/root:/r ls /r 2>/dev/null ;;
	6) as_user srun -Q -n 2 --container-runtime="$rt" --container-image="$img" \
		sh -c 'test -n "$SLURM_PROCID"' ;;
	7) as_user timeout -s TERM 3 srun -Q --container-runtime="$rt" --container-image="$img" \
		sleep 30 2>/dev/null
	   true ;; # srun stopped mid-step: the step is ended, Slurm and berth clean up
	esac
}

# warm every image for every runtime first: the census counts steady state
for rt in charliecloud singularity docker; do
	as_user srun -Q --container-runtime=$rt --container-image="$small" true
	as_user srun -Q --container-runtime=$rt --container-image="$big" true
done
# Jobs of earlier tests may still be ending (epilogs, killed steps): the
# count starts once the test user's processes are gone, or after 60 s.
for _ in $(seq 300); do
	pgrep -u "$UIDT" >/dev/null || break
	sleep 0.2
done
before=$(census)
failed=0
for ((i = 0; i < JOBS; i += 4)); do
	pids=()
	for ((j = i; j < i + 4 && j < JOBS; j++)); do
		one_job "$j" >"$d/job.$j.out" 2>&1 &
		pids+=($!)
	done
	for ((k = 0; k < ${#pids[@]}; k++)); do
		if ! wait "${pids[k]}"; then
			failed=$((failed + 1))
			echo "# job $((i + k)) (case $(((i + k) % 8))) did not behave:"
			sed 's/^/#   /' "$d/job.$((i + k)).out" | tail -5
		fi
	done
done
if [ "$failed" -eq 0 ]; then ok "$JOBS jobs ran as expected"; else not_ok "$failed of $JOBS jobs did not behave"; fi
# let Slurm finish the killed steps and the epilogs
for _ in $(seq 300); do
	squeue -h -u "${BERTH_TEST_USER:-berthtest}" | grep -q . || break
	sleep 0.2
done
sleep 2
after=$(census)
while read -r line; do
	what=${line%%=*}
	was=$(sed -n "s/^$what=//p" <<<"$before")
	now=${line#*=}
	if [ "$was" = "$now" ]; then
		ok "$what: $now before and after"
	elif [ "$what" = user-processes ] && [ "$now" -lt "$was" ]; then
		# fewer: processes that were running before (not the soak's) ended
		ok "$what: $was before, $now after (none left by the soak)"
	else
		not_ok "$what: $was before, $now after"
	fi
done <<<"$after"
echo "1..$n"
