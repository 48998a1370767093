"""How every MPI method runs: rank 0 drives, the other ranks serve.

    driver (rank 0)                                   every other rank
    ---------------                                   ----------------
    set up (flags, world size, data), the same on every rank; bad input ends all with status 2
    channel.gather(settings)  ----------------------- channel.gather(settings): every rank set up
    fit(): per epoch  driver.train_epoch(epoch, lr)    serve(): wait for the driver's next message and
                      driver.evaluate()                         run the handler its tag names
    driver.final_summary(), then driver.stop()  ----> STOP ends the serve loop

A method is then a driver class (``train_epoch``, ``evaluate``, ``final_summary``, ``stop``, ``shard_sizes``) and
a worker class whose ``handlers`` map each tag to a method; :func:`run_method` does the rest. The messages are in
``protocol.py``, the messaging in ``messaging.py``; each role class takes its threads and its way of waiting from
``process_policy.py`` when it is made.
"""

import collections
import contextlib
import inspect
import io
import os
import sys
import time
import traceback

import numpy as np
import torch
from mpi4py import MPI

from data import DataError, load_shards
from splitlab.errors import InputError
from splitlab.net import runtime
from splitlab.net.link import Link
from splitlab.net.messaging import Channel, PeerError, PeerFailed, mpi_description
from splitlab.net.placement import Placement
from splitlab.net.protocol import SERVER, ProtocolError, Tag, tag_name
from splitlab.training.checkpoint import Checkpoint
from splitlab.training.cli import resolve_device
from splitlab.training.loop import fit
from splitlab.training.results import Results, check_results_dir, results_path, start_guard

ABORT_GRACE_S = 1.0  # time the launcher has to forward a failing rank's last words


def check_world(comm, least_clients, command):
    """Refuse a world too small for the method (one server and ``least_clients``), with the command that works."""
    if comm.Get_size() < 1 + least_clients:
        raise InputError(f"needs at least {1 + least_clients} MPI processes (1 server and "
                         f"{least_clients}+ clients), got {comm.Get_size()}; run for example: {command}")


def collective(comm, setup):
    """Run ``setup()`` on every rank; if bad input stops any rank, every rank exits with status 2.

    Rank 0 reports the first problem once, instead of eleven ranks each printing it.
    """
    try:
        value, problem = setup(), None
    except (DataError, InputError) as exc:
        value, problem = None, str(exc)
    except SystemExit as exc:  # argparse has already printed its message on rank 0
        value, problem = None, exc.code
    failed = [p for p in comm.allgather(problem) if p is not None]
    if failed:
        if comm.Get_rank() == 0 and isinstance(failed[0], str):
            print(f"error: {failed[0]}", file=sys.stderr)
        sys.exit(2 if not isinstance(failed[0], int) else failed[0])
    return value


def parse_args(parser, comm):
    """Parse the command line on every rank. Only rank 0's argparse prints, so that ``--help`` or a bad flag is
    reported once, not once per rank; a bad flag ends every rank with status 2."""
    def parse():
        if comm.Get_rank() == 0:
            return parser.parse_args()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return parser.parse_args()

    return collective(comm, parse)


def serve(channel, handlers):
    """A worker's loop: wait for the driver's next message, run the handler of its tag, until STOP.

    A control message's dict becomes the handler's keyword arguments (a key the handler does not take, or one
    missing, is a ProtocolError); a handler for an array tag receives the array itself (it knows the buffer).
    A handler for STOP, if any, runs before the loop ends.
    """
    signatures = {tag: inspect.signature(handler) for tag, handler in handlers.items()}
    while True:
        tag = channel.probe(SERVER, idle=True).Get_tag()
        if tag not in handlers and tag != Tag.STOP:
            raise ProtocolError(f"rank {channel.rank}: unexpected message {tag_name(tag)} from the server")
        tag = Tag(tag)
        command = channel.recv_obj(SERVER, tag) if tag.is_control else {}
        if tag in handlers:
            try:
                signatures[tag].bind(**command)
            except TypeError as exc:
                raise ProtocolError(f"rank {channel.rank}: {tag.name} from the server with fields "
                                    f"{sorted(command)}: {exc}") from None
            handlers[tag](**command)
        if tag == Tag.STOP:
            channel.flush()
            return


def take_turns(channel, clients, at_once, start, handlers, rank_of=lambda client: client, ahead=2):
    """Give ``clients`` their turns on at most ``at_once`` ranks at a time: ``start(client)`` begins a turn, and
    the next client starts whenever a turn ends. A rank (``rank_of``) runs its clients one at a time, in the order
    they were started, so a rank at work is given up to ``ahead`` clients: the next one's command waits there and
    it starts without a round trip to this rank (1,000 clients of a few batches each would otherwise wait for
    one after every turn). A message from a rank belongs to the oldest of its clients in their turns. Each
    message goes to ``handlers[tag](client)`` (which receives it); a handler that returns True ends that client's
    turn. Returns once every turn has ended. A message from a rank with no client in its turn, or with a tag no
    handler takes, is a ProtocolError.
    """
    waiting, active = {}, {}  # rank -> its clients not yet started / in their turns, in order
    for client in clients:
        waiting.setdefault(rank_of(client), collections.deque()).append(client)
    position = {client: i for i, client in enumerate(clients)}

    def begin():
        """Start the first waiting client whose rank may take it; False if there is none."""
        ready = [queue[0] for rank, queue in waiting.items()
                 if len(active.get(rank, ())) < ahead and (rank in active or len(active) < at_once)]
        if not ready:
            return False
        client = min(ready, key=position.get)
        rank = rank_of(client)
        waiting[rank].popleft()
        if not waiting[rank]:
            del waiting[rank]
        active.setdefault(rank, []).append(client)
        start(client)
        return True

    while begin():
        pass
    while active:
        status = channel.probe(awaited=sorted(active))
        rank, tag = status.Get_source(), status.Get_tag()
        if rank not in active or tag not in handlers:
            raise ProtocolError(f"rank {channel.rank} got {tag_name(tag)} from rank {rank}, which "
                                f"{'has no client in its turn' if rank not in active else 'may not send it now'}")
        if handlers[tag](active[rank][0]):
            active[rank].pop(0)
            if not active[rank]:
                del active[rank]
            while begin():
                pass


def per_client(clients, method):
    """A ``serve()`` handler that runs ``method`` of the client a command names in its ``client`` field (one of
    ``clients``, a dict number -> client object). Its signature is the method's plus ``client``, so that
    ``serve()`` checks a command's fields against the method."""
    def handler(client, **fields):
        if client not in clients:
            raise ProtocolError(f"a command for client {client}, which is not on this rank (it holds "
                                f"{min(clients)}..{max(clients)})")
        return getattr(clients[client], method)(**fields)

    keyword = inspect.Parameter.KEYWORD_ONLY
    params = inspect.signature(getattr(next(iter(clients.values())), method)).parameters.values()
    handler.__signature__ = inspect.Signature(
        [inspect.Parameter("client", keyword)]
        + [p if p.kind == inspect.Parameter.VAR_KEYWORD else p.replace(kind=keyword) for p in params])
    return handler


def load_clients(args, rank, placement):
    """What a rank holds in a method whose rank 0 evaluates a whole model: rank 0 the test set and the size of
    every shard; a client rank its own clients' shards (``{client: (x, y)}``), nobody else's, and the size of
    every shard."""
    mine = placement.clients_on(rank) if rank != SERVER else ()
    shard_sizes, shards, (x_test, y_test) = load_shards(args, placement.num_clients, mine)
    return (x_test, y_test, shard_sizes) if rank == SERVER else (shards, shard_sizes)


def emulated_link():
    """The network that ``LINK`` in the environment asks to emulate (messaging.Link), or None."""
    try:
        return Link.parse(os.environ["LINK"]) if os.environ.get("LINK") else None
    except ValueError as exc:
        raise InputError(str(exc)) from None


def stop_workers(channel):
    """Tell every other rank to stop, and wait until every message sent has been delivered."""
    for rank in range(1, channel.comm.Get_size()):
        channel.send_obj({}, rank, Tag.STOP)
    channel.flush()


def settings(channel):
    """What process_policy gave this rank, for the results file: its compute threads, and how long it polls."""
    return [torch.get_num_threads(), channel.poll_s]


def run_method(parser, method, command, load, roles, check=None):
    """The ``main()`` of an MPI method: set up every rank alike, then drive on rank 0 and serve elsewhere.

    ``--clients K`` (default: one a rank after rank 0) are placed on the ranks by ``placement.Placement``;
    ``load(args, rank, placement)`` returns what this rank may hold (a client rank: its own clients' shards,
    nobody else's); ``roles(args)`` the driver and worker classes, each built as ``(channel, args, data, device,
    placement)``; ``check(args, world_size)``, if given, raises InputError for flags that do not fit the world.
    """
    comm = MPI.COMM_WORLD
    args = parse_args(parser, comm)

    def setup():
        check_world(comm, 1, command)
        args.clients = args.clients or comm.Get_size() - 1
        placement = Placement(args.clients, comm.Get_size() - 1)
        if check:
            check(args, comm.Get_size())
        checkpoint = Checkpoint(args, comm.Get_rank(), comm.Get_size())
        if comm.Get_rank() == SERVER:
            check_results_dir(args.results_dir)
        resume_after = checkpoint.committed_epoch(args.resume) if comm.Get_rank() == SERVER else 0
        return (resolve_device(args.device), placement, load(args, comm.Get_rank(), placement), emulated_link(),
                checkpoint, resume_after)

    device, placement, data, link, checkpoint, resume_after = collective(comm, setup)
    epoch = np.array([resume_after])
    comm.Bcast(epoch, root=SERVER)  # rank 0 read which epoch every rank finished
    saved = collective(comm, lambda: checkpoint.load(int(epoch[0])))
    runtime.release_freed_memory()  # the rest of the data set, which this rank does not keep
    channel = Channel(comm, link)
    try:
        channel.stall_timeout = args.stall_timeout
        driver_class, worker_class = roles(args)
        if channel.rank != SERVER:
            start_guard(results_path(args), channel.rank, channel.hosts[channel.rank])
            worker = worker_class(channel, args, data, device, placement)
            channel.gather(settings(channel))  # every rank set up: the first epoch's time is training alone
            if saved:
                resume_rank(channel, worker, saved)
            serve(channel, {**worker.handlers, Tag.CHECKPOINT: lambda epoch: save_worker(channel, checkpoint, worker,
                                                                                          epoch)})
            checkpoint.keep_last()
            return
        driver = driver_class(channel, args, data, device, placement)
        results = Results(args, parser, method, device, world_size=comm.Get_size(), mpi=mpi_description(),
                          host=channel.hosts[SERVER])
        results.data["shard_sizes"] = list(driver.shard_sizes)  # each client's training examples, in client order
        results.data["placement"] = placement.describe()
        threads, poll = zip(*channel.gather(settings(channel)))
        results.data["environment"].update(link=os.environ.get("LINK") if link else None,
                                           message_wait="doorbells" if channel.bells.enabled else "polling",
                                           hosts=channel.hosts,
                                           rank_threads=[int(t) for t in threads], rank_poll_s=list(poll))
        if saved:
            resume_rank(channel, driver, saved)
        fit(args, results, driver.train_epoch, driver.evaluate, final_info=driver.final_summary,
            save=lambda epoch, loop_state: save_every_rank(channel, checkpoint, driver, epoch, loop_state),
            resumed=saved and saved["loop"])
        driver.stop()
        checkpoint.keep_last()
        print(f"results: {results.path}")
    except SystemExit:
        raise
    except BaseException as exc:
        end_job(exc, channel)


def save_every_rank(channel, checkpoint, driver, epoch, loop_state):
    """Rank 0's checkpoint after ``epoch``: every rank writes its state, and once all have, the epoch is done."""
    ranks = range(1, channel.comm.Get_size())
    for rank in ranks:
        channel.send_obj({"epoch": epoch}, rank, Tag.CHECKPOINT)
    checkpoint.save(epoch, {"role": driver.state_dict(), "unreported": channel.unreported(), "loop": loop_state})
    for rank in ranks:
        channel.recv_obj(rank, Tag.SAVED)
    checkpoint.commit(epoch)


def save_worker(channel, checkpoint, worker, epoch):
    """A worker's part of the checkpoint after ``epoch``."""
    checkpoint.save(epoch, {"role": worker.state_dict(), "unreported": channel.unreported()})
    channel.send_obj({}, SERVER, Tag.SAVED)


def resume_rank(channel, role, saved):
    """Put this rank's checkpoint back: its role's state, and the traffic it had yet to report (so that the
    resumed epoch counts the bytes of an epoch that was never stopped)."""
    role.load_state_dict(saved["role"])
    channel.set_unreported(saved["unreported"])


def run_mpi_main(main):
    """Run ``main()`` on this rank; if it raises, end the job (:func:`end_job`). An exception left to itself ends
    only its own rank while the others wait for it forever."""
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:
        end_job(exc)


def end_job(exc, channel=None):
    """Print this rank's error, tell rank 0 through ``channel`` (once this rank has one), and end every rank at once.

    MPI_Abort makes the launcher kill every rank and return a non-zero status. A failing worker first tells rank 0
    (a FAILED message), so that rank 0 marks its results file failed with this rank's error. The launcher may kill
    before it has forwarded what a rank wrote last, so the message goes out in one write and the rank waits
    ABORT_GRACE_S before it aborts. What a peer did wrong (a ProtocolError, a stall, a failure it reported) gets
    its one line, without this rank's traceback. Called while ``exc`` is being handled.
    """
    rank = MPI.COMM_WORLD.Get_rank()
    quiet = isinstance(exc, (KeyboardInterrupt, ProtocolError, PeerError))
    error = f"{type(exc).__name__}: {exc}"
    sys.stderr.write(f"{'' if quiet else traceback.format_exc()}error: rank {rank}: {error}\n")
    sys.stderr.flush()
    start = time.perf_counter()
    if channel is not None and not isinstance(exc, PeerFailed):
        channel.report_failure(f"{channel.who(rank)}: {error}", ABORT_GRACE_S)
    time.sleep(max(0.0, ABORT_GRACE_S - (time.perf_counter() - start)))
    MPI.COMM_WORLD.Abort(1)
