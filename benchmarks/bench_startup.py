"""What a short training process spends starting, with torch.compile's machinery kept out (eager.py) and let in.

    python benchmarks/bench_startup.py [--rounds 5]

Each round runs regular learning for one epoch on 64 images twice, in turns: as a user runs it, and with
torch._dynamo imported first, as it was before eager.py (torch 2.14.1 imported it on the optimizer's first call).
CPU seconds are the process's own, user and system (``resource.getrusage`` of the child); the ratio is of the
medians.
"""

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile

import torch

from common import PYTHON, ROOT

RUN = ["--train-subset", "64", "--test-subset", "64", "--epochs", "1", "--no-progress"]
WITH_DYNAMO = ["-c", "import runpy, sys; import torch._dynamo; sys.argv = sys.argv[1:]; "
                     "runpy.run_path(sys.argv[0], run_name='__main__')"]


def cpu_seconds(command):
    """Run ``command``; its CPU seconds, user and system."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as results_dir:
        subprocess.run([*command, *RUN, "--results-dir", results_dir], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each (default 5)")
    args = parser.parse_args()
    eager, compiled = [], []
    for r in range(args.rounds):
        eager.append(cpu_seconds([PYTHON, "regular_learning.py"]))
        compiled.append(cpu_seconds([PYTHON, *WITH_DYNAMO, "regular_learning.py"]))
        print(f"round {r + 1}: as run {eager[-1]:.2f} CPU-s, torch._dynamo imported {compiled[-1]:.2f} CPU-s",
              file=sys.stderr, flush=True)
    eager_s, compiled_s = statistics.median(eager), statistics.median(compiled)
    print(f"a one-epoch run on 64 images: {eager_s:.2f} CPU-s as run, {compiled_s:.2f} with torch._dynamo imported "
          f"(medians of {args.rounds}, torch {torch.__version__}): ratio {eager_s / compiled_s:.2f}, "
          f"{compiled_s - eager_s:.2f} CPU-s a process")


if __name__ == "__main__":
    main()
