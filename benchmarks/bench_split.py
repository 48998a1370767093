"""Split learning and its variants vs regular learning: one full epoch each, side by side.

    python benchmarks/bench_split.py [--rounds 3] [--cores 1,2] [--train-subset N] [--variants] [--all-cores]
                                     [--no-doorbells]

Prints, for each core count, the median training-pass time of each and its ratio to regular learning's,
overall and by round. docs/findings.md, "Speed", has the table. ``--all-cores`` adds 11-rank split learning with
every rank on all the cores and sleeping while it waits (the thread setting before process_policy.py), for a
side-by-side comparison with the policy; ``--no-doorbells`` adds 11-rank split learning waiting as ranks on
several hosts do (``DOORBELLS=off``: polling with a growing sleep, no doorbells).
"""

from common import MPIRUN, PYTHON, bench_parser, compare_across_cores, without_doorbells


def main():
    parser = bench_parser(__doc__.splitlines()[0], no_doorbells=True)
    parser.add_argument("--train-subset", type=int, default=None, help="fewer training images, for a quick look")
    parser.add_argument("--variants", action="store_true", help="also SplitFed V1, V2 and U-shaped with 11 ranks")
    parser.add_argument("--all-cores", action="store_true",
                        help="also split learning with 11 ranks, every rank on all the cores (OMP_NUM_THREADS)")
    args = parser.parse_args()
    subset = ["--train-subset", str(args.train_subset)] if args.train_subset else []
    common = [*subset, "--test-subset", "1000", "--leakage-images", "0"]
    split = [MPIRUN, "-n", "11", PYTHON, "split_learning.py", *common]
    commands = {
        "regular": [PYTHON, "regular_learning.py", *subset, "--test-subset", "1000"],
        "split, 2 ranks (1 client)": [MPIRUN, "-n", "2", PYTHON, "split_learning.py", *common],
        "split, 11 ranks (10 clients)": split,
    }
    if args.all_cores:
        commands["split, 11 ranks, all cores each"] = ["env", "OMP_NUM_THREADS={cores}", *split]
    if args.no_doorbells:
        commands.update(without_doorbells({"split, 11 ranks": split}))
    if args.variants:
        commands.update({f"{variant}, 11 ranks": [*split, "--variant", variant]
                         for variant in ("sflv1", "sflv2", "u-shaped")})
    compare_across_cores(commands, args.rounds, "regular", args.cores)


if __name__ == "__main__":
    main()
