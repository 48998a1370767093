"""The runs as the grids, the map and the reports see them: the one vocabulary of methods (label, script, flags),
the names the grids give their runs, and the finished runs of a folder. Standard library only: the reports
read results files without loading torch."""

import argparse
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

from splitlab.training.results_guard import FINISHED

MPIRUN = str(Path(sys.executable).parent / "mpirun")  # the launcher `make setup` installs beside this Python


class Method(NamedTuple):
    label: str
    script: str
    flags: tuple  # what the script needs besides its defaults to be this method
    mpi: bool  # runs under mpirun


METHODS = {
    "regular": Method("Regular learning", "regular_learning.py", (), False),
    "split": Method("Split learning", "split_learning.py", (), True),
    "split-cut2": Method("Split learning, cut 2", "split_learning.py", ("--cut-layer", "2"), True),
    "sflv1": Method("SplitFed V1", "split_learning.py", ("--variant", "sflv1"), True),
    "sflv2": Method("SplitFed V2", "split_learning.py", ("--variant", "sflv2"), True),
    "u-shaped": Method("U-shaped split learning", "split_learning.py", ("--variant", "u-shaped"), True),
    "federated": Method("FedAvg", "federated_learning.py", (), False),
    "sync_sgd": Method("Sync SGD", "sync_sgd.py", (), True),
}


def label(method):
    """The method's label; a name outside the vocabulary stands for itself."""
    return METHODS[method].label if method in METHODS else method


# ------------------------------------------------------------------------------------------- run names

GRID_CLIENTS = 10  # the report's data holders: a grid's run with this many clients has no -k in its name
GRID_VALIDATION = 5000  # training images a grid's run holds out (--validation): they, not the test set, choose
_RUN_NAME = re.compile(r"(?P<method>.+)-(?P<partition>iid|a[0-9.]+)-s(?P<seed>-?[0-9]+)(?:-k(?P<clients>[0-9]+))?")


def partition_value(text):
    """An argparse type: ``iid`` or a positive Dirichlet alpha, as given on the command line (and so in run names)."""
    if text == "iid":
        return text
    try:
        if float(text) > 0:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"a partition is 'iid' or a Dirichlet alpha > 0, not {text!r}")


def seed_value(text):
    """An argparse type: a seed, a whole number."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is an integer, not {text!r}") from None


def comma_list(kind):
    """An argparse type: comma-separated values of the type ``kind``, at least one, as a list."""
    def parse(text):
        values = [kind(item.strip()) for item in text.split(",") if item.strip()]
        if not values:
            raise argparse.ArgumentTypeError("needs at least one value")
        return values
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def same_partition(a, b):
    """Whether two partitions as text (``partition_value``) are the same: alphas compared as numbers (1.0 = 1)."""
    return a == b or "iid" not in (a, b) and float(a) == float(b)


def run_name(method, partition, seed, clients=GRID_CLIENTS):
    """A grid's name for a run: ``<method>-<iid|a<alpha>>-s<seed>[-k<clients>]``."""
    part = "iid" if partition == "iid" else f"a{partition}"
    return f"{method}-{part}-s{seed}" + ("" if clients == GRID_CLIENTS else f"-k{clients}")


def parse_run_name(name):
    """``name`` taken apart as :func:`run_name` made it: a dict of ``method``, ``partition`` ("iid" or the alpha as
    text), ``seed`` and ``clients``; None for a name no grid gives."""
    found = _RUN_NAME.fullmatch(name)
    if not found:
        return None
    return {"method": found["method"], "partition": found["partition"].removeprefix("a"), "seed": int(found["seed"]),
            "clients": int(found["clients"] or GRID_CLIENTS)}



def privacy_run_name(model, cut, setting):
    """The privacy grid's name for a run: ``<model>-cut<cut>-<setting>``."""
    return f"{model}-cut{cut}-{setting}"


def compression_run_name(model, method, cut, spec, grad, seed):
    """compression.py's name for a run: ``<model>[-cut<c>]-<method>-<spec>[-grad-<grad>]-s<seed>``, the specs'
    ``:`` and ``+`` as ``-`` and ``_`` (``lenet5-report-cut1-split-bottleneck-1_int4-s0``)."""
    def slug(text):
        return text.replace(":", "-").replace("+", "_")
    cut = "" if cut is None else f"-cut{cut}"
    return f"{model}{cut}-{method}-{slug(spec)}" + (f"-grad-{slug(grad)}" if grad else "") + f"-s{seed}"


def attack_files(run, aux):
    """The files of the attack on the run named ``run`` with ``aux`` auxiliary images: its scores, its figure."""
    return f"{run}-aux{aux}-attack.json", f"{run}-aux{aux}-reconstructions.png"


def fedavg_privacy_run_name(model, setting):
    """The privacy grid's name for a FedAvg run: ``<model>-fedavg``, with ``-<setting>`` when it is defended."""
    return f"{model}-fedavg" + ("" if setting == "none" else f"-{setting}")


def local_training_name(epochs, batch_size):
    """The name of the FedAvg client's local training in attack_updates.py's cases and the reports' rows:
    ``one local epoch, batch 64``, ``5 local epochs, batch 10``."""
    return f"{'one local epoch' if epochs == 1 else f'{epochs} local epochs'}, batch {batch_size}"


def update_attack_files(run):
    """The files of attack_updates.py's attack on the FedAvg run named ``run``: its scores, its figure."""
    return f"{run}-updates-attack.json", f"{run}-updates-reconstructions.png"


def attacked_run(scores_file):
    """The name of the run whose attack's scores are in ``scores_file`` (attack.py alone writes <run>-attack.json)."""
    return re.fullmatch(r"(.+?)(?:-aux[0-9]+)?-attack\.json", scores_file)[1]


# -------------------------------------------------------------------------------------------- reading runs

def read_run(path):
    """The results file at ``path``, or None if it cannot be read or is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def is_finished(run):
    """True for a run (a results dict, or None) that ended as planned: its last epoch, or a stopping rule."""
    return isinstance(run, dict) and run.get("status") in FINISHED


def finished_runs(folder, pattern="*.json"):
    """``(path, run)`` for every finished run with at least one epoch among the files of ``folder`` that match
    ``pattern``, in name order."""
    for path in sorted(Path(folder).glob(pattern)):
        run = read_run(path)
        if is_finished(run) and run.get("epochs"):
            yield path, run


def same_settings(flags, config, ignore=()):
    """Whether a results file's ``config`` has every ``--name value`` of ``flags`` (numbers compared as numbers)
    but those named in ``ignore``."""
    for name, value in zip(flags, flags[1:]):
        if not name.startswith("--") or value.startswith("--") or name[2:] in ignore:
            continue
        saved = config.get(name[2:].replace("-", "_"), object())
        try:
            if float(saved) != float(value):
                return False
        except (TypeError, ValueError):
            if str(saved) != value:
                return False
    return True


def resume_flags(path, flags):
    """``["--resume"]`` for a grid's run whose results file ``path`` is of a run of ``flags`` (but for --epochs,
    which may grow): it goes on from its checkpoint; else ``[]``, a fresh start."""
    saved = read_run(path)
    return ["--resume"] if saved and same_settings(flags, saved.get("config", {}), ignore=("epochs",)) else []


def watched_acc(epoch):
    """The accuracy of an epoch's record that choices read: the validation set's where the run held one out
    (--validation), else the test set's (the report's protocol)."""
    return epoch["val_acc"] if "val_acc" in epoch else epoch["test_acc"]


def watched_loss(epoch):
    return epoch["val_loss"] if "val_loss" in epoch else epoch["test_loss"]


def chosen_epoch(epochs):
    """The epoch whose test numbers a run reports: that of the best watched accuracy (``watched_acc``)."""
    return max(epochs, key=watched_acc)


def epoch_bytes(epoch):
    """The bytes an epoch's record says crossed the network: those sent, or for FedAvg in one process (which sends
    none) the model traffic down and up that it stands for."""
    return epoch.get("bytes_sent") or epoch.get("model_bytes_down", 0) + epoch.get("model_bytes_up", 0)
