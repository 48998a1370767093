"""How long a run would take over a network: replay its message trace with every message crossing a link of
given bandwidth and latency, each rank's compute kept as measured.

    CHANNEL_TRACE=trace mpirun -n 3 python split_learning.py --train-subset 600 --epochs 1
    python link_estimate.py trace --link 10mbit,20ms --link 1gbit,1ms

A rank's trace (messaging.py, ``CHANNEL_TRACE``) is its sends and receives in time order; between them the rank
computes, and the replay keeps those gaps. A send goes onto the sender's link, one message at a time, each for
size / bandwidth, and arrives ``latency`` after its last byte left (messaging.Link, the model ``LINK=`` emulates);
a receive ends once its message has arrived (plus the copy it took in the measured run). Messages are matched in
MPI's order: the k-th send from a to b with tag t is the k-th receive at b from a with tag t. So what waits on
what comes from the run itself: vanilla split learning's round trips all lie on its critical path, FedAvg's
clients overlap, SplitFed sits between. Arrivals keep the measured run's order (SplitFed V2 and backup workers
could take another over a slow link), and a message counted but not sent (a hand-over within a rank) is free.
With no link the replay gives back the measured times.
"""

import argparse
import json
import sys
from pathlib import Path

from splitlab.net.link import Link


def load_traces(folder):
    """``{rank: [(kind, peer, tag, start, end, nbytes), ...]}``, the sends and receives of every rank's trace."""
    traces = {}
    for path in sorted(Path(folder).glob("rank-*.json")):
        trace = json.loads(path.read_text())
        traces[trace["rank"]] = [tuple(e) for e in trace["events"] if e[0] in ("send", "recv")]
    if not traces:
        raise FileNotFoundError(f"no rank-*.json in {folder}: run with CHANNEL_TRACE={folder}")
    return traces


def match_messages(traces):
    """For every receive ``(rank, index)``, the send ``(rank, index)`` of its message, in MPI's order."""
    sends = {}
    for rank, events in traces.items():
        for i, (kind, peer, tag, *_) in enumerate(events):
            if kind == "send":
                sends.setdefault((rank, peer, tag), []).append((rank, i))
    taken, match = {}, {}
    for rank, events in traces.items():
        for i, (kind, peer, tag, *_) in enumerate(events):
            if kind == "recv":
                key = (peer, rank, tag)
                k = taken[key] = taken.get(key, -1) + 1
                match[(rank, i)] = sends[key][k]
    return match


def replay(traces, link=None):
    """Each event's end time had every message crossed ``link`` (a ``(bits_per_s, latency_s)`` pair; None: none),
    as ``{rank: [end times]}``."""
    match = match_messages(traces)
    ends = {rank: [] for rank in traces}
    arrivals = {}  # send (rank, index) -> when its message arrives
    links = {rank: Link(*link) for rank in traces} if link else None  # each rank's own link
    progressed = True
    while progressed:
        progressed = False
        for rank, events in traces.items():
            done = ends[rank]
            while len(done) < len(events):
                i = len(done)
                kind, _, _, start, end, nbytes = events[i]
                begin = done[-1] + start - events[i - 1][4] if i else start  # after the measured compute gap
                if kind == "send":
                    arrivals[(rank, i)] = links[rank].arrival(nbytes, begin) if links else begin
                    done.append(begin + end - start)
                else:
                    sender = match[(rank, i)]
                    if sender not in arrivals:
                        break  # its message is not sent yet in the replay: another rank first
                    sent_at = traces[sender[0]][sender[1]][3]
                    copy = max(0.0, end - max(start, sent_at))  # what taking the message in took, measured
                    done.append(max(begin, arrivals[sender]) + copy)
                progressed = True
    stuck = [rank for rank in traces if len(ends[rank]) < len(traces[rank])]
    if stuck:
        raise ValueError(f"the traces of ranks {stuck} wait for messages no trace sent: not one run's traces")
    return ends


def span(traces, ends=None):
    """Seconds from rank 0's first message to its last (the run after set-up), as measured or as ``ends`` has it."""
    events = traces[0]
    last = ends[0][-1] if ends else events[-1][4]
    return last - events[0][3]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("trace", help="the CHANNEL_TRACE folder of a run (one rank-<r>.json a rank)")
    parser.add_argument("--link", action="append", default=[], metavar="BANDWIDTH,LATENCY",
                        help="a link to estimate for, as LINK= takes it (10mbit,20ms); repeatable")
    args = parser.parse_args()
    try:
        traces = load_traces(args.trace)
        links = [(text, Link.parse(text)) for text in args.link]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"measured: {span(traces):.2f} s from rank 0's first message to its last")
    for text, link in links:
        print(f"over {text}: {span(traces, replay(traces, (link.bits_per_s, link.latency_s))):.2f} s (estimate)")


if __name__ == "__main__":
    main()
