"""Federated averaging and synchronous SGD vs regular learning: one round (= one epoch) with 10 clients.

    python benchmarks/bench_federated.py [--rounds 3] [--cores 1,2]

Prints, for each core count, the median training-pass time of each and its ratio to regular learning's.
"""

from common import MPIRUN, PYTHON, bench_parser, compare_across_cores


def main():
    args = bench_parser(__doc__.splitlines()[0]).parse_args()
    common = ["--test-subset", "1000"]
    compare_across_cores({
        "regular": [PYTHON, "regular_learning.py", *common],
        "federated, one process": [PYTHON, "federated_learning.py", *common],
        "federated, 11 ranks": [MPIRUN, "-n", "11", PYTHON, "federated_learning.py", *common],
        "sync SGD, 11 ranks": [MPIRUN, "-n", "11", PYTHON, "sync_sgd.py", *common],
    }, args.rounds, "regular", args.cores)


if __name__ == "__main__":
    main()
