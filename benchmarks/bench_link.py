"""The link estimate against an emulated link: each method is run on this machine as it is, and with every
message held back as over a network (``LINK=``, messaging.Link); link_estimate.py replays the plain run's trace
over the same link; the table gives the estimate, the emulated run's time and their ratio (medians of --rounds).

    python benchmarks/bench_link.py                                  # 10mbit,20ms and 1gbit,1ms
    python benchmarks/bench_link.py --links 100mbit,5ms --rounds 5

Times are rank 0's, from its first message to its last (the run after set-up): one epoch and the evaluations.
"""

import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import MPIRUN, PYTHON, ROOT, bench_parser
from link_estimate import load_traces, replay, span
from messaging import Link

SMALL = ["--epochs", "1", "--train-subset", "600", "--test-subset", "200", "--patience", "0", "--no-progress"]
METHODS = {"split learning": ["split_learning.py"], "SplitFed V2": ["split_learning.py", "--variant", "sflv2"],
           "FedAvg": ["federated_learning.py"], "sync SGD": ["sync_sgd.py"]}


def traced_run(argv, folder, link=None):
    """Run ``mpirun -n 3 python ARGV`` (2 clients, one thread a rank) with its trace in ``folder``; its traces."""
    Path(folder).mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CHANNEL_TRACE": str(folder), **({"LINK": link} if link else {})}
    subprocess.run([MPIRUN, "-n", "3", PYTHON, str(ROOT / argv[0]), *argv[1:], *SMALL, "--results-dir", str(folder)],
                   check=True, capture_output=True, cwd=ROOT, env=env)
    return load_traces(folder)


def main():
    parser = bench_parser(__doc__.splitlines()[0], cores=False)
    parser.add_argument("--links", default="10mbit,20ms,1gbit,1ms",
                        help="links to check, as LINK= takes them, comma-separated pairs")
    args = parser.parse_args()
    texts = args.links.split(",")
    links = [f"{texts[i]},{texts[i + 1]}" for i in range(0, len(texts), 2)]
    print(f"| method | link | estimate (s) | emulated (s) | estimate / emulated |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in METHODS.items():
            for text in links:
                link = Link.parse(text)
                estimates, emulated = [], []
                for r in range(args.rounds):
                    plain = traced_run(argv, Path(tmp) / f"{name}-{text}-{r}-plain")
                    estimates.append(span(plain, replay(plain, (link.bits_per_s, link.latency_s))))
                    emulated.append(span(traced_run(argv, Path(tmp) / f"{name}-{text}-{r}-link", text)))
                estimate, measured = statistics.median(estimates), statistics.median(emulated)
                print(f"| {name} | {text} | {estimate:.2f} | {measured:.2f} | {estimate / measured:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
