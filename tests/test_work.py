"""What a data holder computes (work.py): FLOPs counted once a batch size add up to the epoch's, the client and
server parts add up to the whole network, and CPU seconds leave out the waits for messages. The runs' keys are
checked where the runs are made: one client of every variant against regular learning
(tests/test_split_variants.py), K clients on any placement (tests/test_placement.py)."""

import sys
import time
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from models import MODELS, build, cut_points, split
from splitlab.costs.work import Work, epoch_keys, peak_rss_mb
from splitlab.training.steps import train_epoch

SPLITS = [(name, cut) for name in MODELS for cut in cut_points(name)]


def flops(step):
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def test_an_epochs_flops_are_its_batches_times_the_per_batch_count():
    """Counted live on the first batch of each size and reused, as training does, against the whole epoch
    counted live."""
    model = build("lenet5", seed=0)
    batches = [(torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))) for n in (64, 64, 30, 64)]
    sgd = lambda: torch.optim.SGD(model.parameters(), lr=0.01)  # noqa: E731
    work = Work()
    with work.active():
        train_epoch(model, sgd(), batches, work)
    counted = work.take()["flops"]
    assert counted == flops(lambda: train_epoch(model, sgd(), batches))
    assert counted == 3 * flops(lambda: train_epoch(model, sgd(), batches[:1])) + \
        flops(lambda: train_epoch(model, sgd(), batches[2:3]))
    assert work.take()["flops"] == 0  # taken: counting starts again


@pytest.mark.parametrize("name, cut_layer", SPLITS)
def test_client_part_and_server_part_count_the_whole_networks_flops(name, cut_layer):
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    client_part, server_part = split(name, cut_layer, seed=0)
    whole = build(name, seed=0)

    def server_step():  # the server also computes the gradient at the cut, which it sends back
        F.cross_entropy(server_part(smashed.detach().requires_grad_()), y).backward()

    smashed = client_part(x)
    client = flops(lambda: client_part(x).backward(torch.ones_like(smashed)))
    assert client > 0 and client + flops(server_step) == flops(lambda: F.cross_entropy(whole(x), y).backward())


def test_cpu_seconds_leave_out_the_waits_and_bytes_count_in_active_blocks():
    channel = SimpleNamespace(wait_cpu_s=0.0, sent_total=0, received_total=0)
    work = Work(channel)

    def spin(seconds):
        start = time.process_time()
        while time.process_time() - start < seconds:
            pass
        return time.process_time() - start

    channel.sent_total += 100  # outside an active block: not this role's
    with work.active():
        spin(0.2)
        channel.wait_cpu_s += spin(0.2)  # as Channel._wait counts a wait that polls
        channel.sent_total += 1000
        channel.received_total += 10
        first = work.take()
        channel.sent_total += 7  # after the take (the report carrying it): the next take's
        with work.aside():  # the experimenter's measurement: not this role's
            spin(0.2)
    assert 0.15 < first["cpu_s"] < 0.3
    assert (first["bytes_sent"], first["bytes_received"]) == (1000, 10)
    second = work.take()
    assert second["bytes_sent"] == 7 and second["cpu_s"] < 0.1


def test_epoch_keys_give_a_value_a_client_in_client_order():
    keys = epoch_keys({"flops": 5, "cpu_s": 1.0}, [{"flops": 1, "peak_rss_mb": 9.0}, {}])
    assert keys["server_flops"] == 5 and keys["client_flops"] == [1, 0] and keys["client_peak_rss_mb"] == [9.0, 0]
    assert "server_flops" not in epoch_keys(None, [{}])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the kernel's own count in /proc")
def test_peak_memory_is_the_kernels_high_water_mark_in_megabytes():
    def high_water_mb():  # the kernel's peak resident set, in kB
        line = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
        return int(line.split()[1]) / 1024
    touched = torch.ones(50_000_000)  # 200 MB, so that the peak is this process's own
    assert abs(peak_rss_mb() - high_water_mb()) <= 0.02 * high_water_mb()
    del touched
