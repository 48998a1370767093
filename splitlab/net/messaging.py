"""The messaging layer of the MPI methods: counted messages, and waiting that leaves the CPU to others.

Why the waiting is hand-made: MPI implementations busy-poll inside a blocking ``Recv``. With 11 ranks on
2 cores the waiting ranks would take the cores from the two that have work. Polling with ``Test``/``Iprobe``
and short sleeps is better but not enough: a rank that wakes to poll while another computes takes a core from
it, and the computing rank's two OpenMP threads then wait for each other (docs/performance.md). So each rank
has a *doorbell*, a FIFO on this machine: whoever sends a message to a rank rings its bell (when the sender
itself next waits), and a waiting rank sleeps in ``select()`` until rung. It takes no CPU while it waits and
wakes at once. Sends do not wait for delivery, so a sender goes straight back to sleep. Where the ranks are not
all on one machine, waiting falls back to looking now and then, each sleep at most an eighth of the time
waited so far (``no_bells_sleep``); ``DOORBELLS=off`` in the environment forces that path on one machine.
Where the cores leave room, a rank polls flat out for a while before it sleeps (process_policy.py says when).

``LINK=10mbit,20ms`` in the environment emulates a network on one machine (off by default, and then free): each
rank's messages leave it one after another over a link of that bandwidth, and one reaches MPI only once its last
byte would have arrived after that latency (``link.Link``). The kernel's own emulation (``tc netem``) needs
privileges and MPI over TCP; this needs neither, and delays exactly the messages the methods send.
"""

import collections
import json
import os
import select
import shutil
import tempfile
import time

import numpy as np
from mpi4py import MPI
from mpi4py.util.dtlib import from_numpy_dtype

from splitlab.net.process_policy import Host
from splitlab.net.protocol import MEASUREMENTS, SERVER, UNCOUNTED, ProtocolError, Tag

IDLE_STALL_FACTOR = 10  # a worker waiting between turns waits through other clients' turns: it allows this x

POLLS = 2  # look this many times before sleeping: MPICH's Iprobe may see a just-arrived message on its 2nd call
RUNG_SPIN_SECONDS = 50e-6  # after the bell rang, poll flat out this long: the message it announced is near
FIRST_SLEEP = 1e-3  # while MPI may need this rank's help (its sends are in flight), it wakes after this long,
MAX_SLEEP = 0.1  # and after twice as long each time, up to this
NO_BELLS_SHARE = 1 / 8  # without doorbells a rank sleeps this share of the time it has waited so far,
NO_BELLS_MIN_SLEEP = 1e-4  # and at least this long (at most MAX_SLEEP)
BELL_TIMEOUT = 0.1  # otherwise it sleeps until rung, or this long: a safety net, since every message rings

# mpi4py's lowercase methods (allgather, bcast: the set-up's collectives) pickle what they send, and unpickling
# what a peer sent can run any code the peer chose. Here they send JSON instead.
MPI.pickle.__init__(lambda obj, *_: json.dumps(obj).encode(), lambda data, *_: json.loads(bytes(data)))


class PeerError(RuntimeError):
    """Something another rank did or failed to do; ``rank`` is that rank where it is known."""

    def __init__(self, message, rank=None):
        super().__init__(message)
        self.rank = rank


class Stalled(PeerError):
    """A peer stopped answering: no message came within the stall time-out."""


class PeerFailed(PeerError):
    """Another rank failed and said so before it ended the job."""


def mpi_description():
    """Vendor and version of the MPI library, for the results file."""
    vendor, version = MPI.get_vendor()
    return f"{vendor} {'.'.join(map(str, version))}"


def no_bells_sleep(waited):
    """How long a rank without doorbells sleeps before it looks again, having waited ``waited`` seconds.

    Its timer is all that wakes it, so it may notice a message up to one sleep late. A sleep that doubled, as
    one with doorbells does, could be as long as the whole wait so far; two ranks that wait for each other's
    answers then noticed them later and later, up to MAX_SLEEP late (one batch's activations each way with 3 ms
    of work a side: 326 ms a hand-over, benchmarks/ping_pong.py). At most an eighth of the wait, they cannot.
    """
    return min(max(NO_BELLS_MIN_SLEEP, waited * NO_BELLS_SHARE), MAX_SLEEP)


def counted_bytes(obj, payload):
    """The bytes of control message ``obj`` (sent as ``payload``) that count as the method's traffic: all but
    its MEASUREMENTS fields."""
    if MEASUREMENTS.isdisjoint(obj):
        return len(payload)
    return len(json.dumps({key: value for key, value in obj.items() if key not in MEASUREMENTS}).encode())


class Doorbells:
    """A FIFO per rank: ``ring(rank)`` wakes ``rank`` from ``sleep()``. Collective to create; where the ranks
    are not ``one_machine`` (or ``DOORBELLS=off``), there are none and ``sleep()`` only sleeps."""

    def __init__(self, comm, one_machine):
        rank = comm.Get_rank()
        forced_off = os.environ.get("DOORBELLS") == "off"  # the several-hosts path, on one host (for tests)
        self.enabled = comm.allreduce(one_machine and hasattr(os, "mkfifo") and not forced_off, op=MPI.LAND)
        if not self.enabled:
            return
        folder = comm.bcast(tempfile.mkdtemp(prefix="doorbells-") if rank == 0 else None)
        os.mkfifo(os.path.join(folder, str(rank)))
        # Read and write: opening never blocks, and the FIFO never reads as closed.
        self.own = os.open(os.path.join(folder, str(rank)), os.O_RDWR | os.O_NONBLOCK)
        comm.Barrier()
        self.peers = {peer: os.open(os.path.join(folder, str(peer)), os.O_WRONLY | os.O_NONBLOCK)
                      for peer in range(comm.Get_size()) if peer != rank}
        comm.Barrier()
        if rank == 0:
            shutil.rmtree(folder)  # open FIFOs keep working; nothing is left behind in /tmp

    def ring(self, rank):
        if self.enabled and rank in self.peers:
            try:
                os.write(self.peers[rank], b"!")
            except BlockingIOError:  # the FIFO is full of rings: the bell is ringing already
                pass

    def sleep(self, seconds):
        """Sleep until rung or for ``seconds``, whichever comes first; True if rung."""
        if not self.enabled:
            time.sleep(seconds)
            return False
        rung = bool(select.select([self.own], [], [], seconds)[0])
        try:  # empty the FIFO; a ring that came after select timed out counts too, or it would be lost
            while os.read(self.own, 4096):
                rung = True
        except BlockingIOError:
            pass
        return rung


class Channel:
    """Point-to-point messages on ``comm`` that wait cheaply and count the bytes they move.

    Arrays go as raw buffers (``Isend``/``Irecv``); small control messages as JSON objects (``send_obj``):
    never pickles, since unpickling what a peer sent can run any code the peer chose.
    Sends do not wait for delivery: the sender goes on to its next work (usually waiting for the reply)
    while the receiver takes the message, and the channel completes the send later. A send rings the
    receiver's doorbell when the sender next waits (see ``_ring_unrung``). Creating a Channel is collective;
    a rank calls ``flush()`` before it ends, so that every message it sent is delivered.
    """

    def __init__(self, comm, link=None):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.hosts = comm.allgather(MPI.Get_processor_name())  # each rank's host, by rank
        self.bells = Doorbells(comm, one_machine=len(set(self.hosts)) == 1)
        self.host = Host.of(comm, self.hosts)  # what process_policy decides from
        self.poll_s = 0.0  # how long a wait polls flat out before it sleeps (process_policy.apply sets it)
        self.sent_total = self.received_total = 0  # bytes since the start (work.py reads them)
        self.reported = (0, 0)  # the totals at the last traffic()
        self.wait_cpu_s = 0.0  # CPU seconds spent waiting for messages (polling), which work.py leaves out
        self.sending = []  # (request, destination) of sends not known to be complete; requests keep buffers alive
        self.unrung = set()  # ranks this rank has sent messages to since it last rang them
        # CHANNEL_TRACE=folder: every send, wait and receive, timed, written there when the rank ends
        # (benchmarks/trace_split.py and link_estimate.py read them)
        self.trace_dir = os.environ.get("CHANNEL_TRACE")
        self.trace = []
        self.waiting_since = None  # when this rank began to wait for the message it receives next
        self.stall_timeout = None  # seconds a wait for a message may last before Stalled (None: for ever)
        self.link = link  # an emulated network (Link) that every message crosses, or None
        self.held = collections.deque()  # with a link: (arrival, buffer, dest, tag) of sends still on their way

    def traffic(self):
        """Bytes sent and received since the last call (and reset the counters)."""
        sent, received = self.reported
        self.reported = (self.sent_total, self.received_total)
        return {"bytes_sent": self.sent_total - sent, "bytes_received": self.received_total - received}

    def unreported(self):
        """Bytes sent and received since the last traffic(), which the next will report (for a checkpoint)."""
        return [self.sent_total - self.reported[0], self.received_total - self.reported[1]]

    def set_unreported(self, counts):
        """Make the next traffic() report ``counts`` more (``unreported()`` of a checkpoint)."""
        self.reported = (self.sent_total - counts[0], self.received_total - counts[1])

    def count_unsent(self, nbytes_sent=0, nbytes_received=0):
        """Count bytes that would cross the network between separate data holders but do not here: a hand-over
        between two clients of this rank, or one copy of the average received for all of this rank's clients
        (placement.py). So a run's traffic does not depend on how its clients are placed on ranks."""
        self.sent_total += nbytes_sent
        self.received_total += nbytes_received

    def _post_send(self, buffer, nbytes, dest, tag, counted=None):
        """Send ``buffer`` (``nbytes``, of which ``counted`` are the method's traffic; None: all)."""
        self.sent_total += (nbytes if counted is None else counted) if tag not in UNCOUNTED else 0
        self._record("send", dest, tag, time.perf_counter(), nbytes)
        if self.link:
            self.held.append((self.link.arrival(nbytes, time.perf_counter()), buffer, dest, tag))
            self._release_arrived()
            return
        self._isend(buffer, dest, tag)

    def _isend(self, buffer, dest, tag):
        self._forget_delivered()
        request = self.comm.Isend(buffer, dest, tag)
        request.Test()  # MPI may only enqueue the message when it is next driven: do it before anyone is rung
        self.unrung.add(dest)
        self.sending.append((request, dest))

    def _release_arrived(self):
        """With an emulated link: hand to MPI the held messages whose time has come; True if any was."""
        released = False
        while self.held and self.held[0][0] <= time.perf_counter():
            _, buffer, dest, tag = self.held.popleft()
            self._isend(buffer, dest, tag)
            released = True
        return released

    def _record(self, event, peer, tag, start, nbytes=None):
        if self.trace_dir:
            self.trace.append((event, peer, tag, start, time.perf_counter(), nbytes))

    def _received(self, source, tag, nbytes, counted=None):
        """Count and trace a message taken in (``nbytes``, of which ``counted`` are the method's traffic; None:
        all): from when this rank began waiting for it, until now."""
        self.received_total += (nbytes if counted is None else counted) if tag not in UNCOUNTED else 0
        start, self.waiting_since = self.waiting_since, None
        self._record("recv", source, tag, start if start is not None else time.perf_counter(), nbytes)

    def _ring_unrung(self):
        """Ring every rank this rank has sent messages to since its last ring.

        Rung when this rank is about to wait, not when it sends: the kernel runs a woken rank on the CPU of the
        rank that woke it (a FIFO write is a "sync" wake-up, made for a writer that is about to sleep). Rung
        at the send, the receiver took the sender's CPU while the sender still had work to finish, and that
        tail of work then competed with the receiver's two compute threads (docs/performance.md).
        """
        for dest in self.unrung:
            self.bells.ring(dest)
        self.unrung.clear()

    def _forget_delivered(self):
        self.sending = [(request, dest) for request, dest in self.sending if not request.Test()]

    def send(self, array, dest, tag):
        """Send ``array`` without waiting for its delivery. Nothing may change it afterwards: pass an array
        made for this message (the channel keeps it alive until it is delivered)."""
        array = np.ascontiguousarray(array)
        self._post_send(array, array.nbytes, dest, tag)

    def send_obj(self, obj, dest, tag):
        """Send a dict of numbers, strings, lists and dicts, as JSON."""
        payload = json.dumps(obj).encode()
        self._post_send(payload, len(payload), dest, tag, counted=counted_bytes(obj, payload))

    def flush(self):
        """Wait until every message sent has been delivered."""
        self._wait(lambda: not self.held and MPI.Request.Testall([request for request, _ in self.sending]))
        self.sending = []
        if self.trace_dir:
            path = os.path.join(self.trace_dir, f"rank-{self.rank}.json")
            with open(path, "w") as f:
                json.dump({"rank": self.rank, "events": self.trace}, f)

    def gather(self, values):
        """Every rank's ``values`` (a list of floats, the same length on every rank) on rank 0, as a list of
        lists; None elsewhere. Waits like any receive (MPI's own ``Gather`` would spin while it waits).

        Called once every rank has set up, before the first epoch: set-up costs seconds per rank (torch's
        first optimizer alone 1.8 s), and an epoch timed while other ranks still set up would include them.
        """
        mine = np.array(values, dtype=np.float64)
        everyone = np.empty((self.comm.Get_size(), len(mine))) if self.rank == 0 else None
        request = self.comm.Igather(mine, everyone, root=0)
        # Ranks wait here for the slowest to set up (seconds of imports and data each): an idle wait.
        self._wait(request.Test, progress=True, idle=True,
                   awaited=list(range(1, self.comm.Get_size())) if self.rank == 0 else SERVER)
        return None if everyone is None else everyone.tolist()

    def _wait(self, done, helper=None, progress=False, awaited=None, idle=False):
        """Call ``done()`` until it returns True, sleeping between looks until the doorbell rings.

        A waiting rank must not spin where cores are short: it would take the core from the rank that
        computes. It looks ``POLLS`` times, rings the ranks it has sent to and ``helper`` (a rank whose progress
        the wait may need), looks on for ``poll_s`` (where process_policy found room), and sleeps until rung,
        then looks flat out for a moment since the message is near. The ringing comes before the polling: a
        receiver already asleep would otherwise wait out the whole poll, and then, its own wait being longer
        than its poll, sleep through the next message too (docs/performance.md). While its own sends are in
        flight, or when ``progress`` says ``done`` needs it (a collective), it also wakes up now and then,
        because MPI may need this rank to drive them: a rank's first large message could stay invisible to its
        receiver until then. So on those wake-ups it rings the receivers of its unfinished sends again
        (without that, a receiver slept through its message).

        On each wake-up rank 0 also looks for a FAILED message from any rank (``PeerFailed``), and a wait longer
        than ``stall_timeout`` (``IDLE_STALL_FACTOR`` times that when ``idle``) raises ``Stalled``, naming the
        ``awaited`` ranks.
        """
        sleep, spin, woken_by_timer = FIRST_SLEEP, self.poll_s, False
        began, cpu = time.perf_counter(), time.process_time()
        while True:
            start, polls = time.perf_counter(), 0
            recheck = start + sleep
            while polls < POLLS or time.perf_counter() - start < spin:
                # A held message has just gone to MPI: wake as often as after a send (its transfer may need us).
                if self.held and self._release_arrived():
                    sleep, recheck = FIRST_SLEEP, time.perf_counter() + FIRST_SLEEP
                if done():
                    self._ring_unrung()
                    self.wait_cpu_s += time.process_time() - cpu
                    return
                polls += 1
                if polls == POLLS:  # before polling on, wake those this rank has sent to, and the helper
                    if helper is not None:
                        self.unrung.add(helper)
                    self._ring_unrung()
                elif time.perf_counter() >= recheck:  # a long poll rings again, as a timer's wake-up does, the
                    self._forget_delivered()  # receivers of sends still in flight: a receiver rung before
                    self.unrung.update(dest for _, dest in self.sending)  # it could see its message slept on
                    self._ring_unrung()
                    sleep = min(sleep * 2, MAX_SLEEP)
                    recheck = time.perf_counter() + sleep
            self._forget_delivered()
            if woken_by_timer:
                self.unrung.update(dest for _, dest in self.sending)
            needed = progress or self.sending or not self.bells.enabled
            self._ring_unrung()
            timer = sleep if self.bells.enabled else no_bells_sleep(time.perf_counter() - began)
            timer = timer if needed else BELL_TIMEOUT
            if self.held:  # wake when the next held message arrives
                timer = min(timer, max(0.0, self.held[0][0] - time.perf_counter()))
            rung = self.bells.sleep(timer)
            spin, woken_by_timer = (RUNG_SPIN_SECONDS if rung else 0.0), not rung
            sleep = min(sleep * 2, MAX_SLEEP)
            if self.rank == SERVER:
                self._raise_peer_failure()
            self._check_stall(time.perf_counter() - began, awaited, idle)

    def _check_stall(self, waited, awaited, idle):
        limit = self.stall_timeout and self.stall_timeout * (IDLE_STALL_FACTOR if idle else 1)
        if not limit or waited <= limit:
            return
        ranks = [awaited] if isinstance(awaited, int) else list(awaited or [])
        who = self.who(ranks[0]) if len(ranks) == 1 else f"ranks {ranks}" if ranks else "any rank"
        raise Stalled(f"rank {self.rank} waited {waited:.0f} s for a message from {who} (--stall-timeout "
                      f"{self.stall_timeout:g}{f' x {IDLE_STALL_FACTOR} between turns' if idle else ''}): "
                      f"{who} stopped answering", ranks[0] if len(ranks) == 1 else None)

    def who(self, rank):
        """``rank 2``, or ``rank 2 (on node7)`` where the ranks are on several hosts."""
        return f"rank {rank}" + (f" (on {self.hosts[rank]})" if len(set(self.hosts)) > 1 else "")

    def _raise_peer_failure(self):
        status = MPI.Status()
        if self.comm.Iprobe(MPI.ANY_SOURCE, Tag.FAILED, status):
            try:
                error = str(self._take_obj(status)["error"])
            except (ProtocolError, KeyError):
                error = f"rank {status.Get_source()} failed (its report was unreadable)"
            raise PeerFailed(error.splitlines()[0] if error else "no message", status.Get_source())

    def report_failure(self, error, grace):
        """Tell rank 0 that this rank failed with ``error`` (one line), so that its results say so; give the
        message up to ``grace`` seconds to leave."""
        if self.rank == SERVER:
            return
        payload = json.dumps({"error": error}).encode()
        request = self.comm.Isend(payload, SERVER, Tag.FAILED)
        self.bells.ring(SERVER)
        deadline = time.perf_counter() + grace
        while not request.Test() and time.perf_counter() < deadline:
            time.sleep(1e-3)

    def recv(self, array, source, tag):
        """Receive exactly ``array.size`` items into ``array``; a message of another size is an error."""
        status = self.probe(source, tag, awaited=source)
        if status.Get_count(from_numpy_dtype(array.dtype)) != array.size:
            raise ProtocolError(f"rank {self.rank}: message with tag {tag} from rank {status.Get_source()} "
                                f"has {status.Get_count()} bytes, expected {array.nbytes}")
        request = self.comm.Irecv(array, status.Get_source(), tag)
        # A large message may need the sender's help to move (without single-copy transfers, MPICH and Open
        # MPI pipeline it through shared memory): wake it if the message does not arrive at once.
        self._wait(request.Test, helper=status.Get_source(), awaited=status.Get_source())
        self._received(status.Get_source(), tag, array.nbytes)

    def probe(self, source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, awaited=None, idle=False):
        """Wait for a message and return its status (source, tag, size) without receiving it. ``awaited``: the
        rank or ranks that owe it (for the stall message; default ``source``); ``idle``: a worker waiting for
        its next command, which may take the other clients' turns."""
        status, start = MPI.Status(), time.perf_counter()
        if self.waiting_since is None:
            self.waiting_since = start
        awaited = source if awaited is None and source != MPI.ANY_SOURCE else awaited
        self._wait(lambda: self.comm.Iprobe(source, tag, status), awaited=awaited, idle=idle)
        if status.Get_tag() == Tag.FAILED:  # a failing rank's last word comes before whatever was awaited
            self._raise_peer_failure()
        self._record("wait", status.Get_source(), status.Get_tag(), start)
        return status

    def recv_obj(self, source, tag):
        """Receive a control message sent with ``send_obj``: a dict. Anything else is a ProtocolError."""
        return self._take_obj(self.probe(source, tag, awaited=source))

    def _take_obj(self, status):
        """Receive the control message that ``status`` describes: a dict, or a ProtocolError."""
        tag = status.Get_tag()
        payload = bytearray(status.Get_count())
        self.comm.Recv(payload, status.Get_source(), tag)
        try:
            obj = json.loads(payload.decode())
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            obj = None
        self._received(status.Get_source(), tag, len(payload),
                       counted=counted_bytes(obj, payload) if isinstance(obj, dict) else None)
        if not isinstance(obj, dict):
            raise ProtocolError(f"rank {self.rank}: control message with tag {tag} from rank {status.Get_source()} "
                                f"is not a JSON object ({len(payload)} bytes starting {bytes(payload[:16])!r})")
        return obj
