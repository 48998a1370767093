"""Many clients on few ranks: vanilla split learning and FedAvg over MPI with 10 and with 1,000 clients on the
same 4 client ranks, one epoch (round) of the full data each; the epoch's time and the peak memory of all the
job's processes together (summed PSS, sampled every 0.2 s), side by side, as ratios to the 10-client run.

    python benchmarks/bench_scale.py                       # mpirun -n 5 ... --clients 10 and --clients 1000
    python benchmarks/bench_scale.py --clients 10,100,1000 --rounds 2

Issue 21's targets: 1,000 clients within 10 % of the memory and at most 1.3x the epoch of 10 clients.
"""

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import MPIRUN, PYTHON, ROOT, bench_parser

METHODS = {"split": ("split learning", "split_learning.py"), "fedavg": ("FedAvg over MPI", "federated_learning.py")}


def descendants(pid):
    """``pid`` and every process below it."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def pss_mb(pids):
    """The summed proportional set size of ``pids`` in MB (shared pages split among their sharers)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def run(script, clients, ranks):
    """One epoch of ``script`` with ``clients`` clients on ``ranks`` client ranks: (train_time_s, peak MB)."""
    with tempfile.TemporaryDirectory() as results_dir:
        command = [MPIRUN, "-n", str(ranks + 1), PYTHON, script, "--clients", str(clients), "--epochs", "1",
                   "--patience", "0", "--no-progress", "--results-dir", results_dir, "--run-name", "bench"]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = [0.0]

        def sample():
            while process.poll() is None:
                peak[0] = max(peak[0], pss_mb(descendants(process.pid)))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, stderr = process.communicate()
        sampler.join()
        if process.returncode != 0:
            sys.exit(f"error: this command failed (status {process.returncode}):\n  {' '.join(command)}\n"
                     + "\n".join(stderr.splitlines()[-15:]))
        return json.loads((Path(results_dir) / "bench.json").read_text())["epochs"][0]["train_time_s"], peak[0]


def main():
    parser = bench_parser(__doc__.splitlines()[0], cores=False)
    parser.add_argument("--clients", default="10,1000", help="comma-separated client counts; the first is the base")
    parser.add_argument("--ranks", type=int, default=4, help="client ranks (the job has one more)")
    parser.add_argument("--methods", default="split,fedavg", help=f"comma-separated, from {', '.join(METHODS)}")
    args = parser.parse_args()
    counts = [int(k) for k in args.clients.split(",")]
    methods = dict(METHODS[m] for m in args.methods.split(","))
    results = {(name, k): [] for name in methods for k in counts}
    for r in range(args.rounds):
        for name, script in methods.items():
            for k in counts:
                results[name, k].append(run(script, k, args.ranks))
                seconds, mb = results[name, k][-1]
                print(f"round {r + 1}: {name}, {k} clients: {seconds:.2f} s, {mb:,.0f} MB", file=sys.stderr,
                      flush=True)
    print(f"\n{args.ranks} client ranks + rank 0, one epoch of the full data, median of {args.rounds} round(s)")
    print(f"{'method':<18} {'clients':>7} {'train s':>8} {'x base':>7} {'peak PSS MB':>12} {'x base':>7}")
    for name in methods:
        base_s = statistics.median(s for s, _ in results[name, counts[0]])
        base_mb = statistics.median(mb for _, mb in results[name, counts[0]])
        for k in counts:
            seconds = statistics.median(s for s, _ in results[name, k])
            mb = statistics.median(m for _, m in results[name, k])
            print(f"{name:<18} {k:>7,} {seconds:8.2f} {seconds / base_s:7.2f} {mb:12,.0f} {mb / base_mb:7.2f}")


if __name__ == "__main__":
    main()
