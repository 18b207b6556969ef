#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	int rank, size, node, *nodes;
	const char *env = getenv("SLURM_NODEID");
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	node = env ? atoi(env) : -1;
	nodes = calloc((size_t)size, sizeof(*nodes));
	MPI_Allgather(&node, 1, MPI_INT, nodes, 1, MPI_INT, MPI_COMM_WORLD);
	int token = rank == 0 ? 1 : 0;
	if (rank > 0)
		MPI_Recv(&token, 1, MPI_INT, rank - 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	if (rank < size - 1)
		MPI_Send(&(int){token + 1}, 1, MPI_INT, rank + 1, 0, MPI_COMM_WORLD);
	if (rank == size - 1) {
		printf("ring size=%d token=%d nodes=", size, token);
		for (int i = 0; i < size; i++)
			printf("%s%d", i ? "," : "", nodes[i]);
		printf("\n");
	}
	fflush(stdout);
	free(nodes);
	/* Every rank is done talking after this barrier.  No MPI_Finalize:
	 * Debian 12's MPICH 4.0.2 (ch4:ucx over tcp) deadlocks in it about one
	 * run in three when the ranks share one kernel, with or without berth
	 * (3 of 8 plain `srun --mpi=pmi2 -N4 -n4` runs on the test cluster);
	 * PMI-1 does not require it. */
	MPI_Barrier(MPI_COMM_WORLD);
	_exit(0);
}
