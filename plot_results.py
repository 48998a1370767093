"""Regenerate every figure and table from the results files: the report's Figure 1, the comparison, and each
study's figure and table (splitlab/reports/, a module a study).

    python plot_results.py                     # reads results/*.json (and results/study/, privacy/, labels/, scale/,
                                               # work/ if there), writes figure1.png, comparison.png, noniid.png,
                                               # privacy.png, privacy-legs.png, labels.png, scale.png, work.png,
                                               # summary.md, runs.csv; and the tables in README.md and docs/
    python plot_results.py --results-dir DIR --out DIR/figure1.png

Reads whatever results exist: a missing method is named and left out, a corrupt file is reported by name. A run
whose settings differ from the report's experiment (a subset, a partition, a flag changed) is marked as such
in the figures (*) and in the table, with the flags that differ. Drawn from the committed results/, it also
rewrites the tables that README.md and docs/ show (splitlab/reports/pages.py), so that none is typed by hand.
"""

import argparse
import sys
from pathlib import Path

from splitlab.reports import compression, experiment, labels, pages, privacy, scale, study, work
from splitlab.reports.bandwidth import bandwidth_figure
from splitlab.reports.runs_table import runs_table, write_runs_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--results-dir", default="results", help="where the <method>.json results files are")
    parser.add_argument("--study", default=None, help="the study's results (default: <results-dir>/study, if any)")
    parser.add_argument("--scale", default=None, help="make scale's results (default: <results-dir>/scale, if any)")
    parser.add_argument("--bandwidth", action="store_true",
                        help="also draw bandwidth.png, every method's bytes an epoch in closed form against the "
                             "clients (it loads the networks, and so torch, for their sizes)")
    parser.add_argument("--out", default=None, help="Figure 1's file (default: <results-dir>/figure1.png); "
                                                    "the others go beside it")
    args = parser.parse_args()
    folder = Path(args.results_dir)
    out = Path(args.out) if args.out else folder / "figure1.png"
    runs, problems = experiment.load_results(folder)
    for problem in problems:
        print(problem, file=sys.stderr)
    coded = compression.load_compression(folder / "compression")
    reports = [  # (what was found, its figure, the figure's file, its heading in summary.md, its table)
        (study.load_study(args.study or folder / "study"), study.noniid_figure, "noniid.png",
         "Non-IID data, several seeds (study.py)", study.study_markdown),
        (privacy.load_privacy(folder / "privacy"), privacy.privacy_figure, "privacy.png",
         "Leakage and defences (privacy.py)", privacy.privacy_markdown),
        (privacy.load_legs(folder / "privacy"), privacy.legs_figure, "privacy-legs.png",
         "Both legs: what the server rebuilds from activations and from updates", privacy.legs_markdown),
        (labels.load_labels(folder / "labels"), labels.labels_figure, "labels.png",
         "Labels in U-shaped split learning (make labels)", labels.labels_markdown),
        (scale.load_scale(args.scale or folder / "scale"), scale.scale_figure, "scale.png",
         "Many clients (make scale)", scale.scale_markdown),
        (work.load_work(folder / "work"), work.work_figure, "work.png",
         "What a data holder pays (make work)", work.work_markdown),
        (coded, compression.compression_figure, "compression.png",
         "Compressed messages (make compression)", compression.compression_markdown)]
    if not runs and not any(found for found, *_ in reports):
        print(f"error: no readable results in {args.results_dir}; run the training scripts first", file=sys.stderr)
        sys.exit(2)
    out.parent.mkdir(parents=True, exist_ok=True)
    written, summary = [], ""
    if runs:
        experiment.figure1(runs).savefig(out, dpi=120)
        experiment.comparison(runs).savefig(out.parent / "comparison.png", dpi=120)
        written += [out, out.parent / "comparison.png"]
        summary += experiment.summary_markdown(runs)
    for found, figure, name, heading, table in reports:
        if found:
            figure(found).savefig(out.parent / name, dpi=120)
            written.append(out.parent / name)
            summary += f"\n## {heading}\n\n" + table(found)
    if coded:
        compression.write_compression_json(compression.compression_entries(coded), out.parent / "compression.json")
        written.append(out.parent / "compression.json")
    careful = privacy.load_careful(folder / "privacy")  # a table without a figure of its own
    if careful:
        summary += "\n## The careful attacker (attack.py's budgets chosen on held-out images)\n\n" + \
            privacy.careful_markdown(careful)
    if args.bandwidth:
        bandwidth_figure([folder, args.scale or folder / "scale"]).savefig(out.parent / "bandwidth.png", dpi=120)
        written.append(out.parent / "bandwidth.png")
    (out.parent / "summary.md").write_text(summary)
    write_runs_table(runs_table(folder), out.parent / "runs.csv")
    print(f"wrote {', '.join(map(str, written))}, {out.parent / 'summary.md'}, {out.parent / 'runs.csv'}")
    if folder.resolve() == pages.RESULTS:  # the docs show the committed results, not another folder's
        changed = pages.regenerate(pages.pages())
        print(f"tables rewritten in {', '.join(str(p.relative_to(pages.ROOT)) for p in changed)}" if changed
              else "the tables in README.md and docs/ were up to date")


if __name__ == "__main__":
    main()
