# Shared by the end-to-end tests: they run jobs as the unprivileged test user
# through the one-node cluster that tests/harness/cluster/start.sh brings up.
E2E_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E_HERE/../.." && pwd)
BERTH_CLUSTER_DIR=${BERTH_CLUSTER_DIR:-/var/tmp/berth-cluster}
SUBMIT="$REPO/tests/harness/cluster/submit.sh"
# squeue, scontrol and sinfo in the tests talk to this cluster, whoever
# started bats (Slurm 24.11+ clients would otherwise look for a DNS SRV
# record, and 22.05's for /etc/slurm/slurm.conf).
export SLURM_CONF=${SLURM_CONF:-$BERTH_CLUSTER_DIR/etc/slurm.conf}
# Images and job folders live where the test user may read them.
E2E_DIR=$BERTH_CLUSTER_DIR/e2e
IMAGES=$E2E_DIR/images

# as_user CMD...: run CMD as the test user with the cluster's SLURM_CONF.
as_user() {
	timeout "${E2E_TIMEOUT:-120}" "$SUBMIT" "$@"
}

# make_image NAME KIND [mkimage options]: build once per run, world-readable.
make_image() {
	local name=$1
	shift
	mkdir -p "$IMAGES"
	chmod 755 "$E2E_DIR" "$IMAGES"
	if [ ! -e "$IMAGES/$name" ]; then
		python3 "$REPO/tests/harness/fixtures/mkimage.py" "$@" "$IMAGES/$name.tmp" >/dev/null
		mv "$IMAGES/$name.tmp" "$IMAGES/$name"
	fi
	chmod 644 "$IMAGES/$name"
	echo "$IMAGES/$name"
}

# A fresh folder the test user owns, for job files and outputs.
job_dir() {
	local d
	d=$(mktemp -d "$E2E_DIR/job.XXXXXX")
	chown "${BERTH_TEST_USER:-berthtest}" "$d"
	echo "$d"
}

# The cluster must be up; a test run without it fails loudly, not silently.
require_cluster() {
	[ -r "$BERTH_CLUSTER_DIR/env" ] || {
		echo "no cluster: run tests/harness/cluster/start.sh (make cluster-start)" >&2
		return 1
	}
}

# wait_job_left N [TENTHS]: wait until job N has left the queue (default 120 s).
wait_job_left() {
	for _ in $(seq "${2:-1200}"); do
		squeue -h -j "$1" 2>/dev/null | grep -q . || return 0
		sleep 0.1
	done
	return 1
}

# Containers of job $1 still known to dockerd (any state).  DOCKER_CLI names
# the client: a file with a private dockerd sets a function of its own.
leftovers() { "${DOCKER_CLI:-docker}" ps -aq --filter "label=berth.job=$1"; }

# Wait up to 10 s for job $1's containers to be gone (the step's sweep runs
# as its slurmstepd ends, just after srun returns); show them if not.
gone_within_10s() {
	for _ in $(seq 100); do
		[ -z "$(leftovers "$1")" ] && return 0
		sleep 0.1
	done
	"${DOCKER_CLI:-docker}" ps -a --filter "label=berth.job=$1"
	return 1
}

# The cluster's singularity binary (berth.conf's SingularityPath).
cluster_singularity() {
	sed -n 's/^SingularityPath=//p' "$BERTH_CLUSTER_DIR/etc/berth.conf" | tail -n1
}

# True when that is Sylabs' SingularityCE (the matrix's setuid row), not
# Apptainer (the stand-in is Apptainer too).
singularity_ce() {
	! "$(cluster_singularity)" --version 2>/dev/null | grep -q '^apptainer'
}

# The cache artifact of a SIF berth makes for the cluster's singularity:
# its compression is in the name, zstd (Apptainer) being plain image.sif.
sif_leaf() {
	if singularity_ce; then echo image.lz4.sif; else echo image.sif; fi
}

# sif_compression SIF: the compression of its SquashFS partition, as the
# superblock says (gzip, lzma, lzo, xz, lz4, zstd).
sif_compression() {
	python3 - "$1" <<'PY'
import struct, sys
names = {1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}
with open(sys.argv[1], "rb") as f:
    data = f.read(1 << 20)
for off in range(32768, len(data) - 32, 4096):  # the partition is 4096-aligned
    if data[off:off + 4] == b"hsqs":
        print(names.get(struct.unpack_from("<H", data, off + 20)[0], "unknown"))
        break
PY
}

# The node completes what ran (within the kill timeout, 30 s here) and
# runs the test user's next job.
node_takes_next_job() {
	for _ in $(seq 300); do
		[ -z "$(squeue -h -t CG 2>/dev/null)" ] && break
		sleep 0.1
	done
	[ -z "$(squeue -h -t CG 2>/dev/null)" ]
	run as_user srun -t 1 true
	[ "$status" -eq 0 ]
}

# ---- the cluster's berth.conf ----------------------------------------------
# The plugin reads it at every step (srun at its start), so a test may
# change it and must put it back.  Every write is a file beside it renamed
# over it: a job's epilog never finds it missing or half written (a mv from
# another file system unlinks it first, and Slurm drains a node whose
# epilog fails).
BERTH_CONF=$BERTH_CLUSTER_DIR/etc/berth.conf

# conf_save: keep berth.conf as it is now for conf_restore (once per file:
# a later call keeps the first copy).  set_conf calls it.
conf_save() {
	[ -f "$BATS_FILE_TMPDIR/berth.conf.saved" ] || cp -p "$BERTH_CONF" "$BATS_FILE_TMPDIR/berth.conf.saved"
}

# set_conf KEY=VALUE...: each KEY's lines in berth.conf (any case) replaced
# by KEY=VALUE, until conf_restore.
set_conf() {
	local kv new=$BERTH_CONF.new.$$ drop=()
	conf_save
	[ $# -gt 0 ] || return 0
	for kv in "$@"; do drop+=(-e "^${kv%%=*}="); done
	{ grep -iv "${drop[@]}" "$BERTH_CONF"; printf '%s\n' "$@"; } >"$new"
	chmod 644 "$new" && mv -f "$new" "$BERTH_CONF"
}

# conf_restore: berth.conf as conf_save kept it (nothing when none was kept).
conf_restore() {
	local saved=$BATS_FILE_TMPDIR/berth.conf.saved new=$BERTH_CONF.restore.$$
	[ -f "$saved" ] || return 0
	cp -p "$saved" "$new" && mv -f "$new" "$BERTH_CONF"
}
