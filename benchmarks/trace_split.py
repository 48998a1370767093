"""Where a split-learning batch's time goes: one epoch traced on every rank, per-batch medians printed.

    python benchmarks/trace_split.py [--ranks 11] [--train-subset N] [--threads K]

Runs vanilla split learning for one epoch with ``CHANNEL_TRACE`` set, so every rank records when it sent each
message and how long it waited for each (messaging.Channel; ``time.perf_counter`` is one clock for all the
processes of a host). Prints, over the training batches: the server's compute per batch (from the smashed
data's arrival to the cut gradient's send), the client's (from the cut gradient's arrival to the next batch's
send: its backward pass, step and next forward pass), the two hand-overs (send to the receiver's wake-up,
where the receiver was already waiting), and the server's stalls (batches over 3x the median). Run it at each
core count with ``taskset -c 0-(n-1)`` in front to see what changes as cores are added.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import MPIRUN, PYTHON, ROOT
from splitlab.net.protocol import SERVER, Tag


def load_traces(folder):
    """Each rank's events as (event, peer, tag, start, end), the waits that only re-check a message just
    waited for (a receive's own look, after the caller's) left out."""
    traces = {}
    for path in Path(folder).glob("rank-*.json"):
        trace = json.loads(path.read_text())
        events, last = [], None
        for event in map(tuple, trace["events"]):
            if not (event[0] == "wait" and last and last[0] == "wait" and last[1:3] == event[1:3]):
                events.append(event)
            last = event
        traces[trace["rank"]] = events
    return traces


def following(events, index, event, tag):
    """The first event after ``events[index]`` of kind ``event`` and ``tag``, unless a wait comes first."""
    for later in events[index + 1:]:
        if later[0] == event and later[2] == tag:
            return later
        if later[0] == "wait":
            return None
    return None


def hand_overs(sender_events, receiver_events, sender, tag):
    """Seconds from each send of ``tag`` to the receiver's wake-up, where the receiver was waiting already."""
    waits = [e for e in receiver_events if e[0] == "wait" and e[1] == sender and e[2] == tag]
    latencies = []
    for send in (e for e in sender_events if e[0] == "send" and e[2] == tag):
        wait = next((w for w in waits if w[4] >= send[3]), None)
        if wait and wait[3] <= send[3]:
            latencies.append(wait[4] - send[3])
    return latencies


def analyse(traces):
    server = traces[SERVER]
    server_compute = [send[3] - wait[4] for i, wait in enumerate(server)
                      if wait[0] == "wait" and wait[2] == Tag.SMASHED
                      and (send := following(server, i, "send", Tag.CUT_GRAD))]
    client_compute, to_server, to_client = [], [], []
    for rank, events in traces.items():
        if rank == SERVER:
            continue
        client_compute += [send[3] - wait[4] for i, wait in enumerate(events)
                           if wait[0] == "wait" and wait[2] == Tag.CUT_GRAD
                           and (send := following(events, i, "send", Tag.SMASHED))]
        to_server += hand_overs(events, server, rank, Tag.SMASHED)
        to_client += hand_overs(server, events, SERVER, Tag.CUT_GRAD)
    return {"server compute per batch": server_compute, "client backward, step, next forward": client_compute,
            "hand-over client to server": to_server, "hand-over server to client": to_client}


def report(spans):
    lines = [f"{'span':<38} {'batches':>8} {'median ms':>10} {'total s':>8}"]
    for name, values in spans.items():
        if values:
            lines.append(f"{name:<38} {len(values):>8} {1e3 * statistics.median(values):>10.3f} {sum(values):>8.2f}")
    server = spans["server compute per batch"]
    if server:
        median = statistics.median(server)
        stalls = [v for v in server if v > 3 * median]
        lines.append(f"server stalls (batches over 3x the median): {len(stalls)}, "
                     f"{sum(stalls) - len(stalls) * median:.2f} s over the median")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--ranks", type=int, default=11, help="MPI ranks (1 server and ranks - 1 clients)")
    parser.add_argument("--train-subset", type=int, default=None, help="fewer training images, for a quick look")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per rank (OMP_NUM_THREADS; default: as process_policy.py decides)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {"CHANNEL_TRACE": folder, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
        subset = ["--train-subset", str(args.train_subset)] if args.train_subset else []
        command = [MPIRUN, "-n", str(args.ranks), PYTHON, "split_learning.py", *subset, "--test-subset", "1000",
                   "--leakage-images", "0", "--epochs", "1", "--no-progress", "--results-dir", folder]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                env={**os.environ, **env})
        if result.returncode != 0:
            sys.exit(f"error: split learning failed:\n{result.stderr[-2000:]}")
        run = json.loads((Path(folder) / "split.json").read_text())
        print(f"{args.ranks} ranks, threads per rank {run['environment']['rank_threads']}; "
              f"training pass {run['epochs'][0]['train_time_s']:.2f} s")
        print("\n".join(report(analyse(load_traces(folder)))))


if __name__ == "__main__":
    main()
