"""Regular learning's epoch vs a bare training loop over the same tensors, side by side.

    python benchmarks/bench_regular.py [--rounds 3]

The bare loop is the least a training epoch can be: one permutation, index, forward, loss, backward, step;
same batch size, same threads, same process settings (runtime.py). The issue's target: regular learning
within 1.2x of it.
"""

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from common import PYTHON, epoch_time
from data import load_fashion_mnist
from models import lenet5


def bare_epoch(x, y, batch_size=64):
    model = lenet5(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    start = time.perf_counter()
    order = torch.randperm(len(y))
    for i in range(0, len(y), batch_size):
        idx = order[i:i + batch_size]
        optimizer.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each (default 3)")
    args = parser.parse_args()
    x, y, _, _ = load_fashion_mnist()
    bare, script = [], []
    for r in range(args.rounds):
        bare.append(bare_epoch(x, y))
        script.append(epoch_time([PYTHON, "regular_learning.py", "--test-subset", "1000"]))
        print(f"round {r + 1}: bare loop {bare[-1]:.2f} s, regular_learning.py {script[-1]:.2f} s",
              file=sys.stderr, flush=True)
    ratio = statistics.median(script) / statistics.median(bare)
    print(f"bare loop {statistics.median(bare):.2f} s, regular_learning.py {statistics.median(script):.2f} s "
          f"(medians of {args.rounds}, {torch.get_num_threads()} threads): ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
