"""Runs across hosts: network namespaces on this machine (splitlab/net/hosts.py), MPI over their TCP network.

The same numbers and bytes as one host; waiting falls back to polling where the ranks are on several hosts; a
host cut off or killed ends the job, its results naming the rank and host; nothing is left behind.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import MPIRUN, OFFLINE, PINNED, ROOT, mpirun_each, needs_data, runs_file, script
from splitlab.net import hosts as namespace_hosts
from splitlab.net.hosts import Hosts, leftovers
from splitlab.training import results_guard

UNAVAILABLE = namespace_hosts.unavailable()
needs_hosts = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no namespace hosts: {UNAVAILABLE}")

SMALL = ["--train-subset", "600", "--test-subset", "200", "--epochs", "2", "--no-progress"]
MEASURED = ("work", "client_peak_rss_mb")  # what differs from run to run: timings and memory


def across(hosts, ranks_per_host, name, *flags, timeout=180):
    """Run script ``name`` with ``flags`` on ``hosts``, one thread a rank; the CompletedProcess."""
    command = hosts.mpiexec(ranks_per_host, [sys.executable, str(ROOT / name), *flags], mpiexec=MPIRUN)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=hosts.environment({**os.environ, **OFFLINE, **PINNED}))


def comparable(epoch):
    return {key: value for key, value in epoch.items() if not key.endswith("_s") and key not in MEASURED}


@pytest.mark.parametrize("flags, says", [(["--rate", "10mbps"], "'10mbps' is not a bandwidth"),
                                         (["--ranks", "0,1"], "the first at least 1"),
                                         (["--delay-ms", "-3"], "a latency is a time")])
def test_the_hosts_tool_refuses_bad_input_with_one_line(flags, says):
    result = script("hosts.py", *flags, "split_learning.py")
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr


@needs_hosts
@pytest.mark.skipif(UNAVAILABLE is None and namespace_hosts.netem_available(), reason="this kernel has netem")
def test_a_latency_without_netem_is_refused_with_one_line():
    result = script("hosts.py", "--delay-ms", "5", "split_learning.py")
    assert result.returncode == 2 and "a latency needs netem" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def three_hosts():
    with Hosts(3) as hosts:
        yield hosts


ACROSS = {"split.json": ["split_learning.py", "--clients", "4", *SMALL],
          "federated.json": ["federated_learning.py", "--clients", "4", *SMALL]}


@pytest.fixture(scope="module")
def spread_and_one(three_hosts, tmp_path_factory):
    """The results of each run of ACROSS, by results file name: clients spread over two hosts and the server on a
    third (one MPI job for all), and on one host (another); one thread a rank."""
    folder = tmp_path_factory.mktemp("across")
    commands = {where: [[*command, "--results-dir", str(folder / where)] for command in ACROSS.values()]
                for where in ("hosts", "one")}
    with runs_file(commands["hosts"]) as runs:
        spread = across(three_hosts, [1, 1, 1], "tests/helpers/runs_in_one_job.py", runs, timeout=600)
    assert spread.returncode == 0, spread.stderr[-3000:]
    one = mpirun_each(3, commands["one"], env=PINNED, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    return {name: [json.loads((folder / where / name).read_text()) for where in ("hosts", "one")] for name in ACROSS}


@needs_data
@needs_hosts
@pytest.mark.parametrize("name", ACROSS)
def test_three_hosts_give_the_numbers_and_bytes_of_one(three_hosts, spread_and_one, name):
    """Every epoch's losses, accuracies and bytes across hosts are those of the same run on one host; the results
    name each rank's host, and the ranks polled."""
    spread, one = spread_and_one[name]
    assert [comparable(e) for e in spread["epochs"]] == [comparable(e) for e in one["epochs"]]
    assert spread["environment"]["hosts"] == three_hosts.names
    assert spread["environment"]["message_wait"] == "polling"  # no doorbells between hosts
    assert len(set(one["environment"]["hosts"])) == 1 and one["environment"]["message_wait"] == "doorbells"


@needs_hosts
def test_a_set_of_hosts_takes_a_subnet_that_no_link_here_is_in(tmp_path):
    """Two bridges on one subnet send each other's replies astray and a run hangs at MPI's start. With every
    10.78.X.0/24 but one in use on another link, a new set of hosts takes that one."""
    taken = f"{namespace_hosts.PREFIX}{os.getpid()}z-d"  # removed as a leftover if this test dies
    commands = tmp_path / "addresses"
    commands.write_text("".join(f"addr add 10.78.{x}.1/24 dev {taken}\n" for x in range(1, 254) if x != 200))
    subprocess.run(["ip", "link", "add", taken, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "-batch", str(commands)], check=True)
        with Hosts(2) as hosts:
            gateway, addresses = hosts.gateway, hosts.addresses
    finally:
        subprocess.run(["ip", "link", "del", taken], check=True)
    assert gateway == "10.78.200.254" and addresses == ["10.78.200.1", "10.78.200.2"]


def start(hosts, results_dir):
    """Split learning across ``hosts`` for many epochs, with a stall time-out of 10 s; returns the process once
    its first epoch is done."""
    flags = ["--clients", "4", "--train-subset", "1200", "--test-subset", "200", "--epochs", "50", "--patience", "50",
             "--no-progress", "--stall-timeout", "10", "--results-dir", str(results_dir)]
    command = hosts.mpiexec([1, 1, 1], [sys.executable, str(ROOT / "split_learning.py"), *flags], mpiexec=MPIRUN)
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=hosts.environment({**os.environ, **OFFLINE, **PINNED}))
    return after_first_epoch(job)


def after_first_epoch(job, timeout=120):
    """``job`` once it has printed its first epoch; the test fails with its output if it ends or hangs first."""
    hung = threading.Timer(timeout, job.kill)  # a run that never starts must not hang the suite
    hung.start()
    seen = []
    for line in job.stdout:
        seen.append(line)
        if line.startswith("epoch   1"):
            hung.cancel()
            return job
    hung.cancel()
    pytest.fail(f"the run {'hung' if job.wait() == -signal.SIGKILL else 'ended'} before its first epoch:\n"
                + "".join(seen)[-3000:])


def sent_by_class(host, device="eth0"):
    """``{class id: (bytes, packets)}`` that ``host``'s link has let out (``tc -s class show``)."""
    shown = subprocess.run(["ip", "netns", "exec", host, "tc", "-s", "class", "show", "dev", device],
                           capture_output=True, text=True, check=True).stdout
    return {match[0]: (int(match[1]), int(match[2]))
            for match in re.findall(r"class htb (\S+) .*?\n\s*Sent (\d+) bytes (\d+) pkt", shown)}


@needs_hosts
def test_a_limited_link_lets_bare_acknowledgements_go_before_data():
    """What a host sends must not hold up what it receives (the acknowledgements of a transfer into it waited
    behind its own data in one queue: hosts.shape). After 1 MB into a host, that host's acknowledgements left by
    their own class, every packet under 64 bytes of IP, and the data by the other."""
    from bench_hosts import SEND, SINK
    with Hosts(2, rate="100mbit") as hosts:
        receiver, sender = hosts.names
        sink = subprocess.Popen(["ip", "netns", "exec", receiver, sys.executable, "-c", SINK.format(port=5000)])
        time.sleep(0.5)
        subprocess.run(["ip", "netns", "exec", sender, sys.executable, "-c",
                        SEND.format(address=hosts.addresses[0], port=5000, size=1_000_000)],
                       check=True, timeout=60, capture_output=True)
        sink.wait(timeout=10)
        acknowledgements, data = sent_by_class(receiver)["10:10"], sent_by_class(sender)["10:20"]
    assert acknowledgements[1] >= 100 and acknowledgements[0] / acknowledgements[1] < 64 + 14  # an Ethernet header
    assert data[0] >= 1_000_000


@needs_data
@needs_hosts
def test_a_host_cut_off_ends_the_job_naming_its_rank_and_host(tmp_path):
    with Hosts(3) as hosts:
        job = start(hosts, tmp_path)
        hosts.cut(2)
        cut_at = time.monotonic()
        output, _ = job.communicate(timeout=60)
        ended_after = time.monotonic() - cut_at
    assert job.returncode != 0
    assert ended_after < 10 + 5  # the stall time-out, and the abort's grace
    results = json.loads((tmp_path / "split.json").read_text())
    assert results["status"] == "failed"
    assert f"rank 2 (on {hosts.names[2]}) stopped answering" in results["error"]
    assert f"rank 2 (on {hosts.names[2]})" in output


@needs_data
@needs_hosts
def test_a_host_whose_rank_is_killed_ends_the_job_at_once_naming_it(tmp_path):
    """The rank's process SIGKILLed (as the out-of-memory killer would): mpirun ends the job, and the results
    name the rank that ended first and its host; nothing is left behind."""
    with Hosts(3) as hosts:
        job = start(hosts, tmp_path)
        ranks = [pid for pid in hosts.pids(2) if b"split_learning.py" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(ranks) == 1
        os.kill(ranks[0], signal.SIGKILL)
        job.communicate(timeout=30)
        time.sleep(results_guard.NOTES_WAIT_S + 1)  # rank 0's guard waits for the ranks' notes, then writes
        results = json.loads((tmp_path / "split.json").read_text())
    assert job.returncode != 0 and results["status"] == "failed"
    assert results["error"].startswith(f"killed: rank 2 (on {hosts.names[2]}) ended first")
    assert leftovers(hosts.tag + "-") == ([], [])


@needs_data
@needs_hosts
def test_the_hosts_tool_tears_down_on_ctrl_c(tmp_path):
    """hosts.py interrupted in the middle of a run removes its namespaces and links, and says so."""
    tool = subprocess.Popen([sys.executable, str(ROOT / "hosts.py"), "--ranks", "1,1", "split_learning.py",
                             "--train-subset", "1200", "--test-subset", "200", "--epochs", "50", "--patience", "50",
                             "--no-progress",
                             "--results-dir", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **OFFLINE, **PINNED})
    tag = f"{namespace_hosts.PREFIX}{tool.pid}a-"  # its first set of hosts
    after_first_epoch(tool)
    assert leftovers(tag)[0], "the hosts were not made"
    tool.send_signal(signal.SIGINT)
    output, _ = tool.communicate(timeout=60)
    assert tool.returncode == 130 and "the hosts are removed" in output
    assert leftovers(tag) == ([], [])
