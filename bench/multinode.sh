#!/usr/bin/env bash
# Cold staging of a big image (>= 200 MB, several layers) on 1, 2 and 4
# nodes at once (tests/harness/cluster/multinode.sh: 4 slurmd on this machine, each
# with its own CacheDir), from the same archive: one `srun -N K true` with
# every node's cache emptied first.  Rounds alternate the order (1 2 4,
# 2 4 1, 4 1 2, ...).  Prints the median wall time and spread per K, the
# bytes read from the source archive (what every node's `berth pull` read,
# counted by a launcher wrapper from the exited process's rchar) and the
# ratio 4 nodes / 1 node (target <= 1.3).  The nodes share this machine's
# CPUs and disk: K conversions at once compete for them, which real nodes
# do not.  Run as root; BENCH_N rounds (default 5).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
N=${BENCH_N:-5}
D=${BERTH_MCLUSTER_DIR:-/var/tmp/berth-mcluster}
export BERTH_CLUSTER_DIR=$D SLURM_CONF=$D/etc/slurm.conf
MNODE=$REPO/tests/harness/cluster/multinode.sh
started=""
if ! sinfo -h >/dev/null 2>&1; then
	BERTH_BUILD=${BERTH_BUILD:-$REPO/build} bash "$MNODE" start >/dev/null
	started=1
fi
user=${BERTH_TEST_USER:-berthtest}
uid=$(id -u "$user")
out=$REPO/bench/out
mkdir -p "$out"
[ -e "$out/big.tar" ] || python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$out/big.tar" --big-mb 220 --tag berth/big:1 >/dev/null
work=$D/bench
install -d -m 0755 "$work"
install -m 0644 "$out/big.tar" "$work/big.tar"
install -d -m 1777 "$work/io"
# The launcher wrapper: runs berth, and for `berth pull` logs the bytes it
# read (rchar: a reaped child's I/O counts add to its parent's, so the
# wrapper's own count before and after; a zombie's /proc/PID/io is closed to
# its owner).
cat >"$work/berth-io" <<PY
#!/usr/bin/python3
import os, sys
real = "$D/bin/berth"
if len(sys.argv) < 2 or sys.argv[1] != "pull":
    os.execv(real, [real] + sys.argv[1:])
def rchar():
    with open("/proc/self/io") as f:
        return int([l.split()[1] for l in f if l.startswith("rchar:")][0])
before = rchar()
pid = os.fork()
if pid == 0:
    os.execv(real, [real] + sys.argv[1:])
_, status = os.waitpid(pid, 0)
with open("$work/io/%s.%d" % (os.uname().nodename, pid), "w") as f:
    f.write("%d\\n" % (rchar() - before))
sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
PY
chmod 0755 "$work/berth-io"

nodes=$(sinfo -h -N -o %N | sort -u | wc -l)
# set_launcher LAUNCHER [local|shared]: every node's berth and CacheDir
set_launcher() {
	local n
	for ((n = 1; n <= nodes; n++)); do
		BERTH_MNODE_LAUNCHER=$1 bash "$MNODE" set-cache "bn$n" "${2:-local}"
	done
}
cleanup() {
	set_launcher "$D/bin/berth"
	rm -rf "$work" "$D"/nodes/*/cache/"$uid" "$D/shared-cache/$uid" # copies of a 220 MB image
	[ -z "$started" ] || bash "$MNODE" stop >/dev/null
}
trap cleanup EXIT
set_launcher "$work/berth-io"

# stage K: empty every node's cache, then one step on K nodes; echoes ms.
stage() {
	local k=$1 t0 t
	rm -rf "$D"/nodes/*/cache/"$uid" "$D/shared-cache/$uid" "$work"/io/*
	t0=$(now_ms)
	timeout 600 "$REPO/tests/harness/cluster/submit.sh" srun -N "$k" --container-image="$work/big.tar" true >/dev/null 2>&1 ||
		{ echo "bench: srun -N $k failed" >&2; return 1; }
	t=$(($(now_ms) - t0))
	echo "$t $(cat "$work"/io/* 2>/dev/null | awk '{ s += $1 } END { print s + 0 }') $(find "$work/io" -type f | wc -l)"
}

counts=(1 2 4)
# rounds CACHE: N rounds of 1, 2 and 4 nodes, each node's CacheDir its own
# (local) or one folder for all (shared); prints the table.
rounds_on() {
	local cache=$1 r j k t b p
	declare -A times bytes pulls
	set_launcher "$work/berth-io" "$cache"
	echo "image: $(du -m "$work/big.tar" | cut -f1) MB, $nodes nodes, $N rounds, order rotated each round, CacheDir $cache to each node"
	stage 1 >/dev/null # warm the page cache and the binaries, not timed
	for ((r = 0; r < N; r++)); do
		for ((j = 0; j < 3; j++)); do
			k=${counts[$(((r + j) % 3))]}
			read -r t b p < <(stage "$k")
			times[$k]+="$t "
			bytes[$k]=$b
			pulls[$k]=$p
		done
	done
	declare -A med
	local k
	for k in "${counts[@]}"; do
		# shellcheck disable=SC2086 # one time per word
		read -r -a s <<<"$(spread ${times[$k]})"
		med[$k]=${s[0]}
		printf '%-44s %6s ms  (%s-%s)  read from the source %s MB by %s pull(s)\n' \
			"cold staging on $k node(s) at once" "${s[0]}" "${s[1]}" "${s[2]}" \
			"$((${bytes[$k]} / 1048576))" "${pulls[$k]}"
	done
	printf '%-44s %6s x   (target <= 1.3)\n' "ratio 4 nodes / 1 node" "$(ratio "${med[4]}" "${med[1]}")"
	printf '%-44s %6s x\n' "ratio 2 nodes / 1 node" "$(ratio "${med[2]}" "${med[1]}")"
}
rounds_on local
# A shared CacheDir: one node converts under the digest's lock, the others
# wait for it and use its entry (tests/multinode/shared-cache.bats).
rounds_on shared
