"""The privacy trade-off: split learning under each defence setting, attacked, in one command.

    python privacy.py                       # the default grid into results/privacy/, then plot_results.py
    python privacy.py --epochs 2 --settings none,nopeek=0.5 --extra "--train-subset 6000"   # a quick look

For each setting (none; NoPeek weight W; Gaussian noise of standard deviation S on the activations sent) it
trains vanilla split learning with 10 clients (``mpirun -n 11``), then runs ``attack.py`` on the saved parts.
Finished trainings and attacks are kept, so an interrupted run resumes; a setting trained again is attacked
again. ``python plot_results.py`` then draws
results/privacy.png (test accuracy against the bias-corrected dCor^2 and against each attack's SSIM) and adds
the table to results/summary.md.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MPIRUN = str(Path(sys.executable).parent / "mpirun")
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
    if kind not in ("nopeek", "noise") or number < 0:
        raise argparse.ArgumentTypeError(f"a setting is none, nopeek=W or noise=S with W, S >= 0; not {text!r}")
    return f"{kind}{value}", ["--nopeek" if kind == "nopeek" else "--noise-std", value]


def settings_list(text):
    return [setting(item.strip()) for item in text.split(",") if item.strip()]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--settings", type=settings_list, default=settings_list(DEFAULT_SETTINGS),
                        help=f"comma-separated (default: {DEFAULT_SETTINGS})")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of split learning per setting")
    parser.add_argument("--clients", type=int, default=10, help="data holders (split learning runs on this many + 1 "
                        "ranks)")
    parser.add_argument("--results-dir", default="results/privacy")
    parser.add_argument("--extra", default="", help="more flags for every training run")
    parser.add_argument("--attack-flags", default="", help="more flags for every attack.py run")
    return parser


def finished(path):
    try:
        return json.loads(Path(path).read_text())["status"] in ("completed", "stopped_early")
    except (OSError, ValueError, KeyError, TypeError):
        return False


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
    start = time.perf_counter()
    out = Path(args.results_dir)
    for k, (name, flags) in enumerate(args.settings, 1):
        results, parts, attacked = out / f"{name}.json", out / f"{name}.pt", out / f"{name}-attack.json"
        if not finished(results) or not parts.exists():
            attacked.unlink(missing_ok=True)  # an attack on the parts of an earlier training says nothing of these
            seconds = run([MPIRUN, "-n", str(args.clients + 1), sys.executable, "split_learning.py", *flags,
                           "--epochs", str(args.epochs), "--patience", "0", "--no-progress", "--results-dir",
                           str(out), "--run-name", name, *shlex.split(args.extra)])
            print(f"[{k}/{len(args.settings)}] {name}: trained in {seconds:.0f} s", flush=True)
        if not attacked.exists():
            seconds = run([sys.executable, "attack.py", str(parts), "--figure", str(out / f"{name}-reconstructions.png"),
                           *shlex.split(args.attack_flags)])
            print(f"[{k}/{len(args.settings)}] {name}: attacked in {seconds:.0f} s", flush=True)
    print(f"privacy grid done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
