"""What every method shares: the command line, seeding, the train and evaluate steps, early stopping,
the results file and the epoch loop that ties them together.

Only helpers live here; each method's script decides what one epoch is. Helpers return numbers; the scripts'
``main()`` and :func:`fit` are the only places that print or write.
"""

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from data import DataError
from models import MODELS
from results_guard import write_json_atomic


class InputError(Exception):
    """Bad input found after argument parsing (world size, partition...): exit status 2, no traceback."""


# ---------------------------------------------------------------------------------------------- command line

def _number(kind, low, inclusive):
    """An argparse type: ``kind`` (int or float) that must be > ``low`` (or >= when ``inclusive``)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}")
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low}, not {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _number(int, 0, inclusive=False)
nonnegative_int = _number(int, 0, inclusive=True)
positive_float = _number(float, 0, inclusive=False)
nonnegative_float = _number(float, 0, inclusive=True)


def fraction(text):
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def common_parser(method, description):
    """An ArgumentParser with the flags every training script has (docs/design.md); defaults are the report's."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--epochs", type=positive_int, default=30,
        help="the most epochs to train (for FedAvg: rounds; one round = every client one pass over its data)")
    add("--patience", type=nonnegative_int, default=3,
        help="stop when the test loss has not improved for this many epochs; 0 turns early stopping off")
    add("--stop-at", type=fraction, default=None, metavar="ACCURACY",
        help="also stop once the test accuracy reaches this (0.8: 80 %%), as time-to-accuracy studies need; "
             "default: never")
    add("--batch-size", type=positive_int, default=64, help="training mini-batch size")
    add("--test-batch-size", type=positive_int, default=1000, help="evaluation batch size")
    add("--lr", type=positive_float, default=0.01, help="SGD learning rate at the start")
    add("--lr-decay", type=fraction, default=0.1,
        help="multiply the learning rate by this once the test loss has made no new best for --lr-patience "
             "epochs in a row (1 keeps it constant, as the report did)")
    add("--lr-patience", type=positive_int, default=2,
        help="epochs in a row without a new best test loss before the learning rate decays; 2 lets one "
             "noisy epoch pass")
    add("--momentum", type=nonnegative_float, default=0.9, help="SGD momentum")
    add("--weight-decay", type=nonnegative_float, default=5e-4, help="SGD weight decay (L2)")
    add("--model", choices=MODELS, default="lenet5",
        help="the network: lenet5 (padded first convolution, the suite's), lenet5-report (the report's own "
             "code: unpadded), vgg-small (1.7 M parameters; models.py)")
    add("--seed", type=int, default=0, help="seed of every random choice: initial weights, shuffling, partition")
    add("--data-dir", default=None,
        help="folder with the four Fashion-MNIST files (downloaded there if missing); default: searched for "
             "in $FASHION_MNIST_DIR, ./data, /usr/share/datasets/fashion-mnist")
    add("--results-dir", default="results", help="where the results file is written")
    add("--run-name", default=method, help="the results file is <results-dir>/<run-name>.json")
    add("--train-subset", type=positive_int, default=None, help="use only the first N training images")
    add("--test-subset", type=positive_int, default=None, help="use only the first N test images")
    add("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to compute; auto = cuda if any")
    add("--no-progress", action="store_true", help="no progress bar (also off when stderr is not a terminal)")
    return parser


def add_client_args(parser):
    """``--partition`` and ``--alpha``: how the training set is divided among the clients."""
    add = parser.add_argument
    add("--partition", choices=["iid", "dirichlet"], default="iid",
        help="how the training set is divided among clients")
    add("--alpha", type=positive_float, default=0.5,
        help="Dirichlet concentration for --partition dirichlet (smaller = more skewed)")


STALL_TIMEOUT_S = 300.0


def add_mpi_args(parser, one_process_clients=None):
    """``--clients`` and ``--stall-timeout``: the flags of a method that runs over MPI (``one_process_clients``:
    the default number of clients of a method that also runs in one process)."""
    one_process = f"; in one process {one_process_clients}" if one_process_clients else ""
    parser.add_argument(
        "--clients", type=positive_int, default=None, metavar="K",
        help=f"number of clients (data holders), spread over the ranks after rank 0 in contiguous blocks, one "
             f"client at a time per rank (placement.py); at least the number of those ranks. Default: one a "
             f"rank{one_process}. K clients give the same numbers on any number of ranks")
    parser.add_argument(
        "--stall-timeout", type=positive_float, default=STALL_TIMEOUT_S, metavar="S",
        help="end the job, naming the rank, when a rank waits S seconds for a message that should come (a peer "
             "stopped or lost); a client waiting between its turns allows 10 x S, since it waits through the "
             "other clients' turns. The longest such wait of the report's experiment on 2 cores is a few seconds")


def warn_if_link_set():
    """A one-process run has no messages for ``LINK`` to delay: say so rather than ignore it silently."""
    if os.environ.get("LINK"):
        print(f"warning: LINK={os.environ['LINK']} is ignored: it delays the messages of runs over MPI, and this run "
              "has none (run it with mpirun, or estimate with link_estimate.py)", file=sys.stderr)


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    return torch.device(name)


def launched_by_mpi():
    """True when this process was started by mpirun/mpiexec (checked without initialising MPI)."""
    return any(name in os.environ for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"))


def run_main(main):
    """Run ``main()``; bad input ends with status 2 and one ``error: ...`` line instead of a traceback."""
    try:
        main()
    except (DataError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted; the results file keeps the last complete epoch", file=sys.stderr)
        sys.exit(130)


# ------------------------------------------------------------------------------------------ train, evaluate

def train_step(model, optimizer, x, y):
    """One SGD step on the batch ``x``, ``y``; returns its mean training loss, still on the device."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_epoch(model, optimizer, batch_iter, work=None):
    """One pass of SGD over ``batch_iter``; returns the mean training loss per example. ``work`` (work.py), if
    given, counts the batches' FLOPs.

    The batch losses are read once, at the end: reading each at once would make the host wait for a GPU after
    every step, where it could be queueing the next. Summed in order, in double precision, as floats are.
    """
    model.train()
    losses, sizes = [], []
    for x, y in batch_iter:
        with work.batch(len(y)) if work else contextlib.nullcontext():
            losses.append(train_step(model, optimizer, x, y))
        sizes.append(len(y))
    values = torch.stack(losses).tolist() if losses else []
    return sum(value * size for value, size in zip(values, sizes)) / max(sum(sizes), 1)


class Scores:
    """Test loss and accuracy summed over batches, overall and per class."""

    def __init__(self, num_classes=10):
        self.loss_sum, self.examples = 0.0, 0
        self.correct, self.counts = torch.zeros(num_classes), torch.zeros(num_classes)

    def add(self, logits, target):
        self.loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
        self.examples += len(target)
        hits = (logits.argmax(1) == target).float().cpu()
        target = target.cpu()
        self.correct.index_add_(0, target, hits)
        self.counts.index_add_(0, target, torch.ones_like(hits))

    def merge(self, sums):
        """Add the ``sums()`` of another Scores, as sent over the wire."""
        self.loss_sum += sums["loss_sum"]
        self.examples += sums["examples"]
        self.correct += torch.tensor(sums["correct"])
        self.counts += torch.tensor(sums["counts"])

    def sums(self):
        return {"loss_sum": self.loss_sum, "examples": self.examples, "correct": self.correct.tolist(),
                "counts": self.counts.tolist()}

    def result(self):
        """``test_loss``, ``test_acc`` and ``test_class_acc`` (one fraction per class; None for a class the
        test set lacks): the keys every method records."""
        return {"test_loss": self.loss_sum / self.examples, "test_acc": self.correct.sum().item() / self.examples,
                "test_class_acc": [c / n if n else None for c, n in zip(self.correct.tolist(), self.counts.tolist())]}


@torch.no_grad()
def evaluate(model, x, y, batch_size):
    """``test_loss``, ``test_acc`` (in [0, 1]) and ``test_class_acc`` of ``model`` (any callable) on ``x``, ``y``."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    scores = Scores()
    for start in range(0, len(y), batch_size):
        scores.add(model(x[start:start + batch_size]), y[start:start + batch_size])
    return scores.result()


def sgd(params, args):
    return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


class Plateau:
    """Watches the test loss: decays the learning rate once ``lr_patience`` epochs in a row have made no new
    best (and again after each further ``lr_patience``), and says stop once there has been none for
    ``patience`` epochs in a row (0: never stop early)."""

    def __init__(self, patience, lr, decay, lr_patience):
        self.patience, self.lr, self.decay, self.lr_patience = patience, lr, decay, lr_patience
        self.best_loss = float("inf")
        self.epochs_without_improvement = 0

    def should_stop(self, test_loss):
        if test_loss < self.best_loss:
            self.best_loss = test_loss
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
            if self.epochs_without_improvement % self.lr_patience == 0:
                self.lr *= self.decay
        return self.patience > 0 and self.epochs_without_improvement >= self.patience


# ------------------------------------------------------------------------------------------------- results

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


class Results:
    """The run's results file (docs/design.md, "Results format"), rewritten after every change. A guard process
    (results_guard.py) marks it failed should this process be killed before it says how the run ended."""

    def __init__(self, args, parser, method, device, world_size=1, mpi=None):
        self.path = Path(args.results_dir) / f"{args.run_name}.json"
        self.data = {"method": method, "status": "running",
                     "config": {**vars(args), "world_size": world_size},
                     "defaults": vars(parser.parse_args([])),  # the report's experiment: what plots compare with
                     "environment": environment(device, mpi), "epochs": [], "best": None}
        check_results_dir(args.results_dir)
        write_json_atomic(self.path, self.data)
        # Its own session: a launcher that kills this process's group leaves the guard to do its work.
        self.guard = subprocess.Popen([sys.executable, str(Path(__file__).with_name("results_guard.py")),
                                       str(self.path)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)

    def add_epoch(self, record):
        self.data["epochs"].append(record)
        best = self.data["best"]
        if best is None or record["test_loss"] < best["test_loss"]:
            self.data["best"] = {k: record[k] for k in ("epoch", "test_loss", "test_acc")}
        write_json_atomic(self.path, self.data)

    def finish(self, status, **extra):
        self.data.update(status=status, **extra)
        write_json_atomic(self.path, self.data)


# ---------------------------------------------------------------------------------------------- epoch loop

def progress_enabled(args):
    return not args.no_progress and sys.stderr.isatty()


def progress(args, iterable, total, desc):
    """``iterable`` with a tqdm bar of ``total`` steps, silent when progress is off."""
    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True,
                disable=not progress_enabled(args))


def at_chance(record):
    """True when the test accuracy is at most 1.5 times what guessing gets (15 % with 10 classes)."""
    classes = [a for a in record.get("test_class_acc") or [] if a is not None]
    return bool(classes) and record["test_acc"] <= 1.5 / len(classes)


def fit(args, results, train_one_epoch, evaluate_model, final_info=dict):
    """The loop every method shares: train an epoch, evaluate, record, stop early (on a plateau, or at
    ``--stop-at``); returns the results dict.

    ``train_one_epoch(epoch, lr)`` trains with learning rate ``lr`` and returns a dict with at least
    ``train_loss`` (and ``bytes_sent``, ``bytes_received`` where processes talk); ``evaluate_model()`` one with
    ``test_loss`` and ``test_acc``.
    ``final_info()`` gives keys to add to the results once training is over (those under ``per_epoch``, a list
    of values each, go into the epochs' records). A crash, in training or in
    ``final_info``, marks the results file ``failed`` and keeps every completed epoch.
    """
    plateau = Plateau(args.patience, args.lr, args.lr_decay, args.lr_patience)
    status = "completed"
    start = time.perf_counter()
    try:
        for epoch in range(1, args.epochs + 1):
            epoch_start = time.perf_counter()
            record = {"epoch": epoch, "lr": plateau.lr, "bytes_sent": 0, "bytes_received": 0,
                      **train_one_epoch(epoch, plateau.lr)}
            train_time = time.perf_counter() - epoch_start
            evaluation = evaluate_model()
            for key in ("bytes_sent", "bytes_received"):  # evaluation traffic belongs to the epoch too
                record[key] += evaluation.pop(key, 0)
            record.update(evaluation)
            now = time.perf_counter()
            record.update(epoch_time_s=now - epoch_start, train_time_s=train_time, elapsed_s=now - start)
            if at_chance(record):
                record["at_chance"] = True
                print(f"warning: epoch {epoch}: test accuracy {record['test_acc']:.1%} is at chance level: the model "
                      "predicts about one class (see the README, 'A run that does not learn')", file=sys.stderr)
            results.add_epoch(record)
            print(f"epoch {epoch:3d}  train loss {record['train_loss']:.4f}  test loss {record['test_loss']:.4f}  "
                  f"test acc {record['test_acc']:.4f}  {record['epoch_time_s']:.1f} s", file=sys.stderr, flush=True)
            if plateau.should_stop(record["test_loss"]) or (args.stop_at and record["test_acc"] >= args.stop_at):
                status = "stopped_early"
                break
        final = final_info()
    except BaseException as exc:
        results.finish("failed", **failure(exc))
        raise
    for key, values in final.pop("per_epoch", {}).items():  # keys only known at the end (sync SGD's work)
        for record, value in zip(results.data["epochs"], values):
            record[key] = value
    results.finish(status, epochs_at_chance=[e["epoch"] for e in results.data["epochs"] if e.get("at_chance")],
                   **final)
    return results.data


def failure(exc):
    """The results keys of a failed run: ``error`` (one line) and, where another rank failed, ``failed_rank``."""
    rank = getattr(exc, "rank", None)
    return {"error": f"{type(exc).__name__}: {exc}", **({"failed_rank": rank} if rank is not None else {})}
