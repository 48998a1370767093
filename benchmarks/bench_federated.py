"""Federated averaging vs regular learning: one round (= one epoch) with 10 clients, in both modes.

    python benchmarks/bench_federated.py [--rounds 3]

Prints the median training-pass time of each and its ratio to regular learning's. The issue's target:
within 1.10x of regular learning in either mode (the report: 2.71x).
"""

import argparse

from common import MPIRUN, PYTHON, compare


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each method")
    args = parser.parse_args()
    common = ["--test-subset", "1000"]
    compare({
        "regular": [PYTHON, "regular_learning.py", *common],
        "federated, one process": [PYTHON, "federated_learning.py", *common],
        "federated, 11 ranks": [MPIRUN, "-n", "11", PYTHON, "federated_learning.py", *common],
    }, args.rounds, baseline="regular")


if __name__ == "__main__":
    main()
