"""Split learning vs regular learning: one full epoch each, side by side.

    python benchmarks/bench_split.py [--rounds 3] [--train-subset N]

Prints the median training-pass time of each and its ratio to regular learning's. The issue's target:
split learning with 11 ranks within 1.10x of regular learning.
"""

import argparse

from common import MPIRUN, PYTHON, compare


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each method")
    parser.add_argument("--train-subset", type=int, default=None, help="fewer training images, for a quick look")
    args = parser.parse_args()
    subset = ["--train-subset", str(args.train_subset)] if args.train_subset else []
    common = [*subset, "--test-subset", "1000"]
    compare({
        "regular": [PYTHON, "regular_learning.py", *common],
        "split, 2 ranks (1 client)": [MPIRUN, "-n", "2", PYTHON, "split_learning.py", *common],
        "split, 11 ranks (10 clients)": [MPIRUN, "-n", "11", PYTHON, "split_learning.py", *common],
    }, args.rounds, baseline="regular")


if __name__ == "__main__":
    main()
