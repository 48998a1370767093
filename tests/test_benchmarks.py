"""The benchmarks' arithmetic: ratios to the baseline, overall and round by round."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from common import ratio_table  # noqa: E402


def test_ratio_table_pairs_each_round_with_the_baselines_same_round():
    times = {"regular": [4.0, 8.0, 5.0], "split": [6.0, 8.8, 5.5]}
    header, regular, split = ratio_table(times, "regular")
    assert header.split()[:5] == ["method", "median", "s", "ratio", "by"]
    assert regular.split() == ["regular", "5.00", "1.00", "1.00", "(1.00,", "1.00,", "1.00)"]
    # medians 6.0 / 5.0 = 1.20; the rounds give 1.50, 1.10, 1.10, whose median is 1.10
    assert split.split() == ["split", "6.00", "1.20", "1.10", "(1.50,", "1.10,", "1.10)"]
