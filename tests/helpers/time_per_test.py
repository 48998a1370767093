"""Where the suite's time goes: each test's wall time and CPU seconds, its own and its processes'.

    PYTHONPATH=tests/helpers SUITE_TIMES=/tmp/times python -m pytest -p time_per_test -n 2 --dist loadfile tests
    python tests/helpers/time_per_test.py /tmp/times          # the files by wall time, then the slowest tests

As a pytest plugin, every worker appends a line per test to SUITE_TIMES/<pid>.tsv: the test, when it started,
its wall seconds, the CPU seconds of the test's own process and those of the processes it waited for (an MPI job's
ranks count once the launcher has reaped them; ranks killed by an abort are often not counted).
"""

import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

FOLDER = os.environ.get("SUITE_TIMES", "suite-times")


def cpu_seconds():
    times = os.times()
    return times.user + times.system, times.children_user + times.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    folder = Path(FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    start, (own, waited) = time.time(), cpu_seconds()
    yield
    wall, (own_after, waited_after) = time.time() - start, cpu_seconds()
    with open(folder / f"{os.getpid()}.tsv", "a") as log:
        log.write(f"{item.nodeid}\t{start:.2f}\t{wall:.2f}\t{own_after - own:.2f}\t{waited_after - waited:.2f}\n")


def report(folder=FOLDER, slowest=25):
    rows = [line.rstrip("\n").split("\t") for log in Path(folder).glob("*.tsv") for line in open(log)]
    tests = [(name, float(start), float(wall), float(own), float(waited)) for name, start, wall, own, waited in rows]
    files = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for name, _, wall, own, waited in tests:
        totals = files[name.split("::")[0]]
        totals[0] += wall
        totals[1] += own
        totals[2] += waited
        totals[3] += 1
    print(f"{'wall s':>8} {'own CPU-s':>10} {'waited CPU-s':>13} {'tests':>6}  file")
    for name, (wall, own, waited, count) in sorted(files.items(), key=lambda item: -item[1][0]):
        print(f"{wall:8.1f} {own:10.1f} {waited:13.1f} {count:6d}  {name}")
    print(f"{sum(t[2] for t in tests):8.1f} {sum(t[3] for t in tests):10.1f} {sum(t[4] for t in tests):13.1f} "
          f"{len(tests):6d}  in all (wall: summed over the workers)")
    print(f"\nthe {slowest} slowest tests")
    for name, _, wall, own, waited in sorted(tests, key=lambda test: -test[2])[:slowest]:
        print(f"{wall:8.1f} {own:10.1f} {waited:13.1f}  {name}")


if __name__ == "__main__":
    report(*sys.argv[1:2])
