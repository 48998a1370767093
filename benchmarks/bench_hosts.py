"""Time over a real network against time modelled: each method on hosts made on this machine (network namespaces
with tc-limited links, splitlab/net/hosts.py), beside link_estimate.py's replay of a one-host trace and the
decision map's epoch time for the same placement (every client on a host of its own). Needs root.

    sudo .venv/bin/python benchmarks/bench_hosts.py                     # 10 and 100 Mbit/s, 3 clients
    python benchmarks/bench_hosts.py --rates 10mbit --clients 3 --train-subset 1920

Each run trains 4 epochs (FedAvg: rounds) on ``--train-subset`` images with one thread a rank; the median of
its last three is compared (the first warms up). Columns: the epoch's training time measured over the namespaces
(``train_time_s``), the decision model's ``epoch_seconds`` for it (each role's batch timed here), and the
training span of the namespace run's own trace beside link_estimate's replay of the one-host run's trace over
a link of that rate. Writes a markdown table to ``--out``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import link_estimate  # noqa: E402
from splitlab.costs import decision  # noqa: E402
from splitlab.net.hosts import Hosts  # noqa: E402
from splitlab.net.link import bits_per_second  # noqa: E402
from splitlab.runs import MPIRUN  # noqa: E402

METHODS = {"split": ("vanilla", ["split_learning.py"]),
           "sflv2": ("sflv2", ["split_learning.py", "--variant", "sflv2"]),
           "fedavg": ("fedavg", ["federated_learning.py"])}
EPOCHS = 4  # of every run (FedAvg: rounds); the first warms up, the median of the others is compared


def run(launch, script, flags, folder, env):
    """Run ``launch + script + flags`` with its results and trace in ``folder``: the median training time of its
    epochs after the first (which warms up), and its traces."""
    trace = folder / "trace"
    trace.mkdir(parents=True)
    command = launch + [sys.executable, *script, *flags, "--epochs", str(EPOCHS), "--patience", "9", "--no-progress",
                        "--results-dir", str(folder), "--run-name", "run"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            env={**env, "OMP_NUM_THREADS": "1", "CHANNEL_TRACE": str(trace)})
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n" + "\n".join(result.stderr.splitlines()[-15:]))
    epochs = json.loads((folder / "run.json").read_text())["epochs"]
    return statistics.median(e["train_time_s"] for e in epochs[1:]), link_estimate.load_traces(trace)


def round_trip_ms(rate, floats=64 * 6 * 14 * 14):
    """The median round trip of one batch's activations (cut 1) between two hosts over ``rate`` links, in ms
    (benchmarks/ping_pong.py, no work between)."""
    with Hosts(2, rate=rate) as hosts:
        command = hosts.mpiexec([1, 1], [sys.executable, "benchmarks/ping_pong.py", "--floats", str(floats),
                                         "--work-ms", "0", "--rounds", "30"], mpiexec=MPIRUN)
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=hosts.environment())
    if result.returncode != 0:
        sys.exit(f"error: the ping-pong failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.split("median ")[1].split(" ms")[0])


# A TCP receiver and a sender for into_host_ms, each run in a host's namespace.
SINK = """import socket
server = socket.create_server(("", {port}))
connection, _ = server.accept()
while connection.recv(1 << 16):
    pass"""
SEND = """import socket, time
connection = socket.create_connection(("{address}", {port}), timeout=60)
start = time.perf_counter()
connection.sendall(bytes({size}))
connection.shutdown(socket.SHUT_WR)
connection.recv(1)  # the receiver has read everything and closed
print(time.perf_counter() - start)"""


def into_host_ms(rate, size=300_000, reverse_size=3_000_000, repeats=3):
    """``size`` bytes over TCP into a host, alone and while that host sends ``reverse_size`` bytes to a third: the
    medians of ``repeats`` in ms. A link is full duplex for TCP when the two agree (its acknowledgements do not
    wait behind the data going out)."""
    def in_host(host, code):
        return subprocess.Popen(["ip", "netns", "exec", host, sys.executable, "-c", code], stdout=subprocess.PIPE,
                                text=True)

    times = {False: [], True: []}
    with Hosts(3, rate=rate) as hosts:
        (receiver, sender, third), port = hosts.names, 5000
        for _ in range(repeats):
            for reverse in times:
                port += 2
                sinks = [in_host(receiver, SINK.format(port=port)), in_host(third, SINK.format(port=port + 1))]
                time.sleep(0.5)  # the receivers listen
                outgoing = in_host(receiver, SEND.format(address=hosts.addresses[2], port=port + 1,
                                                         size=reverse_size)) if reverse else None
                time.sleep(0.3 if reverse else 0)  # the data going out has filled the link
                incoming = in_host(sender, SEND.format(address=hosts.addresses[0], port=port, size=size))
                seconds = incoming.communicate(timeout=120)[0]
                if incoming.returncode != 0:
                    sys.exit(f"error: the TCP transfer into {receiver} failed (status {incoming.returncode})")
                times[reverse].append(float(seconds) * 1e3)
                for process in [outgoing, *sinks]:
                    if process:
                        process.kill()
                        process.wait()
    return statistics.median(times[False]), statistics.median(times[True])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rates", default="10mbit,100mbit", help="the links to measure, comma-separated")
    parser.add_argument("--methods", default=",".join(METHODS), help="the methods to run, comma-separated")
    parser.add_argument("--clients", type=int, default=3, help="clients, each on a host of its own")
    parser.add_argument("--train-subset", type=int, default=1920, help="training images (an epoch's work)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way latency between hosts (needs netem)")
    parser.add_argument("--out", default=str(ROOT / "results" / "hosts.md"), help="the markdown table")
    args = parser.parse_args()
    flags = ["--clients", str(args.clients), "--train-subset", str(args.train_subset), "--test-subset", "100"]
    compute = {role: spread["least"] for role, spread in decision.role_seconds("lenet5", 1).items()}  # timed here
    trips = []
    for rate in args.rates.split(","):
        size = 4 * 64 * 6 * 14 * 14
        trips.append((rate, round_trip_ms(rate), 2 * 8 * size / bits_per_second(rate) * 1e3, *into_host_ms(rate)))
        print(f"{rate:8} one batch's activations there and back: {trips[-1][1]:.2f} ms, the rate says "
              f"{trips[-1][2]:.2f} ms; 300 kB into a host {trips[-1][3]:.1f} ms, while it sends {trips[-1][4]:.1f} ms",
              flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for name in args.methods.split(","):
            formula, script = METHODS[name]
            alone, one_host = run([MPIRUN, "-n", str(args.clients + 1)], script, flags, scratch / formula / "one",
                              dict(os.environ))
            for rate in args.rates.split(","):
                bits = bits_per_second(rate)
                with Hosts(args.clients + 1, rate=rate, delay_s=args.delay_ms / 1000) as hosts:
                    launch = hosts.mpiexec([1] * (args.clients + 1), [], mpiexec=MPIRUN)
                    measured, traces = run(launch, script, flags, scratch / formula / rate, hosts.environment())
                link = (bits, args.delay_ms / 1000)
                modelled, _ = decision.epoch_seconds(formula, args.clients, link, compute, "lenet5",
                                                     n=args.train_subset)
                replayed = link_estimate.span(one_host, link_estimate.replay(one_host, link))
                rows.append((name, rate, alone, measured, modelled, link_estimate.span(traces),
                             replayed))
                print(f"{name:16} {rate:8} one host {rows[-1][2]:6.2f} s  measured {measured:7.2f} s  "
                      f"model {modelled:7.2f} s  run {rows[-1][5]:7.2f} s  replayed {replayed:7.2f} s", flush=True)
    write_table(trips, rows, args, Path(args.out))


def write_table(trips, rows, args, out):
    lines = [f"<!-- generated by benchmarks/bench_hosts.py --rates {args.rates} --clients {args.clients} "
             f"--train-subset {args.train_subset} --delay-ms {args.delay_ms:g}; on {os.uname().nodename}, "
             f"{os.cpu_count()} cores -->",
             "| link | one batch's activations there and back, measured (ms) | 2 x size / rate (ms) "
             "| measured / rate | 300 kB into a host (ms) | the same while it sends 3 MB (ms) | while / alone |",
             "|---|--:|--:|--:|--:|--:|--:|"]
    lines += [f"| {rate} | {measured:.2f} | {expected:.2f} | {measured / expected:.3f} | {alone:.1f} | {busy:.1f} "
              f"| {busy / alone:.2f} |" for rate, measured, expected, alone, busy in trips]
    lines += ["",
              "| method | link | epoch, one host without links (s) | epoch over the links, measured (s; medians of 3) "
             "| decision model (s) | model / measured | whole run over the links, measured (s) "
             "| link_estimate from the one-host trace (s) | estimate / measured |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, rate, alone, measured, modelled, run_span, replayed in rows:
        lines.append(f"| {name} | {rate} | {alone:.2f} | {measured:.2f} | {modelled:.2f} | {modelled / measured:.2f} "
                     f"| {run_span:.2f} | {replayed:.2f} | {replayed / run_span:.2f} |")
    out.write_text("\n".join(lines) + "\n")
    print(f"table: {out}")


if __name__ == "__main__":
    main()
