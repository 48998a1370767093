"""Backup workers against stragglers: sync SGD with the same number of workers, more or fewer of them awaited.

    python benchmarks/bench_sync_sgd.py [--workers 4] [--straggler-delay-ms 20] [--train-subset 12000]

Each worker's step is delayed by a seeded exponential delay (mean --straggler-delay-ms), so some are slow
each step; with b backup workers the server waits for only the first N = workers - b gradients. Prints, for
b = 0, 1, 2, the time per step and per epoch (every worker one pass over its shard: the same number of steps
whatever b), the gradients dropped, the images the applied gradients came from, and the test accuracy after
the epoch: what the time saved costs.
"""

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from common import MPIRUN, PYTHON, ROOT


def run(workers, backup, args):
    with tempfile.TemporaryDirectory() as results_dir:
        subprocess.run([MPIRUN, "-n", str(workers + 1), PYTHON, "sync_sgd.py", "--backup-workers", str(backup),
                        "--straggler-delay-ms", str(args.straggler_delay_ms), "--train-subset",
                        str(args.train_subset), "--test-subset", "1000", "--epochs", "1", "--no-progress",
                        "--results-dir", results_dir], cwd=ROOT, check=True, capture_output=True)
        saved = json.loads((Path(results_dir) / "sync_sgd.json").read_text())
        return {**saved["epochs"][0], "batch_size": saved["config"]["batch_size"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--workers", type=int, default=4, help="total workers (N + b)")
    parser.add_argument("--straggler-delay-ms", type=float, default=20.0, help="mean added delay per step")
    parser.add_argument("--train-subset", type=int, default=12000, help="training images per epoch")
    args = parser.parse_args()
    print(f"{args.workers} workers, straggler delay mean {args.straggler_delay_ms} ms, {args.train_subset} images")
    print(f"{'b':>2} {'N':>2} {'steps':>6} {'s/step':>8} {'s/epoch':>8} {'dropped':>8} {'images used':>12} "
          f"{'test acc':>9}")
    for backup in range(0, min(3, args.workers)):
        epoch = run(args.workers, backup, args)
        awaited = args.workers - backup
        images_used = epoch["steps"] * awaited * epoch["batch_size"]
        print(f"{backup:>2} {awaited:>2} {epoch['steps']:>6} {epoch['mean_step_time_s']:>8.4f} "
              f"{epoch['train_time_s']:>8.2f} {epoch['gradients_dropped']:>8} {images_used:>12} "
              f"{epoch['test_acc']:>9.4f}", flush=True)


if __name__ == "__main__":
    main()
