"""MPI helpers shared by the MPI scripts: start-up, counted messages, waiting that leaves the CPU to others,
and ending every rank when one fails.

Why the waiting is hand-made: MPI implementations busy-poll inside a blocking ``Recv``. With 11 ranks on
2 cores the waiting ranks would take the cores from the two that have work (measured: an 80 s split-learning
epoch instead of 9 s). So every wait here polls with ``Test``/``Iprobe``: briefly flat out, because the
partner's reply is usually due within a few hundred microseconds, then sleeping ever longer, so that a rank
with nothing to do for seconds costs almost nothing.
"""

import os
import pickle
import sys
import time
import traceback

import numpy as np
from mpi4py import MPI

from data import DataError
from training import InputError

SPIN_SECONDS = 50e-6  # poll without sleeping this long: a reply this quick is not worth a sleep's latency
FIRST_SLEEP = 20e-6  # then sleep, starting here (the kernel rounds up to about 60 us) ...
MAX_SLEEP = 2e-3  # ... doubling up to this: an idle rank wakes 500 times a second at most
HOT_SECONDS = 5e-3  # but keep sleeps short for this long: within it the partner is computing a reply


def launched_by_mpi():
    """True when this process was started by mpirun/mpiexec (checked without initialising MPI)."""
    return any(name in os.environ for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"))


def mpi_description():
    """Vendor and version of the MPI library, for the results file."""
    vendor, version = MPI.get_vendor()
    return f"{vendor} {'.'.join(map(str, version))}"


def wait_until(done):
    """Call ``done()`` until it returns True, spinning briefly, then sleeping with back-off."""
    if done():
        return
    start = time.perf_counter()
    sleep = FIRST_SLEEP
    while not done():
        waited = time.perf_counter() - start
        if waited < SPIN_SECONDS:
            continue
        time.sleep(sleep)
        if waited > HOT_SECONDS:
            sleep = min(sleep * 2, MAX_SLEEP)


class ProtocolError(RuntimeError):
    """A message that the protocol does not allow at this point (wrong sender, tag, size)."""


class Channel:
    """Point-to-point messages on ``comm`` that wait cheaply and count the bytes they move.

    Arrays go as raw buffers (``Isend``/``Irecv``); small control messages as pickles (``send_obj``).
    """

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.bytes_sent = 0
        self.bytes_received = 0

    def traffic(self):
        """Bytes sent and received since the last call (and reset the counters)."""
        counts = {"bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received}
        self.bytes_sent = self.bytes_received = 0
        return counts

    def send(self, array, dest, tag):
        array = np.ascontiguousarray(array)
        request = self.comm.Isend(array, dest, tag)
        wait_until(request.Test)
        self.bytes_sent += array.nbytes

    def recv(self, array, source, tag):
        """Receive exactly ``array.size`` items into ``array``; a message of another size is an error."""
        status = MPI.Status()
        request = self.comm.Irecv(array, source, tag)
        wait_until(lambda: request.Test(status))
        if status.Get_count(MPI._typedict[array.dtype.char]) != array.size:
            raise ProtocolError(f"rank {self.rank}: message with tag {tag} from rank {status.Get_source()} "
                                f"has {status.Get_count()} bytes, expected {array.nbytes}")
        self.bytes_received += array.nbytes

    def probe(self, source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG):
        """Wait for a message and return its status (source, tag, size) without receiving it."""
        status = MPI.Status()
        wait_until(lambda: self.comm.Iprobe(source, tag, status))
        return status

    def send_obj(self, obj, dest, tag):
        payload = pickle.dumps(obj)
        request = self.comm.Isend(payload, dest, tag)
        wait_until(request.Test)
        self.bytes_sent += len(payload)

    def recv_obj(self, source, tag):
        status = self.probe(source, tag)
        payload = bytearray(status.Get_count())
        self.comm.Recv(payload, status.Get_source(), status.Get_tag())
        self.bytes_received += len(payload)
        return pickle.loads(payload)


def check_world(comm, servers, least_clients, command):
    """Refuse a world too small for the method, with the command that works."""
    if comm.Get_size() < servers + least_clients:
        raise InputError(f"needs at least {servers + least_clients} MPI processes ({servers} server and "
                         f"{least_clients}+ clients), got {comm.Get_size()}; run for example: {command}")


def collective(comm, setup):
    """Run ``setup()`` on every rank; if bad input stops any rank, every rank exits with status 2.

    For the start-up work that each rank does alike (parsing flags, checking the world size, loading data):
    rank 0 reports the first problem once, instead of eleven ranks each printing it.
    """
    try:
        value, problem = setup(), None
    except (DataError, InputError) as exc:
        value, problem = None, str(exc)
    except SystemExit as exc:  # argparse has already printed its message on rank 0
        value, problem = None, exc.code
    problems = comm.allgather(problem)
    failed = [p for p in problems if p is not None]
    if failed:
        if comm.Get_rank() == 0 and isinstance(failed[0], str):
            print(f"error: {failed[0]}", file=sys.stderr)
        sys.exit(2 if not isinstance(failed[0], int) else failed[0])
    return value


def quiet_on_other_ranks(parser, comm):
    """Let only rank 0's argparse print, so that a bad flag is reported once, not once per rank."""
    if comm.Get_rank() != 0:
        parser.print_usage = parser.print_help = lambda file=None: None
        parser._print_message = lambda message, file=None: None
        parser.exit = lambda status=0, message=None: sys.exit(status)


def run_mpi_main(main):
    """Run ``main()`` on this rank; if it raises, print the error and end every rank at once.

    An exception left to itself ends only its own rank while the others wait for it forever; MPI_Abort
    makes the launcher kill them all and return a non-zero status.
    """
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:
        rank = MPI.COMM_WORLD.Get_rank()
        if not isinstance(exc, KeyboardInterrupt):
            traceback.print_exc(file=sys.stderr)
        print(f"error: rank {rank}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        MPI.COMM_WORLD.Abort(1)
