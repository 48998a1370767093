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
import re
import statistics
from pathlib import Path

from cogapp import Cog

from splitlab.reports import compression, experiment, privacy, scale, study, work

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


def _benchmark_log(path):
    """A ratio benchmark's output (benchmarks/common.py: "round r: <method> <seconds> s" lines under "== <section>"
    lines) as a table: each section's runs, their median and its ratio to the section's first method; a section
    whose command failed says so."""
    sections = []
    for line in path.read_text().splitlines():
        if line.startswith("== ") and ";" not in line and not line.startswith("== commit"):
            sections.append({"name": line[3:], "runs": {}, "failed": False})
        elif match := re.fullmatch(r"round \d+: (.+?)\s+([\d.]+) s", line):
            sections[-1]["runs"].setdefault(match[1], []).append(float(match[2]))
        elif "error: this command failed" in line:
            sections[-1]["failed"] = True
    lines = ["| section | method | seconds, each round | median s | ratio to the first |",
             "| --- | --- | --- | ---: | ---: |"]
    for section in sections:
        base = statistics.median(next(iter(section["runs"].values()), [0])) or None
        for method, times in section["runs"].items():
            median = statistics.median(times)
            lines.append(f"| {section['name']} | {method} | {', '.join(f'{t:.2f}' for t in times)} | {median:.2f} | "
                         f"{median / base:.2f} |")
        if section["failed"]:
            lines.append(f"| {section['name']} | the next run | failed (the log has its error) | | |")
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
    "privacy-careful": lambda results: privacy.careful_markdown(privacy.load_careful(results / "privacy")),
    "privacy-budget": lambda results: privacy.budget_markdown(privacy.load_careful(results / "privacy")),
    "noniid": lambda results: study.study_markdown(study.load_study(results / "study")),
    "compression": lambda results: compression.compression_markdown(
        compression.load_compression(results / "compression")),
    "local-loss-one-client": lambda results: compression.one_client_markdown(results / "compression" / "one-client"),
    "compression-attacks": lambda results: compression.attacks_markdown(results / "compression"),
    "suite-times": _suite_times,
    "device-cpu-2026-12-04": lambda results: _benchmark_log(results / "device" / "2026-12-04-h200-cpu.log"),
    "device-gpu-2026-12-04": lambda results: _benchmark_log(results / "device" / "2026-12-04-h200-gpu.log"),
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
