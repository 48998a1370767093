"""Run an MPI method across several hosts made on this machine, with rate-limited links (needs root).

The hosts are network namespaces, each with its own hostname and a link limited by tc (splitlab/net/hosts.py).

    python hosts.py --ranks 1,2,2 --rate 10mbit split_learning.py --clients 6 --epochs 1
    python hosts.py --ranks 1,1,1,1 --rate 100mbit federated_learning.py --mpi

``--ranks`` says how many ranks each host runs (rank 0, the server, on the first). The script's own flags
follow its name. The run's results file names each rank's host (``environment.hosts``); everything made for the
run is removed when it ends, on failure and on Ctrl-C too. To run on real machines instead: README, "Across
machines".
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys

from splitlab.net.hosts import Hosts


def ranks_per_host(text):
    counts = [int(n) for n in text.split(",")] if all(n.strip().isdigit() for n in text.split(",")) else []
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected counts such as 1,2,2, the first at least 1 (rank 0)")
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--ranks", type=ranks_per_host, default="1,1,1",
                        help="ranks on each host, comma-separated (one host per number)")
    parser.add_argument("--rate", default=None, help="each host's link in each direction, e.g. 10mbit (None: "
                        "unlimited)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way latency between hosts (needs netem)")
    parser.add_argument("script", help="the MPI method to run, e.g. split_learning.py")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="the script's own flags")
    args = parser.parse_args()
    # Ctrl-C tears the hosts down even where this was started with SIGINT ignored (a shell's background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    try:
        with Hosts(len(args.ranks), rate=args.rate, delay_s=args.delay_ms / 1000) as hosts:
            print(f"hosts: {', '.join(f'{name} ({n} ranks)' for name, n in zip(hosts.names, args.ranks))}"
                  f"{f', links of {args.rate}' if args.rate else ''}", flush=True)
            command = hosts.mpiexec(args.ranks, [sys.executable, args.script] + args.flags, mpiexec=mpiexec)
            status = subprocess.run(command, env=hosts.environment()).returncode
    except (RuntimeError, ValueError) as exc:  # HostsUnavailable, or an ip or tc command refused
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the hosts are removed", file=sys.stderr)
        sys.exit(130)
    sys.exit(status)


if __name__ == "__main__":
    main()
