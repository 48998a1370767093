"""Helpers for the benchmarks: run a method's script for one epoch and read its own timing.

Every benchmark runs the methods it compares one after the other, several rounds, in one invocation, and
prints ratios of medians; each script times its epoch itself (``train_time_s`` in its results file: the
training pass without evaluation, which is what the methods differ in).
"""

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MPIRUN = str(Path(sys.executable).parent / "mpirun")


def epoch_time(command, key="train_time_s"):
    """Run ``command`` (a list, ending with a script and its flags) for one epoch; its ``key`` in seconds."""
    with tempfile.TemporaryDirectory() as results_dir:
        subprocess.run([*command, "--epochs", "1", "--no-progress", "--results-dir", results_dir,
                        "--run-name", "bench"], cwd=ROOT, check=True, capture_output=True, text=True)
        return json.loads((Path(results_dir) / "bench.json").read_text())["epochs"][0][key]


def compare(commands, rounds, baseline):
    """Time every command ``rounds`` times, interleaved; print medians and ratios to ``baseline``."""
    times = {name: [] for name in commands}
    for r in range(rounds):
        for name, command in commands.items():
            times[name].append(epoch_time(command))
            print(f"round {r + 1}: {name:<28} {times[name][-1]:6.2f} s", file=sys.stderr, flush=True)
    base = statistics.median(times[baseline])
    print(f"\n{'method':<28} {'median s':>9} {'ratio':>7}   (all rounds)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<28} {median:9.2f} {median / base:7.2f}   ({', '.join(f'{v:.2f}' for v in values)})")
    return times
