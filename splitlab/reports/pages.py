"""The results tables that README.md and docs/ show, generated from the committed results files.

In a page, a table is a block that cog (cogapp) fills in; the block names its table:

    <!-- [[[cog table("noniid") ]]] -->
    | method | alpha 0.1 | ...
    <!-- [[[end]]] -->

`python plot_results.py` rewrites every block from results/; tests/test_docs.py fails when a committed block is
not what the committed results give, so no table in the docs drifts from its files.
"""

import csv
import io
from pathlib import Path

from cogapp import Cog

from splitlab.reports import experiment, privacy, scale, study, work

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"


def _privacy(results, clients):
    return privacy.privacy_markdown([row for row in privacy.load_privacy(results / "privacy")
                                     if row["clients"] == clients])


def _suite_times(results):
    """results/suite-times.csv, the test suite's measured times, as a table."""
    with open(results / "suite-times.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    lines = ["| date | tests | seconds | run | CPU-s (user + system) | what changed |",
             "| --- | ---: | ---: | --- | ---: | --- |"]
    lines += [f"| {row['date']} | {row['tests']} | {row['seconds']} | {row['run']} | "
              f"{format(int(row['cpu_s']), ',') if row['cpu_s'] else ''} | {row['what changed']} |" for row in rows]
    return "\n".join(lines) + "\n"


# name -> its markdown, from a results folder laid out as results/ is
TABLES = {
    "experiment": lambda results: experiment.summary_markdown(experiment.load_results(results)[0]),
    "accuracy-by-epoch": lambda results: experiment.accuracy_by_epoch_markdown(experiment.load_results(results)[0]),
    "variants": lambda results: experiment.variants_markdown(experiment.load_results(results)[0]),
    "report-network": lambda results: experiment.summary_markdown(
        experiment.load_results(results / "lenet5-report")[0]),
    "work": lambda results: work.work_markdown(work.load_work(results / "work")),
    "scale": lambda results: scale.scale_markdown(scale.load_scale(results / "scale")),
    "privacy-ten-clients": lambda results: _privacy(results, clients=10),
    "privacy-depth": lambda results: _privacy(results, clients=2),
    "noniid": lambda results: study.study_markdown(study.load_study(results / "study")),
    "suite-times": _suite_times,
}


def table(name, results=RESULTS):
    """Print table ``name`` from ``results`` (cog, run with -P, puts what is printed into the block)."""
    if name not in TABLES:
        raise KeyError(f"no table {name!r}; the tables: {', '.join(TABLES)}")
    print(TABLES[name](Path(results)), end="")


def pages(root=ROOT):
    """The pages that may hold tables: the README and the docs."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def regenerate(paths, results=RESULTS, check=False):
    """Rewrite the table blocks of ``paths`` from ``results`` (with ``check``, only compare); returns the pages
    whose blocks were (with ``check``: would be) changed."""
    prologue = f"from splitlab.reports.pages import table as _table\ndef table(name): _table(name, {str(results)!r})"
    changed = []
    for path in map(Path, paths):
        before = path.read_text()
        if "[[[cog" not in before:
            continue
        cog, said = Cog(), io.StringIO()
        cog.set_output(stdout=said, stderr=said)
        status = cog.main(["cog", "-P", "--check" if check else "-r", "-p", prologue, str(path)])
        if status not in (0, 5):  # 5: --check found a block to change
            raise RuntimeError(f"cog failed on {path}: {said.getvalue().strip()}")
        if status == 5 or path.read_text() != before:
            changed.append(path)
    return changed
