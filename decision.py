"""Which method reaches a target test accuracy first, for a number of data holders and a network link: the map
(results/decision.png) and its tables (results/decision.md). The model is splitlab/costs/decision.py.

    python decision.py                       # from make scale's and make decision's runs; target 80 %, 10 ms
    python decision.py --target 0.85 --latency 1ms
"""

import argparse
import glob
from pathlib import Path

from splitlab.costs.decision import decide, load_runs, role_seconds
from splitlab.net import link
from splitlab.reports.decision import figure, markdown


def latency_value(text):
    """An argparse type: a latency such as 10ms, 500us or 0.1s, in seconds."""
    try:
        return link.seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", default="results/scale,results/decision/*",
                        help="comma-separated folders (wildcards allowed) of study.py's runs: make scale's, make "
                             "decision's")
    parser.add_argument("--target", type=float, default=0.80, help="test accuracy to reach, in (0, 1)")
    parser.add_argument("--latency", type=latency_value, default="10ms",
                        help="one-way latency of every link, e.g. 10ms, 500us")
    parser.add_argument("--out", default="results/decision.png", help="the map; its tables go beside it (.md)")
    args = parser.parse_args()
    if not 0 < args.target < 1:
        parser.error(f"--target must be in (0, 1), not {args.target}")
    latency = args.latency
    folders = [folder for pattern in args.runs.split(",") for folder in sorted(glob.glob(pattern))]
    maps, tables = {}, []
    for model, runs in load_runs(folders).items():
        cuts = {r["config"].get("cut_layer", 1) for by_k in runs.values() for r in by_k.values()}
        compute = {cut: role_seconds(model, cut) for cut in cuts}
        winner, seconds = decide(runs, compute, model, args.target, latency)
        maps[model] = (winner, runs, compute)
        tables.append(markdown(model, runs, compute, args.target, latency))
        print(f"{model}: timed batches (s, one thread): "
              + "; ".join(f"cut {c}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in t.items())
                          for c, t in compute.items()))
    if not maps:
        parser.error(f"no finished IID runs in {args.runs} (make scale or make decision first)")
    figure(maps, args.target, latency, args.out)
    text = (f"Time to {args.target:.0%} test accuracy, latency {latency * 1e3:g} ms (decision.py): in each cell the "
            "fastest method and its time, the runner-up's in brackets.\n\n" + "\n".join(tables))
    Path(args.out).with_suffix(".md").write_text(text)
    print(text)
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")


if __name__ == "__main__":
    main()
