"""Helpers for the benchmarks: run a method's script for one epoch and read its own timing, on as many cores as
asked (``--cores 2,4,8,16``: each count's table comes from runs limited with ``taskset`` to the first n cores).

Every benchmark runs the methods it compares one after the other, several rounds, in one invocation, and
prints ratios, overall and round by round; each script times its epoch itself (``train_time_s`` in its
results file: the training pass without evaluation, which is what the methods differ in).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from splitlab.runs import MPIRUN  # noqa: F401  (the benchmarks' launcher, from here)

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def epoch_time(command, key="train_time_s"):
    """Run ``command`` (a list, ending with a script and its flags) for one epoch; its ``key`` in seconds.
    A command that fails ends the benchmark with its last lines of output."""
    # A failed MPI job's ranks may still be writing there while it is removed: that must not hide the failure.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as results_dir:
        command = [*command, "--epochs", "1", "--no-progress", "--results-dir", results_dir, "--run-name", "bench"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"error: this command failed (status {result.returncode}):\n  {' '.join(command)}\n"
                     + "\n".join(result.stderr.splitlines()[-15:]))
        return json.loads((Path(results_dir) / "bench.json").read_text())["epochs"][0][key]


def kernel_monitor_cpu_s():
    """CPU seconds used so far by the kernel's DAMON memory monitors (``kdamond`` threads), None if none run.

    Where DAMON watches physical memory, eleven active ranks cost it about ten times the CPU that two do, and
    it takes that CPU from the training (docs/findings.md, "Speed").
    """
    ticks, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        if text[text.index("(") + 1:text.rindex(")")].startswith("kdamond"):
            fields = text[text.rindex(")") + 2:].split()
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
            found = True
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


def ratio_table(times, baseline):
    """Lines of a table: per method the median time, its ratio to the baseline's median, the median of the
    ratios within each round, and those ratios. ``times`` maps names to equally long lists of seconds."""
    base = statistics.median(times[baseline])
    width = max(28, *map(len, times))
    lines = [f"{'method':<{width}} {'median s':>9} {'ratio':>7} {'by round':>9}   ratio in each round"]
    for name, values in times.items():
        per_round = [v / b for v, b in zip(values, times[baseline])]
        median = statistics.median(values)
        lines.append(f"{name:<{width}} {median:9.2f} {median / base:7.2f} {statistics.median(per_round):9.2f}   "
                     f"({', '.join(f'{r:.2f}' for r in per_round)})")
    return lines


def bench_parser(description, cores=True, no_doorbells=False):
    """The flags every ratio benchmark has (``--cores`` where it compares across core counts, ``--no-doorbells``
    where it runs MPI methods)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each method")
    if cores:
        parser.add_argument("--cores", default=None,
                            help="comma-separated core counts, e.g. 1,2 or 2,4,8,16: a table for each, every "
                                 "command limited with taskset to the first n cores (default: all cores, no taskset)")
    if no_doorbells:
        parser.add_argument("--no-doorbells", action="store_true",
                            help="also the MPI methods' 11-rank runs waiting as ranks on several hosts do "
                                 "(DOORBELLS=off)")
    return parser


def without_doorbells(commands):
    """The same commands, each named "..., no doorbells", with the ranks waiting as on several hosts."""
    return {f"{name}, no doorbells": ["env", "DOORBELLS=off", *command] for name, command in commands.items()}


def machine_cores():
    return len(os.sched_getaffinity(0))


def compare_across_cores(commands, rounds, baseline, cores=None):
    """:func:`compare` on each core count of ``cores`` (text such as "2,4,8"); counts above the machine's are
    skipped with a line that says so. "{cores}" in a command becomes the count (all the machine's without
    ``cores``)."""
    def on(count, command):
        return [part.replace("{cores}", str(count)) for part in command]

    if not cores:
        return {None: compare({name: on(machine_cores(), c) for name, c in commands.items()}, rounds, baseline)}
    tables = {}
    for count in [int(c) for c in cores.split(",")]:
        if count > machine_cores():
            print(f"\n== {count} cores: skipped, this machine has {machine_cores()}")
            continue
        print(f"\n== {count} cores (taskset -c 0-{count - 1})", flush=True)
        limited = {name: ["taskset", "-c", f"0-{count - 1}", *on(count, c)] for name, c in commands.items()}
        tables[count] = compare(limited, rounds, baseline)
    return tables


def compare(commands, rounds, baseline):
    """Time every command ``rounds`` times, interleaved; print medians, ratios to ``baseline``, and the ratio
    within each round (the machine's speed drifts between minutes, so a round's ratio is the fairer pair,
    and their median, "by round", the fairer summary)."""
    times = {name: [] for name in commands}
    monitor = {name: [] for name in commands}
    for r in range(rounds):
        for name, command in commands.items():
            before = kernel_monitor_cpu_s()
            times[name].append(epoch_time(command))
            if before is not None:
                monitor[name].append(kernel_monitor_cpu_s() - before)
            print(f"round {r + 1}: {name:<32} {times[name][-1]:6.2f} s", file=sys.stderr, flush=True)
    print("\n" + "\n".join(ratio_table(times, baseline)))
    if any(monitor.values()):
        print("\nCPU seconds the kernel's DAMON monitor (kdamond) used during each run, median: " +
              ", ".join(f"{name} {statistics.median(values):.2f}" for name, values in monitor.items()))
    return times
