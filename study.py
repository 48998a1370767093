"""The study: every method x data partitions x seeds, each run a separate process, resumable.

    python study.py                     # the default study (docs/findings.md, "Non-IID data"), into results/study/
    python study.py --methods split,federated --partitions iid,0.1 --seeds 0 --epochs 2   # a quick look
    python plot_results.py --study results/study                                         # results/noniid.png
    python study.py --methods split,federated --clients 10,100,1000 --client-ranks 4     # many clients (make scale)

Partitions are ``iid`` or a Dirichlet concentration alpha (smaller: more skewed shards). Regular learning has
no data holders, so it runs once per seed (under ``iid``). With several ``--clients`` values every method runs at
each (its name ends ``-k<K>`` where K is not 10); MPI runs place the K clients on at most ``--client-ranks``
ranks (placement.py). A run whose results file says it finished is
skipped, and one cut short goes on from its last finished epoch (``--resume``), so an interrupted study resumes
where it stopped. Runs under MPI take every
core and go one at a time; single-process runs go ``--jobs`` at a time, with the cores shared among them.
Each progress line prints the command that repeats that run alone.
"""

import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from splitlab.net.process_policy import threads_per_job
from splitlab.runs import (
    GRID_CLIENTS,
    GRID_VALIDATION,
    METHODS,
    MPIRUN,
    comma_list,
    is_finished,
    partition_value,
    read_run,
    resume_flags,
    run_name,
    same_settings,
    seed_value,
)

ROOT = Path(__file__).resolve().parent
# SFLV1 is FedAvg computed in two parts (the same numbers: tests/test_split_variants.py), so the default study
# runs FedAvg and leaves SFLV1 out; U-shaped is left out to keep the study within an hour on 2 cores.
# --methods can name either.
DEFAULT_METHODS = ["regular", "split", "sflv2", "federated", "sync_sgd"]
DEFAULT_PARTITIONS = "iid,1.0,0.5,0.1"


def method_name(text):
    if text not in METHODS:
        raise argparse.ArgumentTypeError(f"unknown method {text!r}; choose from {', '.join(METHODS)}")
    return text


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--methods", type=comma_list(method_name), default=DEFAULT_METHODS, metavar="LIST",
        help=f"comma-separated, from {', '.join(METHODS)}")
    add("--partitions", type=comma_list(partition_value), default=DEFAULT_PARTITIONS.split(","), metavar="LIST",
        help="comma-separated: iid and/or Dirichlet alphas")
    add("--seeds", type=comma_list(seed_value), default=[0, 1, 2], metavar="LIST", help="comma-separated seeds")
    add("--epochs", type=int, default=5, help="epochs (FedAvg: rounds) of every run; patience 0, so all run")
    add("--clients", type=comma_list(int), default=[10], metavar="LIST",
        help="comma-separated numbers of data holders")
    add("--client-ranks", type=int, default=10,
        help="MPI runs: the K clients on min(K, this) ranks after rank 0")
    add("--jobs", type=int, default=max(1, len(os.sched_getaffinity(0))),
        help="single-process runs at the same time (MPI runs always go alone)")
    add("--validation", type=int, default=GRID_VALIDATION, metavar="N",
        help="training images each run holds out as its validation set (the same for every method of a seed), which "
             "chooses the epoch each report and the map read; the test set chooses nothing. 0: as the report, the "
             "test set chooses")
    add("--results-dir", default="results/study")
    add("--extra", default="", help="more flags for every run, e.g. '--train-subset 3000 --test-subset 1000'")
    add("--dry-run", action="store_true", help="print the runs and their commands, run nothing")
    return parser


class Run:
    """One experiment of the grid: its name, its command, and its results file."""

    def __init__(self, method, partition, seed, clients, args):
        self.method, self.partition, self.seed, self.clients = method, partition, seed, clients
        script, extra, self.mpi = METHODS[method].script, METHODS[method].flags, METHODS[method].mpi
        self.name = run_name(method, partition, seed, clients)
        self.path = Path(args.results_dir) / f"{self.name}.json"
        flags = ["--seed", str(seed), "--epochs", str(args.epochs), "--patience", "0", "--no-progress",
                 "--results-dir", args.results_dir, "--run-name", self.name, *extra, *shlex.split(args.extra)]
        if args.validation:  # without it, runs made before the flag existed still count as this grid's
            flags += ["--validation", str(args.validation)]
        if method != "regular":
            flags += ["--partition", "iid"] if partition == "iid" else ["--partition", "dirichlet", "--alpha", partition]
        ranks = min(clients, args.client_ranks) if self.mpi else 0
        if method == "federated" or (method != "regular" and clients != ranks):
            flags += ["--clients", str(clients)]  # MPI runs with a client a rank need not say it (the default)
        self.flags = flags
        python = sys.executable
        if self.mpi:
            self.command, self.env = [MPIRUN, "-n", str(ranks + 1), python, script, *flags], {}
        else:  # share the cores among the runs that go at once (the thread count is part of the command)
            threads = threads_per_job(args.jobs)
            self.command, self.env = [python, script, *flags], {"OMP_NUM_THREADS": str(threads)}

    def shell_line(self):
        return " ".join([*(f"{k}={v}" for k, v in self.env.items()), *map(shlex.quote, self.command)])

    def finished(self):
        """True when the results file is of a finished run made with this run's flags (an earlier study with
        other --epochs or --extra under the same name does not count)."""
        saved = read_run(self.path)
        return is_finished(saved) and same_settings(self.flags, saved.get("config", {}))

    def execute(self):
        start = time.perf_counter()
        result = subprocess.run(self.command + resume_flags(self.path, self.flags), cwd=ROOT,
                                env={**os.environ, **self.env}, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            return elapsed, f"FAILED (status {result.returncode}: {tail})"
        best = json.loads(self.path.read_text())["best"]
        if "val_acc" in best:  # the validation set chose the epoch: say so, beside the test accuracy there
            return elapsed, (f"test accuracy {best['test_acc']:.1%} at epoch {best['epoch']}, chosen on validation "
                             f"({best['val_acc']:.1%})")
        return elapsed, f"best test accuracy {best['test_acc']:.1%} (epoch {best['epoch']})"


def grid(args):
    """Every run of the study, MPI runs first (they go one at a time)."""
    cells = {(method, "iid" if method == "regular" else partition, seed, GRID_CLIENTS if method == "regular" else clients)
             for method, partition, seed, clients in itertools.product(args.methods, args.partitions, args.seeds,
                                                                       args.clients)}
    order = {}
    for name in [*args.methods, "iid", *args.partitions]:
        order.setdefault(name, len(order))
    runs = [Run(*cell, args) for cell in sorted(cells, key=lambda c: (order[c[0]], order[c[1]], c[2], c[3]))]
    return sorted(runs, key=lambda run: not run.mpi)


def main():
    args = build_parser().parse_args()
    if args.jobs < 1 or args.epochs < 1 or args.client_ranks < 1 or min(args.clients) < 1:
        build_parser().error("--jobs, --epochs, --clients and --client-ranks must be at least 1")
    runs = grid(args)
    todo = [run for run in runs if not run.finished()]
    print(f"study: {len(runs)} runs, {len(runs) - len(todo)} already finished, {len(todo)} to go "
          f"(results in {args.results_dir})", flush=True)
    if args.dry_run:
        for run in todo:
            print(run.shell_line())
        return
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    start, done, failed = time.perf_counter(), 0, 0

    def report(run, elapsed, outcome):
        nonlocal done, failed
        done += 1
        failed += outcome.startswith("FAILED")
        spent = time.perf_counter() - start
        left = spent / done * (len(todo) - done)
        print(f"[{done}/{len(todo)}] {run.name}: {outcome} in {elapsed:.0f} s; about {left / 60:.0f} min left\n"
              f"    {run.shell_line()}", flush=True)

    for run in [r for r in todo if r.mpi]:
        report(run, *run.execute())
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run.execute): run for run in todo if not run.mpi}
        for future in as_completed(futures):
            report(futures[future], *future.result())
    print(f"study done in {(time.perf_counter() - start) / 60:.1f} min; {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
