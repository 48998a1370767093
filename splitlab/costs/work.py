"""What a role computes (the report's "computational resources"): per epoch, the floating-point operations of
its forward and backward passes, its CPU seconds, and the bytes it sent and received; and its process's peak
resident memory.

    work = Work(channel)
    with work.active():                 # this role at work: its CPU seconds and bytes count
        for x, y in batches:
            with work.batch(len(y)):    # one training batch: its FLOPs count
                ...
        report(work.take())             # what it did since the last take

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, forward and
backward; element-wise work such as activations, the loss and the optimizer step is not counted) on the first
batch of each size, and that count is reused for the batches of the same size: a batch's FLOPs follow its
shapes, and counting every batch would slow training. CPU seconds are the process's (every thread) less what it
spent waiting for messages (``Channel.wait_cpu_s``), so that a rank that polls is not charged for it.
Evaluation is the experimenter's measurement, not the method's: it is not counted.
"""

import resource
import sys
import time
from contextlib import contextmanager

from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from splitlab.training.eager import uncompiled

# FlopCounterMode counts in a dispatch that torch wraps for torch.compile (eager.py)
uncompiled(getattr(getattr(flop_counter, "_FlopCounterMode", None), "__torch_dispatch__", None))


def peak_rss_mb():
    """This process's peak resident memory so far, in MB (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


class Work:
    """One role's work since it was last taken: ``flops``, ``cpu_s``, ``bytes_sent``, ``bytes_received``.
    ``channel`` (None in one process) is where its messages go; only what happens in an ``active`` block counts
    (a rank's clients take turns, and each has its own Work). Roles that compute alike (a rank's clients) share
    ``flops_per_batch``, so that each batch size is counted once for all of them: 1,000 clients of one batch each
    would otherwise each count theirs live, which took most of a FedAvg round."""

    def __init__(self, channel=None, flops_per_batch=None):
        self.channel = channel
        self.per_batch = {} if flops_per_batch is None else flops_per_batch  # batch key -> FLOPs of one
        self.counts = {"flops": 0, "cpu_s": 0.0, "bytes_sent": 0, "bytes_received": 0}
        self.started = None  # in an active block: the readings at its start (or at the last take)

    def readings(self):
        channel = self.channel
        if channel is None:
            return time.process_time(), 0, 0
        return time.process_time() - channel.wait_cpu_s, channel.sent_total, channel.received_total

    def add_since_start(self):
        now = self.readings()
        for key, value, then in zip(("cpu_s", "bytes_sent", "bytes_received"), now, self.started):
            self.counts[key] += value - then
        self.started = now

    @contextmanager
    def active(self):
        """This role's work is under way: count its CPU seconds and bytes."""
        self.started = self.readings()
        try:
            yield
        finally:
            self.add_since_start()
            self.started = None

    @contextmanager
    def aside(self):
        """Inside an active block, work that is not this role's (the experimenter's measurements): not counted."""
        self.add_since_start()
        try:
            yield
        finally:
            self.started = self.readings()

    @contextmanager
    def batch(self, key):
        """One training batch (``key``: what fixes its shapes, such as its size): count its FLOPs."""
        if key in self.per_batch:
            yield
        else:
            with FlopCounterMode(display=False) as counter:
                yield
            self.per_batch[key] = counter.get_total_flops()
        self.counts["flops"] += self.per_batch[key]

    def take(self):
        """The work counted since the last take (in an active block: up to now), and start again from zero.
        A message sent after the take (the report that carries it) counts to the next."""
        if self.started is not None:
            self.add_since_start()
        counts, self.counts = self.counts, {key: type(value)() for key, value in self.counts.items()}
        return counts


def epoch_keys(server, clients):
    """The results keys of one epoch's work: ``server_flops`` and ``server_cpu_s`` from the server's ``take()``
    (None where there is no server), and ``client_<key>``, one value a client in client order, from theirs."""
    keys = {f"server_{key}": server[key] for key in ("flops", "cpu_s")} if server else {}
    for key in ("flops", "cpu_s", "bytes_sent", "bytes_received", "peak_rss_mb"):
        keys[f"client_{key}"] = [client.get(key, 0) for client in clients]
    return keys
