"""The link estimate against an emulated link: each method is run on this machine as it is, and with every
message held back as over a network (``LINK=``, messaging.Link); link_estimate.py replays the plain run's trace
over the same link; the table gives the estimate, the emulated run's time and their ratio (medians of --rounds).

    python benchmarks/bench_link.py                                  # 10mbit,20ms and 1gbit,1ms
    python benchmarks/bench_link.py --links 100mbit,5ms --rounds 5
    python benchmarks/bench_link.py --methods split --links 1gbit,1ms --train-subset 6000   # a longer run

Times are rank 0's, from its first message to its last (the run after set-up): one epoch and the evaluations.
The last column is the spread of the plain runs themselves (slowest / fastest): a ratio off by less than that
is within what the machine varies by between runs.
"""

import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import MPIRUN, PYTHON, ROOT, bench_parser
from link_estimate import load_traces, replay, span
from splitlab.net.link import Link

METHODS = {"split": ("split learning", ["split_learning.py"]),
           "sflv2": ("SplitFed V2", ["split_learning.py", "--variant", "sflv2"]),
           "federated": ("FedAvg", ["federated_learning.py"]), "sync": ("sync SGD", ["sync_sgd.py"])}


def traced_run(argv, folder, data, link=None):
    """Run ``mpirun -n 3 python ARGV DATA`` (2 clients, one thread a rank, one epoch) with its trace in
    ``folder``; its traces."""
    Path(folder).mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CHANNEL_TRACE": str(folder), **({"LINK": link} if link else {})}
    subprocess.run([MPIRUN, "-n", "3", PYTHON, str(ROOT / argv[0]), *argv[1:], *data, "--epochs", "1",
                    "--patience", "0", "--no-progress", "--results-dir", str(folder)],
                   check=True, capture_output=True, cwd=ROOT, env=env)
    return load_traces(folder)


def main():
    parser = bench_parser(__doc__.splitlines()[0], cores=False)
    parser.add_argument("--links", default="10mbit,20ms,1gbit,1ms",
                        help="links to check, as LINK= takes them, comma-separated pairs")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--train-subset", type=int, default=600, help="training images (both clients together)")
    parser.add_argument("--test-subset", type=int, default=200, help="test images")
    args = parser.parse_args()
    texts, methods = args.links.split(","), args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or len(texts) % 2:
        parser.error(f"unknown methods {unknown} (choose from {', '.join(METHODS)})" if unknown
                     else "--links takes bandwidth,latency pairs")
    links = [f"{texts[i]},{texts[i + 1]}" for i in range(0, len(texts), 2)]
    data = ["--train-subset", str(args.train_subset), "--test-subset", str(args.test_subset)]
    print("| method | link | estimate (s) | emulated (s) | estimate / emulated | plain runs' spread |\n"
          "|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            name, argv = METHODS[method]
            for text in links:
                link = Link.parse(text)
                estimates, emulated, plain_spans = [], [], []
                for r in range(args.rounds):
                    plain = traced_run(argv, Path(tmp) / f"{method}-{text}-{r}-plain", data)
                    plain_spans.append(span(plain))
                    estimates.append(span(plain, replay(plain, (link.bits_per_s, link.latency_s))))
                    emulated.append(span(traced_run(argv, Path(tmp) / f"{method}-{text}-{r}-link", data, text)))
                estimate, measured = statistics.median(estimates), statistics.median(emulated)
                print(f"| {name} | {text} | {estimate:.2f} | {measured:.2f} | {estimate / measured:.2f} | "
                      f"{max(plain_spans) / min(plain_spans):.2f} |", flush=True)


if __name__ == "__main__":
    main()
