"""Federated averaging and synchronous SGD vs regular learning: one round (= one epoch) with 10 clients.

    python benchmarks/bench_federated.py [--rounds 3] [--cores 1,2] [--no-doorbells]

Prints, for each core count, the median training-pass time of each and its ratio to regular learning's.
``--no-doorbells`` adds both MPI methods waiting as ranks on several hosts do (``DOORBELLS=off``).
"""

from common import MPIRUN, PYTHON, bench_parser, compare_across_cores, without_doorbells


def main():
    args = bench_parser(__doc__.splitlines()[0], no_doorbells=True).parse_args()
    common = ["--test-subset", "1000"]
    mpi = {"federated, 11 ranks": [MPIRUN, "-n", "11", PYTHON, "federated_learning.py", *common],
           "sync SGD, 11 ranks": [MPIRUN, "-n", "11", PYTHON, "sync_sgd.py", *common]}
    commands = {"regular": [PYTHON, "regular_learning.py", *common],
                "federated, one process": [PYTHON, "federated_learning.py", *common], **mpi}
    if args.no_doorbells:
        commands.update(without_doorbells(mpi))
    compare_across_cores(commands, args.rounds, "regular", args.cores)


if __name__ == "__main__":
    main()
