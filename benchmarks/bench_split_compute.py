"""The floor under split learning's speed: its computation alone, without any messages, against the whole step.

    python benchmarks/bench_split_compute.py [--batches 3000]

In one process, on the same batches, alternating batch by batch (so that both see the same machine): a regular
training step of LeNet-5, and the steps split learning takes for the same batch, as its ranks do them: client
forward, server forward, backward and step, client backward and step. Prints the median time of each and
their ratio. Whatever split learning over MPI costs beyond this ratio is messaging and waiting.
"""

import argparse
import statistics
import time

import torch

from data import load_fashion_mnist
from models import cut_points, cut_shape, lenet5, split
from splitlab.training.cli import common_parser
from splitlab.training.steps import client_backward, server_step, sgd, train_step

BATCH = 64
DISTINCT_BATCHES = 100  # cycled: enough to keep the data out of the caches' way, little to load


def split_step(client_part, client_optimizer, server_part, server_optimizer, smashed_buf, x, y):
    """Split learning's steps for one batch, as its ranks take them, the activations passing through the
    server's receive buffer."""
    client_optimizer.zero_grad(set_to_none=True)
    smashed = client_part(x)
    loss, cut_grad = server_step(server_part, server_optimizer, smashed_buf.copy_(smashed.detach()), y)
    client_backward(client_optimizer, smashed, cut_grad)
    smashed_buf.grad = None
    smashed_buf.requires_grad_(False)
    return loss.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--batches", type=int, default=3000, help="timed batches of each kind")
    parser.add_argument("--cut-layer", type=int, choices=cut_points("lenet5"), default=1, help="where to split")
    args = parser.parse_args()
    defaults = common_parser("bench", "").parse_args([])  # the scripts' learning rate, momentum, weight decay

    x, y, _, _ = load_fashion_mnist(None, DISTINCT_BATCHES * BATCH, 1)
    model = lenet5(0)
    optimizer = sgd(model.parameters(), defaults)
    client_part, server_part = split("lenet5", args.cut_layer, 0)
    client_optimizer = sgd(client_part.parameters(), defaults)
    server_optimizer = sgd(server_part.parameters(), defaults)
    smashed_buf = torch.empty(BATCH, *cut_shape("lenet5", args.cut_layer))

    warm_up = 100
    whole, split_times = [], []
    for i in range(warm_up + args.batches):
        start = (i % DISTINCT_BATCHES) * BATCH
        xb, yb = x[start:start + BATCH], y[start:start + BATCH]
        t0 = time.perf_counter()
        train_step(model, optimizer, xb, yb)  # regular learning's step
        t1 = time.perf_counter()
        split_step(client_part, client_optimizer, server_part, server_optimizer, smashed_buf, xb, yb)
        t2 = time.perf_counter()
        if i >= warm_up:
            whole.append(t1 - t0)
            split_times.append(t2 - t1)
    whole_ms, split_ms = statistics.median(whole) * 1e3, statistics.median(split_times) * 1e3
    print(f"whole step   median {whole_ms:.3f} ms\nsplit steps  median {split_ms:.3f} ms\n"
          f"ratio {split_ms / whole_ms:.3f}  ({args.batches} batches of {BATCH} each, alternating, "
          f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
