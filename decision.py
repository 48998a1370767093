"""Which method reaches a target test accuracy first, for a number of data holders and a network link: the map
(results/decision.png) and its tables (results/decision.md). The model is splitlab/costs/decision.py.

    python decision.py                       # from make scale's and make decision's runs; target 80 %, 10 ms
    python decision.py --target 0.85 --latency 1ms
    python decision.py --time-roles          # time each role's batch on this machine first (results/role_times.json)
    python decision.py --partition 0.5       # the runs on Dirichlet 0.5 shards: results/decision-a0.5.png
"""

import argparse
import glob
from pathlib import Path

from models import MODELS
from splitlab.costs.decision import (
    chosen_settings,
    decide,
    load_runs,
    read_role_times,
    shared_seeds,
    time_other_batch,
    time_roles,
    trial,
)
from splitlab.errors import InputError
from splitlab.net import link
from splitlab.reports.decision import figure, markdown, shards
from splitlab.runs import comma_list, partition_value, seed_value


def latency_value(text):
    """An argparse type: a latency such as 10ms, 500us or 0.1s, in seconds."""
    try:
        return link.seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", default="results/scale,results/decision/*,results/decision/*/trials/*",
                        help="comma-separated folders (wildcards allowed) of study.py's runs: make scale's, make "
                             "decision's, make decision-trials'; a method run with several settings takes its best "
                             "in each cell")
    parser.add_argument("--target", type=float, default=0.80, help="test accuracy to reach, in (0, 1)")
    parser.add_argument("--latency", type=latency_value, default="10ms",
                        help="one-way latency of every link, e.g. 10ms, 500us")
    parser.add_argument("--partition", default="iid", type=partition_value,
                        help="the runs' shards: iid, or the Dirichlet alpha of study.py's non-IID runs (0.5)")
    parser.add_argument("--out", default=None,
                        help="the map; its tables go beside it (.md). Default: results/decision.png, or "
                             "results/decision-a<alpha>.png for --partition <alpha>")
    parser.add_argument("--role-times", default="results/role_times.json",
                        help="each role's batch times, timed once (--time-roles) and committed: the map reads them, "
                             "so the same runs always draw the same map")
    parser.add_argument("--time-roles", action="store_true",
                        help="first time each role's batch (one thread, 20 repeats) on this machine, for every model "
                             "at cuts 1 and 2 and any other cut the runs were made at, into --role-times")
    parser.add_argument("--time-batch", type=int, action="append", default=[], metavar="B",
                        help="first add the times of a batch of B images, for runs of that batch size (make "
                             "decision-trials), to --role-times; a size already there is kept")
    parser.add_argument("--missing-seeds", type=comma_list(seed_value), metavar="SEEDS",
                        help="draw nothing; print, a line each, 'model method setting' for every setting chosen in "
                             "some cell that was not run with all of SEEDS (comma-separated), the setting in make "
                             "decision-trials' words (batch:lr; FedAvg local-epochs:batch:fraction)")
    args = parser.parse_args()
    if not 0 < args.target < 1:
        parser.error(f"--target must be in (0, 1), not {args.target}")
    latency = args.latency
    if args.partition != "iid":
        args.partition = f"{float(args.partition):g}"  # as the maps name it: 0.5 for 0.50 (the runs match either)
    out = args.out or ("results/decision.png" if args.partition == "iid" else f"results/decision-a{args.partition}.png")
    folders = [folder for pattern in args.runs.split(",") for folder in sorted(glob.glob(pattern))]
    runs_by_model = load_runs(folders, args.partition)
    if not runs_by_model:
        parser.error(f"no finished runs on {shards(args.partition)} in {args.runs} (make scale or make decision "
                     "first)")
    cuts = {model: {run["config"].get("cut_layer", 1) for by_k in runs.values() for seeds in by_k.values()
                    for run in seeds} for model, runs in runs_by_model.items()}
    models_cuts = {(model, cut) for model in MODELS for cut in (1, 2, *cuts.get(model, ()))}
    if args.time_roles:
        time_roles(args.role_times, models_cuts)
    for batch in args.time_batch:
        time_other_batch(args.role_times, models_cuts, batch)
    maps, tables = {}, []
    for model, runs in runs_by_model.items():
        try:
            compute, machine = read_role_times(args.role_times, model, cuts[model])
        except InputError as exc:
            parser.error(str(exc))
        if args.missing_seeds:
            wanted = set(args.missing_seeds)
            for method, by_k in runs.items():
                for name, chosen in chosen_settings(by_k, compute, model, args.target, latency).items():
                    if not wanted <= shared_seeds({name: chosen}):
                        print(model, method, trial(next(iter(chosen.values()))[0]))
            continue
        try:
            winner, seconds = decide(runs, compute, model, args.target, latency)
            tables.append(markdown(model, runs, compute, args.target, latency))
        except InputError as exc:
            parser.error(f"{model}: {exc}")
        maps[model] = (winner, runs, compute)
    if args.missing_seeds:
        return
    timed = (f"Each role's batch as timed on {machine['processor']} ({machine['cpus']} CPUs, host {machine['host']}, "
             f"torch {machine['torch']}, {machine['date']}; one thread, the least of the repeats in {args.role_times}, "
             "with their spread).")
    figure(maps, args.target, latency, machine, out, args.partition)
    text = (f"Time to {args.target:.0%} accuracy (validation accuracy where the runs held a set out, else test "
            f"accuracy) on {shards(args.partition)}, latency {latency * 1e3:g} ms (decision.py): in each cell the "
            f"fastest method and its time, the runner-up's in brackets. {timed}\n\n" + "\n".join(tables))
    Path(out).with_suffix(".md").write_text(text)
    print(text)
    print(f"wrote {out} and {Path(out).with_suffix('.md')}")


if __name__ == "__main__":
    main()
