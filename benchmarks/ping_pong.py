"""Two ranks hand a cut-layer-sized array back and forth through messaging.Channel, each working a while before
it answers, as split learning's server and client do: the time from a send to the answer, less the work.

    mpirun -n 2 python benchmarks/ping_pong.py [--floats 75264] [--work-ms 3] [--rounds 200]
    DOORBELLS=off mpirun -n 2 python benchmarks/ping_pong.py      # the several-hosts waiting path

75,264 floats are one batch's activations at cut layer 1 (64 x 6 x 14 x 14). The work is a busy loop, so the
two ranks need a core each to measure the waiting alone.
"""

import argparse
import statistics
import sys
import time

import numpy as np
from mpi4py import MPI

from splitlab.net.messaging import Channel


def busy(seconds):
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--floats", type=int, default=64 * 6 * 14 * 14, help="floats in each message")
    parser.add_argument("--work-ms", type=float, default=3.0, help="each rank's work before it answers")
    parser.add_argument("--rounds", type=int, default=200, help="round trips timed")
    args = parser.parse_args()
    if MPI.COMM_WORLD.Get_size() != 2:
        sys.exit("error: run it with mpirun -n 2")
    channel = Channel(MPI.COMM_WORLD)
    peer, received, trips = 1 - channel.rank, np.empty(args.floats, np.float32), []
    for _ in range(args.rounds):
        if channel.rank == 1:
            busy(args.work_ms / 1e3)
            sent = time.perf_counter()
            channel.send(np.ones(args.floats, np.float32), peer, 10)
            channel.recv(received, peer, 11)
            trips.append(time.perf_counter() - sent)
        else:
            channel.recv(received, peer, 10)
            busy(args.work_ms / 1e3)
            channel.send(np.ones(args.floats, np.float32), peer, 11)
    channel.flush()
    if channel.rank == 1:
        waiting = "doorbells" if channel.bells.enabled else "no doorbells"
        median, slowest = (statistics.median(trips) * 1e3 - args.work_ms), (max(trips) * 1e3 - args.work_ms)
        print(f"{waiting}, {args.floats} floats, {args.work_ms} ms of work: round trip less the work, median "
              f"{median:.2f} ms, slowest {slowest:.2f} ms")


if __name__ == "__main__":
    main()
