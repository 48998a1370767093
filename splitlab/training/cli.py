"""The command line every training script shares (docs/design.md), the device, and how a script ends on bad
input: status 2 and one line, never a traceback."""

import argparse
import math
import os
import sys

import torch

from data import DataError
from models import MODELS
from splitlab.errors import InputError
from splitlab.training import codec


def _number(kind, low, inclusive):
    """An argparse type: ``kind`` (int or float) that must be > ``low`` (or >= when ``inclusive``)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}")
        if not math.isfinite(value):  # nan and inf parse as floats, and would train to the end on nonsense
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low}, not {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _number(int, 0, inclusive=False)
nonnegative_int = _number(int, 0, inclusive=True)
positive_float = _number(float, 0, inclusive=False)
nonnegative_float = _number(float, 0, inclusive=True)


def positive_int_list(text):
    """Comma-separated positive whole numbers, as a list."""
    try:
        numbers = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive whole numbers, not {text!r}")
    return numbers


def nonnegative_float_list(text):
    """Comma-separated finite numbers >= 0, as a list."""
    try:
        return [nonnegative_float(item) for item in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers >= 0, not {text!r}")


def fraction(text):
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def compress_spec(learned=True):
    """An argparse type: a --compress value (splitlab/training/codec.py), normalised (``topk:0.10`` ->
    ``topk:0.1``); ``learned``: whether ``bottleneck:C`` may come before the codec."""
    def parse(text):
        try:
            return codec.normalised(text, learned)
        except codec.SpecError as exc:
            raise argparse.ArgumentTypeError(str(exc))
    parse.__name__ = "codec"
    return parse


def common_parser(method, description):
    """An ArgumentParser with the flags every training script has (docs/design.md); defaults are the report's."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--epochs", type=positive_int, default=30,
        help="the most epochs to train (for FedAvg: rounds; one round = every client one pass over its data)")
    add("--patience", type=nonnegative_int, default=3,
        help="stop when the watched loss (the test set's, or the validation set's with --validation) has not "
             "improved for this many epochs; 0 turns early stopping off")
    add("--stop-at", type=fraction, default=None, metavar="ACCURACY",
        help="also stop once the watched accuracy (test, or validation with --validation) reaches this (0.8: "
             "80 %%), as time-to-accuracy studies need; default: never")
    add("--batch-size", type=positive_int, default=64, help="training mini-batch size")
    add("--test-batch-size", type=positive_int, default=1000, help="evaluation batch size")
    add("--lr", type=positive_float, default=0.01, help="SGD learning rate at the start")
    add("--lr-decay", type=fraction, default=0.1,
        help="multiply the learning rate by this once the watched loss has made no new best for --lr-patience "
             "epochs in a row (1 keeps it constant, as the report did)")
    add("--lr-patience", type=positive_int, default=2,
        help="epochs in a row without a new best watched loss before the learning rate decays; 2 lets one "
             "noisy epoch pass")
    add("--momentum", type=nonnegative_float, default=0.9, help="SGD momentum")
    add("--weight-decay", type=nonnegative_float, default=5e-4, help="SGD weight decay (L2)")
    add("--model", choices=MODELS, default="lenet5",
        help="the network: lenet5 (padded first convolution, the suite's), lenet5-report (the report's own "
             "code: unpadded), vgg-small (1.7 M parameters; models.py)")
    add("--seed", type=nonnegative_int, default=0,
        help="seed of every random choice: initial weights, shuffling, partition")
    add("--data-dir", default=None,
        help="folder with the four Fashion-MNIST files (downloaded there if missing); default: searched for "
             "in $FASHION_MNIST_DIR, ./data, /usr/share/datasets/fashion-mnist")
    add("--results-dir", default="results", help="where the results file is written")
    add("--run-name", default=method, help="the results file is <results-dir>/<run-name>.json")
    add("--train-subset", type=positive_int, default=None, help="use only the first N training images")
    add("--test-subset", type=positive_int, default=None, help="use only the first N test images")
    add("--validation", type=nonnegative_int, default=0, metavar="N",
        help="hold out N training images (drawn with --seed: the same for every method and rank) as a validation "
             "set, which early stopping, the learning-rate decay, --stop-at and the best epoch then read; the test "
             "set is still evaluated and reported, but chooses nothing. 0: the report's protocol, in which the test "
             "set is watched")
    add("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to compute; auto = cuda if any")
    add("--no-progress", action="store_true", help="no progress bar (also off when stderr is not a terminal)")
    add("--resume", action="store_true",
        help="go on after the last epoch that this run (the same --results-dir and --run-name) finished, from "
             "its checkpoint, every random state as it was; the other flags must be the same (--epochs may "
             "grow). With no checkpoint, the run starts at epoch 1; without --resume, any old checkpoint is dropped")
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
