"""The run's results file (docs/design.md, "Results format"), with a guard process that marks it failed should
the run be killed."""

import atexit
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from splitlab.errors import InputError
from splitlab.runs import watched_loss
from splitlab.training.results_guard import notes_path, write_json_atomic


def environment(device, mpi=None):
    return {"python": platform.python_version(), "torch": torch.__version__, "mpi": mpi,
            "cpus": os.cpu_count(), "device": str(device)}


def check_results_dir(folder):
    """Make ``folder`` if need be and check that a file can be written there; InputError if not."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"cannot write results into {folder}: {exc.strerror}; choose another --results-dir") from None


def results_path(args):
    """The run's results file: ``<results-dir>/<run-name>.json``."""
    return Path(args.results_dir) / f"{args.run_name}.json"


def start_guard(path, rank=None, host=None):
    """Start results_guard.py for the results file ``path``, watching this process (``rank`` on ``host``: one
    rank of an MPI run, which tells its guard "done" as it exits normally)."""
    # Its own session: a launcher that kills this process's group leaves the guard to do its work.
    guard = subprocess.Popen([sys.executable, str(Path(__file__).with_name("results_guard.py")), str(path),
                              *([str(rank), host] if rank is not None else [])],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    if rank is not None:
        atexit.register(say_done, guard)
    return guard


def say_done(guard):
    try:
        guard.stdin.write(b"done")
        guard.stdin.close()
    except (OSError, ValueError):  # the guard is gone, or its pipe already closed
        pass


class Results:
    """The run's results file (docs/design.md, "Results format"), rewritten after every change. A guard process
    (results_guard.py) marks it failed should this process be killed before it says how the run ended."""

    def __init__(self, args, parser, method, device, world_size=1, mpi=None, host=None):
        self.path = results_path(args)
        self.data = {"method": method, "status": "running",
                     "config": {**vars(args), "world_size": world_size},
                     "defaults": vars(parser.parse_args([])),  # the report's experiment: what plots compare with
                     "environment": environment(device, mpi), "epochs": [], "best": None}
        check_results_dir(args.results_dir)
        write_json_atomic(self.path, self.data)
        notes_path(self.path).unlink(missing_ok=True)  # an earlier run's ranks' ends
        self.guard = start_guard(self.path, *((0, host) if world_size > 1 else ()))

    def add_epoch(self, record):
        """Add an epoch's record; ``best`` is the epoch of the least watched loss (validation's with a validation
        set, else the test set's)."""
        self.data["epochs"].append(record)
        best = self.data["best"]
        if best is None or watched_loss(record) < watched_loss(best):
            self.data["best"] = {k: record[k] for k in ("epoch", "val_loss", "val_acc", "test_loss", "test_acc")
                                 if k in record}
        write_json_atomic(self.path, self.data)

    def resume(self, loop_state):
        """Go on from a checkpoint's ``loop_state`` (loop.fit): its epochs' records, and the epochs after which
        the run has been resumed."""
        self.data.update(epochs=list(loop_state["epochs"]), best=loop_state["best"],
                         resumed_after_epochs=[*loop_state["resumed_after_epochs"], loop_state["epoch"]])
        write_json_atomic(self.path, self.data)

    def finish(self, status, **extra):
        self.data.update(status=status, **extra)
        write_json_atomic(self.path, self.data)
