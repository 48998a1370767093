"""The privacy trade-off: split learning under each defence setting, at each cut, and FedAvg, attacked, in one
command.

    python privacy.py                       # the default grid into results/privacy/, then plot_results.py
    python privacy.py --epochs 2 --settings none,nopeek=0.5 --extra "--train-subset 6000"   # a quick look
    python privacy.py --models lenet5,lenet5-report --aux 500,5000      # every cut of both, two attackers

For each model, each of its cut points (or those --cut-layers names) and each setting (none; NoPeek weight W;
Gaussian noise of standard deviation S on the activations sent) it trains vanilla split learning with --clients
clients (``mpirun -n clients+1``), then runs ``attack.py`` on the saved parts once for each size of the decoder's
auxiliary data (the attacker knows the architecture and holds that many test images from 5,000 on; the victims
are test images 0-99). FedAvg's leg: for each model of --fedavg-models and each --fedavg setting (none; each
client's update clipped to norm C with noise Z x C, ``clip=C:noise=Z``; local epochs and batch size
``epochs=E:batch=B``, such as FedAvg's best setting from make decision-trials) it trains FedAvg with as many clients
for as many epochs (one process), then runs ``attack_updates.py`` on its final model: the same victims rebuilt
from updates. Finished trainings and attacks are kept, so an interrupted run resumes; a setting trained again is
attacked again. ``python plot_results.py`` then draws results/privacy.png (test accuracy against each attack's
SSIM) and privacy-legs.png (both legs side by side) and adds their tables to results/summary.md.
"""

import argparse
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

from models import MODELS, cut_points
from splitlab.runs import (
    GRID_VALIDATION,
    MPIRUN,
    attack_files,
    fedavg_privacy_run_name,
    is_finished,
    privacy_run_name,
    read_run,
    resume_flags,
    update_attack_files,
)
from splitlab.training.cli import positive_int_list

ROOT = Path(__file__).resolve().parent
DEFAULT_SETTINGS = "none,nopeek=0.1,nopeek=0.5,nopeek=2,noise=0.5,noise=1,noise=2"


def setting(text):
    """``none``, ``nopeek=W`` or ``noise=S`` -> (run name, split_learning.py flags)."""
    if text == "none":
        return "none", []
    kind, _, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if kind not in ("nopeek", "noise") or not 0 <= number < math.inf:  # nan fails both comparisons
        raise argparse.ArgumentTypeError(f"a setting is none, nopeek=W or noise=S with W, S >= 0; not {text!r}")
    return f"{kind}{value}", ["--nopeek" if kind == "nopeek" else "--noise-std", value]


def settings_list(text):
    return [setting(item.strip()) for item in text.split(",") if item.strip()]


# FedAvg's setting words, in the order they come: its local training (make decision-trials' choice), a defence
FEDAVG_KEYS = {"epochs": ("e", "--local-epochs"), "batch": ("b", "--batch-size"), "clip": ("clip", "--clip-update"),
               "noise": ("noise", "--update-noise")}


def fedavg_setting(text):
    """``none``, or ``:``-joined ``key=value`` of ``epochs=E:batch=B`` (the local training) and ``clip=C:noise=Z``
    (each update clipped to norm C, noise Z x C), in that order -> (run name's setting, federated_learning.py
    flags): ``clip=5:noise=0.003`` -> ``clip5-noise0.003``, ``epochs=5:batch=10`` -> ``e5-b10``."""
    if text == "none":
        return "none", []
    try:
        pairs = [part.split("=") for part in text.split(":")]
        keys = [key for key, _ in pairs]
        numbers = [(int if key in ("epochs", "batch") else float)(value) for key, value in pairs]
        valid = (keys in (["epochs", "batch"], ["clip", "noise"], ["epochs", "batch", "clip", "noise"])
                 and all((0 <= n if key == "noise" else 0 < n) and n < math.inf  # nan fails both comparisons
                         for key, n in zip(keys, numbers)))
    except ValueError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError("a FedAvg setting is none, epochs=E:batch=B, clip=C:noise=Z or both, "
                                         f"E, B >= 1, C > 0, Z >= 0; not {text!r}")
    return ("-".join(FEDAVG_KEYS[key][0] + value for key, value in pairs),
            [flag for key, value in pairs for flag in (FEDAVG_KEYS[key][1], value)])


def fedavg_settings_list(text):
    return [fedavg_setting(item.strip()) for item in text.split(",") if item.strip()]


def models_list(text):
    models = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise argparse.ArgumentTypeError(f"models are {', '.join(MODELS)}; not {', '.join(unknown) or text!r}")
    return models


def grid(models, cut_layers):
    """``(model, cut)`` pairs: every cut point of each model, or those of ``cut_layers`` it has."""
    return [(model, cut) for model in models for cut in cut_points(model)
            if cut_layers == "all" or cut in positive_int_list(cut_layers)]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--settings", type=settings_list, default=DEFAULT_SETTINGS,
                        help="comma-separated (or nothing: no split learning, only FedAvg's leg)")
    parser.add_argument("--models", type=models_list, default="lenet5", help="comma-separated, from: "
                        + ", ".join(MODELS))
    parser.add_argument("--cut-layers", default="all",
                        help="the cut points to train at: all of each model's, or a comma-separated list")
    parser.add_argument("--aux", type=positive_int_list, default="5000",
                        help="the decoder attack's auxiliary test images, comma-separated: an attack for each")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of split learning per setting")
    parser.add_argument("--clients", type=int, default=10, help="data holders (split learning runs on this many + 1 "
                        "ranks)")
    parser.add_argument("--validation", type=int, default=GRID_VALIDATION, metavar="N",
                        help="training images each run holds out as its validation set (study.py --help)")
    parser.add_argument("--fedavg", type=fedavg_settings_list, default="none",
                        help="FedAvg's settings, comma-separated: none, epochs=E:batch=B (its local training), "
                             "clip=C:noise=Z (a defence) or both joined by ':' (or nothing: no FedAvg leg)")
    parser.add_argument("--fedavg-models", type=models_list, default="lenet5",
                        help="the models whose FedAvg leg is trained and attacked (an attack_updates.py run took 66 "
                             "minutes on the 2-core machine, sharing it with other runs)")
    parser.add_argument("--results-dir", default="results/privacy")
    parser.add_argument("--extra", default="", help="more flags for every training run")
    parser.add_argument("--attack-flags", default="", help="more flags for every attack.py run")
    parser.add_argument("--update-attack-flags", default="", help="more flags for every attack_updates.py run")
    return parser


def run(command):
    print("    " + " ".join(map(shlex.quote, command)), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'failed'}")
    return time.perf_counter() - start


def main():
    args = build_parser().parse_args()
    if args.epochs < 1 or args.clients < 1:
        build_parser().error("--epochs and --clients must be at least 1")
    runs = [(model, cut, setting_) for model, cut in grid(args.models, args.cut_layers) for setting_ in args.settings]
    if not runs and args.settings:  # no --settings: only FedAvg's leg
        build_parser().error(f"--cut-layers {args.cut_layers}: none of {', '.join(args.models)} has such a cut point")
    start = time.perf_counter()
    out = Path(args.results_dir)
    for k, (model, cut, (setting_name, flags)) in enumerate(runs, 1):
        name = privacy_run_name(model, cut, setting_name)
        results, parts = out / f"{name}.json", out / f"{name}.pt"
        if not is_finished(read_run(results)) or not parts.exists():
            for stale in out.glob(attack_files(name, "*")[0]):  # attacks on an earlier training's parts
                stale.unlink()
            flags = [*flags, "--model", model, "--cut-layer", str(cut), "--epochs", str(args.epochs), "--patience", "0",
                     "--no-progress", "--results-dir", str(out), "--run-name", name, *shlex.split(args.extra)]
            flags += ["--validation", str(args.validation)] if args.validation else []
            seconds = run([MPIRUN, "-n", str(args.clients + 1), sys.executable, "split_learning.py", *flags,
                           *resume_flags(results, flags)])
            print(f"[{k}/{len(runs)}] {name}: trained in {seconds:.0f} s", flush=True)
        for aux in args.aux:
            scores, reconstructions = attack_files(name, aux)
            attacked = out / scores
            if not attacked.exists():
                seconds = run([sys.executable, "attack.py", str(parts), "--aux", str(aux), "--out", str(attacked),
                               "--figure", str(out / reconstructions),
                               *shlex.split(args.attack_flags)])
                print(f"[{k}/{len(runs)}] {name}: attacked with {aux} auxiliary images in {seconds:.0f} s",
                      flush=True)
    fedavg_runs = [(model, setting_) for model in args.fedavg_models for setting_ in args.fedavg]
    for k, (model, (setting_name, flags)) in enumerate(fedavg_runs, 1):
        name = fedavg_privacy_run_name(model, setting_name)
        results, model_file = out / f"{name}.json", out / f"{name}.pt"
        scores, reconstructions = update_attack_files(name)
        if not is_finished(read_run(results)) or not model_file.exists():
            (out / scores).unlink(missing_ok=True)  # an attack on an earlier training's model
            flags = [*flags, "--model", model, "--clients", str(args.clients), "--epochs", str(args.epochs),
                     "--patience", "0", "--no-progress", "--results-dir", str(out), "--run-name", name,
                     *shlex.split(args.extra)]
            flags += ["--validation", str(args.validation)] if args.validation else []
            seconds = run([sys.executable, "federated_learning.py", *flags, *resume_flags(results, flags)])
            print(f"[FedAvg {k}/{len(fedavg_runs)}] {name}: trained in {seconds:.0f} s", flush=True)
        if not (out / scores).exists():
            seconds = run([sys.executable, "attack_updates.py", str(model_file), "--out", str(out / scores),
                           "--figure", str(out / reconstructions), *shlex.split(args.update_attack_flags)])
            print(f"[FedAvg {k}/{len(fedavg_runs)}] {name}: updates attacked in {seconds:.0f} s", flush=True)
    print(f"privacy grid done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
