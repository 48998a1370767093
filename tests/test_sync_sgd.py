"""Synchronous SGD with backup workers: the step is the large-batch step; late gradients are dropped."""

import argparse
import json

import pytest
import torch

from conftest import PINNED, mpirun, needs_data
from models import flat_parameters, lenet5
from splitlab.costs.traffic import sync_sgd_epoch_bytes
from splitlab.errors import InputError
from splitlab.methods.sync_sgd import apply_average, collect, scaled_lr, worker_gradient
from splitlab.training.steps import sgd

HYPER = argparse.Namespace(lr=0.05, momentum=0.9, weight_decay=5e-4)


def test_one_step_with_equal_batches_is_one_large_batch_step():
    torch.manual_seed(0)
    batches = [(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))) for _ in range(4)]
    server, worker, reference = lenet5(seed=1), lenet5(seed=1), lenet5(seed=1)
    for p in server.parameters():
        p.grad = torch.zeros_like(p)
    gradients = [worker_gradient(worker, x, y)[0] for x, y in batches]
    apply_average(server, sgd(server.parameters(), HYPER), gradients)

    optimizer = sgd(reference.parameters(), HYPER)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    torch.nn.functional.cross_entropy(reference(x), y).backward()
    optimizer.step()
    assert torch.allclose(flat_parameters(server), flat_parameters(reference), atol=1e-5)
    assert not torch.allclose(flat_parameters(server), flat_parameters(lenet5(seed=1)), atol=1e-5)


def test_late_gradients_are_dropped_and_counted_never_applied():
    g = {name: torch.full((3,), value) for name, value in [("old", 9.0), ("a", 1.0), ("b", 2.0), ("c", 3.0)]}
    messages = iter([(1, 4, g["old"], 0.0), (3, 5, g["a"], 0.1), (2, 4, g["old"], 0.0), (2, 5, g["b"], 0.2),
                     (1, 5, g["c"], 0.3)])
    gradients, losses, dropped = collect(messages, step=5, needed=2)
    assert [t[0].item() for t in gradients] == [2.0, 1.0]  # in the order of the workers (2, 3)
    assert losses == [0.2, 0.1] and dropped == 2
    assert next(messages)[2] is g["c"]  # the third gradient for step 5 is left for the next step to drop


def test_the_step_does_not_depend_on_the_order_in_which_gradients_arrive():
    # Float32 sums depend on their order: 1e8 + 1 - 1e8 is 0, 1e8 - 1e8 + 1 is 1.
    g = {1: torch.tensor([1e8]), 2: torch.tensor([1.0]), 3: torch.tensor([-1e8])}
    steps = []
    for arrival in ([1, 2, 3], [1, 3, 2], [2, 3, 1]):
        gradients, _, _ = collect(iter([(w, 0, g[w], 0.0) for w in arrival]), step=0, needed=3)
        steps.append(torch.stack(gradients).mean(0).item())
    assert steps[0] == steps[1] == steps[2]


def test_a_gradient_from_the_future_is_a_protocol_error():
    with pytest.raises(RuntimeError, match="step 7"):
        collect(iter([(1, 7, torch.zeros(1), 0.0)]), step=6, needed=1)


def test_linear_scaling_warms_up_to_n_times_the_rate():
    args = argparse.Namespace(lr_scaling="linear", warmup_epochs=1.0)
    rates = [scaled_lr(0.01, step, args, num_awaited=8, steps_per_epoch=100) for step in (0, 49, 99, 500)]
    assert rates[0] == pytest.approx(0.01 * (1 + 7 * 0.01))
    assert rates[1] == pytest.approx(0.01 * (1 + 7 * 0.5))
    assert rates[2] == rates[3] == pytest.approx(0.08)
    assert scaled_lr(0.01, 0, argparse.Namespace(lr_scaling="none"), 8, 100) == 0.01


FLAGS = ["--train-subset", "1200", "--test-subset", "500", "--patience", "0", "--no-progress", "--epochs", "2"]


@needs_data
def test_backup_worker_run_learns_and_drops_late_gradients(tmp_path):
    # The last of the 3 workers always answers after the server has moved on: with 2 awaited, its gradients
    # are dropped. A late gradient is counted when the server next collects; on a machine busy with other tests
    # that can be an epoch later (a full suite run saw 0 and 8 for epochs of 6 steps), so the run is counted.
    result = mpirun(4, "tests/helpers/sync_sgd_late_worker.py", *FLAGS, "--backup-workers", "1",
                    "--results-dir", str(tmp_path), timeout=180)
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "sync_sgd.json").read_text())
    assert saved["method"] == "sync_sgd" and saved["status"] == "completed"
    epoch = saved["epochs"][-1]
    assert epoch["steps"] == 1200 // 3 // 64  # one pass of each of the 3 workers over its shard of 400
    dropped = [e["gradients_dropped"] for e in saved["epochs"]]
    assert 0 < sum(dropped) <= len(dropped) * epoch["steps"]  # one late gradient a step at most
    assert epoch["mean_step_time_s"] > 0 and epoch["bytes_sent"] > 0
    assert epoch["test_acc"] > 0.3


@needs_data
def test_too_many_backup_workers_are_refused():
    """The script's check of its flags (a refusal there ends an MPI job with one line and status 2:
    tests/test_split_variants.py, a cut the model lacks)."""
    import sync_sgd
    with pytest.raises(InputError, match="--backup-workers 2 leaves no gradient"):
        sync_sgd.check(sync_sgd.build_parser().parse_args(["--clients", "2", "--backup-workers", "2"]), world_size=2)
    sync_sgd.check(sync_sgd.build_parser().parse_args(["--clients", "3", "--backup-workers", "2"]), world_size=2)


@needs_data
def test_a_run_that_awaits_every_gradient_repeats_to_the_digit_on_any_placement(tmp_path):
    # Gradients arrive in whatever order the machine's timing gives (and the placement: 3 workers on 2 ranks,
    # then on 1); they are averaged in the workers' order.
    runs = []
    for ranks in (3, 2):
        name = f"{ranks}-ranks"
        result = mpirun(ranks, "sync_sgd.py", *FLAGS, "--clients", "3", "--results-dir", str(tmp_path / name),
                        timeout=180, env=PINNED)
        assert result.returncode == 0, result.stderr
        saved = json.loads((tmp_path / name / "sync_sgd.json").read_text())
        runs.append([(e["train_loss"], e["test_loss"], e["test_acc"]) for e in saved["epochs"]])
        for epoch in saved["epochs"]:  # the closed form, control messages aside (well under 0.1 %)
            formula = sync_sgd_epoch_bytes(epoch["steps"], 3, 61706)
            assert formula <= epoch["bytes_sent"] <= formula * 1.001
    assert runs[0] == runs[1]
