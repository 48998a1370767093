"""Split learning and FedAvg with their messages compressed, every setting at each cut, on 10 clients and several
seeds: how many bytes each saves and what accuracy it costs (make compression).

    python compression.py                                   # the default grid into results/compression/
    python compression.py --settings split=int8,local-loss=none --cuts 2 --seeds 0 --epochs 2   # a quick look
    python compression.py --dry-run                         # the runs and their commands; nothing run

A setting is ``METHOD=SPEC`` or ``METHOD=SPEC/GRAD``: METHOD ``split`` (vanilla split learning), ``local-loss``
or ``fedavg``; SPEC a --compress value (splitlab/training/codec.py), GRAD a --compress-grad value (split only).
Every run holds out --validation images and trains --epochs epochs (FedAvg: rounds) with early stopping off, so
every setting has the same budget; a finished run is not run again, a cut-short one resumes. Then
``python plot_results.py`` writes results/compression.json (each setting against the uncompressed run of its
method family at its cut, seed by seed), its table and results/compression.png.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from splitlab.runs import (
    GRID_VALIDATION,
    MPIRUN,
    comma_list,
    compression_run_name,
    is_finished,
    read_run,
    resume_flags,
    seed_value,
)
from splitlab.training import codec
from splitlab.training.cli import positive_int, positive_int_list

ROOT = Path(__file__).resolve().parent
METHODS = {"split": ("split_learning.py", ["--variant", "vanilla"]),
           "local-loss": ("split_learning.py", ["--variant", "local-loss"]),
           "fedavg": ("federated_learning.py", [])}
DEFAULT_SETTINGS = ("split=none,split=int8,split=bottleneck:1+int4,split=bottleneck:2+int4,split=topk:0.1,"
                    "local-loss=none,local-loss=bottleneck:2+int4,local-loss=bottleneck:4+int4,split=int4,"
                    "fedavg=none,fedavg=int8,fedavg=int4,fedavg=topk:0.1")


def setting(text):
    """``METHOD=SPEC[/GRAD]`` -> (method, spec, grad spec or None), each spec normalised."""
    method, _, specs = text.partition("=")
    spec, _, grad = specs.partition("/")
    if method not in METHODS or not spec:
        raise argparse.ArgumentTypeError(f"a setting is METHOD=SPEC[/GRAD] with METHOD one of {', '.join(METHODS)}; "
                                         f"not {text!r}")
    if grad and method != "split":
        raise argparse.ArgumentTypeError(f"{text!r}: only split learning sends gradients (/GRAD)")
    try:
        spec = codec.normalised(spec, learned=method != "fedavg")
        return method, spec, codec.normalised(grad, learned=False) if grad else None
    except codec.SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def settings_list(text):
    return [setting(item.strip()) for item in text.split(",") if item.strip()]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--settings", type=settings_list, default=settings_list(DEFAULT_SETTINGS), metavar="LIST",
        help="comma-separated METHOD=SPEC[/GRAD] (see the module's help)")
    add("--model", default="lenet5-report", help="the network")
    add("--cuts", type=positive_int_list, default=[1, 2], metavar="LIST", help="the cut layers of the split methods")
    add("--seeds", type=comma_list(seed_value), default=[0, 1, 2], metavar="LIST", help="comma-separated seeds")
    add("--epochs", type=positive_int, default=5, help="epochs (FedAvg: rounds) of every run")
    add("--clients", type=positive_int, default=10, help="data holders")
    add("--ranks", type=positive_int, default=2,
        help="MPI processes of a split run (the server and ranks-1 client ranks; the numbers do not depend on it)")
    add("--validation", type=positive_int, default=GRID_VALIDATION, help="training images held out")
    add("--results-dir", default="results/compression")
    add("--extra", default="", help="more flags for every run, e.g. '--train-subset 3000 --test-subset 1000'")
    add("--dry-run", action="store_true", help="print the runs and their commands, run nothing")
    return parser


def runs(args):
    """``(run name, its flags, command)`` of every run of the grid, FedAvg's (which has no cut) once; seed by seed,
    so that a grid cut short has every setting at its first seeds."""
    for seed in args.seeds:
        for method, spec, grad in args.settings:
            script, flags = METHODS[method]
            for cut in [None] if method == "fedavg" else args.cuts:
                name = compression_run_name(args.model, method, cut, spec, grad, seed)
                run_flags = [*flags, "--compress", spec, *(["--compress-grad", grad] if grad else []),
                             *(["--cut-layer", str(cut), "--leakage-images", "0", "--eval-clients", "1"]
                               if cut else []),
                             "--model", args.model, "--clients", str(args.clients), "--seed", str(seed),
                             "--epochs", str(args.epochs), "--patience", "0", "--validation", str(args.validation),
                             *shlex.split(args.extra)]
                launcher = [MPIRUN, "-n", str(args.ranks)] if method != "fedavg" else []
                yield name, run_flags, [*launcher, sys.executable, str(ROOT / script), *run_flags,
                                        "--results-dir", args.results_dir, "--run-name", name, "--no-progress"]


def main():
    args = build_parser().parse_args()
    todo = list(runs(args))
    for index, (name, flags, command) in enumerate(todo, 1):
        path = Path(args.results_dir) / f"{name}.json"
        if is_finished(read_run(path)):
            continue
        command = command + resume_flags(path, flags)
        print(f"== [{index}/{len(todo)}] {name}", flush=True)
        if args.dry_run:
            print("   " + shlex.join(command))
            continue
        Path(args.results_dir).mkdir(parents=True, exist_ok=True)
        if subprocess.run(command).returncode != 0:
            sys.exit(f"error: {name} failed; its results file says why, and the grid resumes from it")
    if not args.dry_run:
        print("now: python plot_results.py (results/compression.json, its table and figure)")


if __name__ == "__main__":
    main()
