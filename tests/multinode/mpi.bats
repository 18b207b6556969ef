#!/usr/bin/env bats
# A small MPI job through berth across the 4 nodes: tests/multinode/ring.c,
# built with the host's MPICH into an image (mpi-image.sh), started by
# `srun --mpi=pmi2` (Debian 12's Slurm has pmi2 and pmix; MPICH's PMI
# client speaks to pmi2).  Each rank passes a token on to the next, so ranks
# on different nodes talk; all ranks gather their SLURM_NODEID.
# UCX_TLS=tcp,self: the test nodes share one kernel, so UCX takes the ranks
# for neighbours and would use shared memory through /proc/PID/fd, which the
# containers' user namespaces refuse ("Shared memory error"); real nodes
# talk over the network anyway.  Docker cannot run it: a task in a Docker
# container is dockerd's child and does not inherit srun's PMI_FD.

load helpers

setup_file() {
	require_mcluster
	mkdir -p "$IMAGES"
	# named after what it is built from, so an edit makes a new one
	MPI_IMG=$IMAGES/mpi-$(cat "$BATS_TEST_DIRNAME/ring.c" "$BATS_TEST_DIRNAME/mpi-image.sh" |
		sha256sum | cut -c1-12).tar
	if [ ! -e "$MPI_IMG" ]; then
		bash "$BATS_TEST_DIRNAME/mpi-image.sh" "$MPI_IMG.tmp"
		mv "$MPI_IMG.tmp" "$MPI_IMG"
	fi
	chmod 644 "$MPI_IMG"
	export MPI_IMG
}

setup() {
	for n in $(seq "$NODES"); do "$MNODE" set-cache "bn$n" local; done
}

ring() {
	UCX_TLS=tcp,self BERTH_SUBMIT_ENV=UCX_TLS \
		run as_user srun --mpi=pmi2 -N "$NODES" -n "$NODES" --container-runtime="$1" \
		--container-image="$MPI_IMG" ring
	echo "$output"
	[ "$status" -eq 0 ]
	nodes=$(seq -s, 0 $((NODES - 1)))
	grep -qx "ring size=$NODES token=$NODES nodes=$nodes" <<<"$output"
}

@test "[charliecloud] MPI: a token passed rank to rank across 4 nodes, srun --mpi=pmi2" {
	ring charliecloud
}

@test "[singularity] MPI: a token passed rank to rank across 4 nodes, srun --mpi=pmi2" {
	ring singularity
}
