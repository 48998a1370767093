"""Several hosts on one machine, for MPI runs that cross a real (kernel) network.

Each host is a network namespace with its own address, joined to the others by a veth pair to a bridge; the
host's end of its link and the bridge's end are each rate-limited with ``tc`` (``htb``: both directions), and
given half of the latency each where the kernel has ``netem``. MPICH's ``mpiexec`` starts one proxy a host
from a hostfile, through ``enter_host`` in place of ssh: it enters the host's namespace and gives the proxy a
hostname of its own (a UTS namespace), so that MPI and the suite see separate hosts. Needs root, ``ip`` and
``tc``; everything is removed on leaving the ``with`` block, on an error or Ctrl-C too.

    with Hosts(3, rate="10mbit") as hosts:
        subprocess.run(hosts.mpiexec([1, 2, 2], ["python", "split_learning.py", "--clients", "6"]),
                       env=hosts.environment(), check=True)

What differs on a real cluster: there the hosts have their own cores (here they share this machine's), the
launcher is ssh or Slurm, and MPI picks the fastest transport itself. Here it must be told to use TCP
(``UCX_TLS=tcp``): UCX sees that the namespaces share a machine and would move data through shared memory,
around the links (a 4 MiB message over a 10 Mbit/s link then took 0.003 s instead of 3.4 s).
"""

import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from splitlab.net.link import bits_per_second

ENTER_HOST = Path(__file__).with_name("enter_host")  # the launcher hydra calls in place of ssh
PREFIX = "sl"  # every namespace, bridge and veth made here: sl<pid><letter>-..., so that leftovers are found
BURST_S, MIN_BURST_BYTES = 200e-6, 2 * 1514  # tc's bucket: the rate's 0.2 ms, two Ethernet frames at least
LOCK = Path(tempfile.gettempdir()) / "splitlab-hosts.lock"  # held while a set of hosts takes its subnet
NETWORK_ENVIRONMENT = {"UCX_TLS": "tcp"}  # MPI over the namespaces' network, not shared memory (see above)


class HostsUnavailable(RuntimeError):
    """This machine cannot make namespace hosts (not root, no ``ip`` or ``tc``); the message says why."""


def unavailable():
    """Why namespace hosts cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs and tc)"
    missing = [tool for tool in ("ip", "tc", "unshare", "nsenter") if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} on the PATH"
    probe = f"{PREFIX}{os.getpid()}-probe"  # root in a container may still be refused namespaces or links
    try:
        ip("link", "add", probe, "type", "bridge")
        ip("link", "del", probe)
        ip("netns", "add", probe)
        ip("netns", "del", probe)
    except RuntimeError as exc:
        return f"cannot make a network namespace or link here ({exc})"
    return None


def netem_available():
    """Whether the kernel has ``netem``, the qdisc that delays packets (latency)."""
    name = f"{PREFIX}{os.getpid()}-probe"
    ip("link", "add", name, "type", "bridge")  # not a dummy link: some kernels (this project's VM) lack those
    try:
        return subprocess.run(["tc", "qdisc", "add", "dev", name, "root", "netem", "delay", "1ms"],
                              capture_output=True).returncode == 0
    finally:
        ip("link", "del", name)


def ip(*args, namespace=None):
    """Run ``ip`` (in ``namespace`` if given); its output."""
    return run(["ip"] + (["-n", namespace] if namespace else []) + list(args))


def shape(device, rate, delay_s, namespace=None):
    """Limit what leaves ``device`` to ``rate`` (tc's form: 10mbit), delayed ``delay_s`` where given (netem).

    An ``htb`` class at the rate, whose bare TCP acknowledgements (IP packets under 64 bytes) go before data: in
    one queue they waited behind the data a host was sending, and a transfer into a host that was sending
    elsewhere took 35-60 % longer (docs/performance.md, "Across hosts"); Linux's own fq_codel, which this kernel
    lacks, serves such sparse flows first too."""
    tc = ["tc"] if namespace is None else ["ip", "netns", "exec", namespace, "tc"]
    # The bucket lets a burst pass at once after the link was idle: big, it made a 300 kB message over 100 Mbit/s
    # take 36 % less than the rate says. The rate's 0.2 ms (two full frames at least) kept it within the TCP/IP
    # headers' 4.6 % from 10 Mbit/s to 1 Gbit/s (docs/performance.md, "Across hosts").
    bits = int(bits_per_second(rate))
    bucket = int(max(MIN_BURST_BYTES, bits / 8 * BURST_S))
    burst = ["burst", str(bucket), "cburst", str(bucket)]
    # No packet larger than the bucket: htb lets a packet out whenever its bucket is not empty, so the kernel's
    # 64 kB packets (GSO) took a 300 kB message over 10 Mbit/s through 12 % faster than the rate (tbf splits them).
    ip("link", "set", "dev", device, "gso_max_size", str(min(bucket, 65536)), namespace=namespace)

    def add(kind, *args):
        run(tc + [kind, "add", "dev", device, *args])

    root = ["root"]
    if delay_s:
        add("qdisc", "root", "handle", "1:", "netem", "delay", f"{delay_s * 1e6:.0f}us")
        root = ["parent", "1:1"]
    add("qdisc", *root, "handle", "10:", "htb", "default", "20")
    add("class", "parent", "10:", "classid", "10:1", "htb", "rate", rate, *burst)
    add("class", "parent", "10:1", "classid", "10:10", "htb", "rate", f"{bits // 20}bit", "ceil", rate, *burst,
        "prio", "0")  # acknowledgements: a few % of the reverse data's bytes
    add("class", "parent", "10:1", "classid", "10:20", "htb", "rate", f"{bits - bits // 20}bit", "ceil", rate,
        *burst, "prio", "1")
    add("filter", "parent", "10:", "protocol", "ip", "prio", "1", "u32", "match", "ip", "protocol", "6", "0xff",
        "match", "u16", "0x0000", "0xffc0", "at", "2", "flowid", "10:10")  # TCP, IP total length < 64


def run(command):
    """Run ``command``; its output, or RuntimeError with the command and its error."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip() or f'status {done.returncode}'}")
    return done.stdout


class Hosts:
    """``count`` hosts in network namespaces on this machine (see the module's text). ``rate``: each host's link
    in each direction, in tc's form (``10mbit``; None: unlimited); ``delay_s``: one-way latency between two
    hosts (needs netem)."""

    made = 0  # sets of hosts made by this process

    def __init__(self, count, rate=None, delay_s=0.0):
        if count < 1:
            raise ValueError(f"needs at least one host, got {count}")
        if not delay_s >= 0:
            raise ValueError(f"a latency is a time, not {delay_s * 1000:g} ms")
        if rate is not None:
            bits_per_second(rate)
        self.count, self.rate, self.delay_s = count, rate, delay_s
        # sl<pid><letter>: a letter a set of hosts, as several may live in one process at once
        self.tag = f"{PREFIX}{os.getpid()}{chr(ord('a') + Hosts.made % 26)}"
        Hosts.made += 1
        self.names = [f"{self.tag}-host{i}" for i in range(1, count + 1)]
        self.addresses, self.gateway = [], None  # a subnet no other set of hosts uses, chosen on entering
        self.bridge = f"{self.tag}-br"
        self.folder = None

    def veth(self, host):
        """The bridge's end of ``host``'s link (0-based); taking it down cuts the host off."""
        return f"{self.tag}-v{host + 1}"

    def __enter__(self):
        reason = unavailable()
        if reason:
            raise HostsUnavailable(reason)
        if self.delay_s and not netem_available():
            raise HostsUnavailable("a latency needs netem, which this kernel does not have")
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, interrupt)  # a terminated run tears down too, as Ctrl-C does
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *_):
        self.down()

    def _up(self):
        remove_orphans()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        ip("link", "add", self.bridge, "type", "bridge")
        # Two bridges with one subnet route each other's replies astray (a run then hangs at MPI's start): the
        # choice of a free subnet and its taking are one step for all processes.
        with open(LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = free_subnet()
            self.addresses = [f"{subnet}.{i}" for i in range(1, self.count + 1)]
            self.gateway = f"{subnet}.254"  # the bridge's address, where mpiexec listens for its proxies
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host, (name, address) in enumerate(zip(self.names, self.addresses)):
            ip("netns", "add", name)
            ip("link", "add", self.veth(host), "type", "veth", "peer", "name", "eth0", "netns", name)
            ip("link", "set", self.veth(host), "master", self.bridge, "up")
            ip("addr", "add", f"{address}/24", "dev", "eth0", namespace=name)
            ip("link", "set", "eth0", "up", namespace=name)
            ip("link", "set", "lo", "up", namespace=name)
            if self.rate or self.delay_s:
                shape("eth0", self.rate or "100gbit", self.delay_s / 2, namespace=name)  # out of the host
                shape(self.veth(host), self.rate or "100gbit", self.delay_s / 2)  # into it

    def down(self):
        """Remove every namespace (ending what still runs in it), link and file this object made."""
        remove(f"{self.tag}-")
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def cut(self, host):
        """Take ``host``'s link down (0-based): nothing reaches it or leaves it any more."""
        ip("link", "set", self.veth(host), "down")

    def pids(self, host):
        """The processes running on ``host`` (0-based)."""
        return [int(pid) for pid in ip("netns", "pids", self.names[host]).split()]

    def mpiexec(self, ranks_per_host, command, mpiexec="mpiexec"):
        """The command line that runs ``command`` on ``sum(ranks_per_host)`` ranks, ``ranks_per_host[i]`` of them
        on host i (in rank order: rank 0 on the first host with a slot)."""
        if len(ranks_per_host) != self.count or min(ranks_per_host) < 0 or sum(ranks_per_host) < 1:
            raise ValueError(f"ranks_per_host needs {self.count} counts, none negative, got {ranks_per_host}")
        hostfile = self.folder / "hostfile"
        hostfile.write_text("".join(f"{name}:{slots}\n" for name, slots in zip(self.names, ranks_per_host) if slots))
        return [mpiexec, "-launcher", "ssh", "-launcher-exec", str(ENTER_HOST), "-f", str(hostfile),
                "-localhost", self.gateway, "-n", str(sum(ranks_per_host))] + list(command)

    @staticmethod
    def environment(base=None):
        """The environment an MPI run over these hosts needs (``base``: os.environ)."""
        return {**(os.environ if base is None else base), **NETWORK_ENVIRONMENT}


def free_subnet():
    """The first 10.78.X (a /24) that no address on this machine's links is in."""
    taken = set(re.findall(r"inet (10\.78\.\d+)\.", ip("-o", "-4", "addr", "show")))
    free = [f"10.78.{x}" for x in range(1, 254) if f"10.78.{x}" not in taken]
    if not free:
        raise HostsUnavailable("every subnet from 10.78.1.0/24 to 10.78.253.0/24 is in use here")
    return free[0]


def interrupt(*_):
    raise KeyboardInterrupt


def leftovers(tag=PREFIX):
    """``(namespaces, links)`` whose names start with ``tag`` (what a run that could not tear down left)."""
    namespaces = [line.split()[0] for line in ip("netns", "list").splitlines() if line.startswith(tag)]
    links = [line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link", "show").splitlines()]
    return namespaces, [link for link in links if link.startswith(tag)]


def remove(tag):
    """Remove the namespaces (killing what runs in them) and links whose names start with ``tag``."""
    namespaces, links = leftovers(tag)
    for name in namespaces:
        for pid in ip("netns", "pids", name).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    for name in links:  # the bridge's ends first: deleting a namespace removes its veth pair only later
        subprocess.run(["ip", "link", "del", name], capture_output=True)
    for name in namespaces:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def remove_orphans():
    """Remove what runs of processes that no longer exist left behind (a run killed with SIGKILL)."""
    namespaces, links = leftovers()
    for name in namespaces + links:
        pid = re.match(r"\d*", name[len(PREFIX):])[0]
        if pid and not Path(f"/proc/{pid}").exists():
            remove(name.split("-")[0] + "-")  # that set of hosts: sl<pid><letter>-
