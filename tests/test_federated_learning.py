"""Federated averaging: the pure aggregation, client sampling, and both modes end to end."""

import json

import numpy as np
import pytest
import torch

import federated_learning
from conftest import PINNED, in_process, mpirun, needs_data
from data import load_fashion_mnist
from models import build, flat_parameters
from splitlab.costs.traffic import fedavg_round_bytes
from splitlab.methods.averaging import Aggregator, OrderedAverage, sample_clients, weighted_average
from splitlab.methods.federated import Client
from splitlab.privacy.defences import clip_and_noise, update_noise_generator
from splitlab.privacy.update_attack import load_global_model
from splitlab.training.steps import evaluate

# ------------------------------------------------------------------------------------------- pure functions

def test_weighted_average_matches_numpy_for_unequal_shards():
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=50).astype(np.float32) for _ in range(4)]
    sizes = [6000, 100, 2500, 1]
    ours = weighted_average([torch.from_numpy(v) for v in vectors], sizes)
    assert np.allclose(ours.numpy(), np.average(np.stack(vectors), axis=0, weights=sizes), atol=1e-6)


def test_vectors_arriving_in_any_order_are_summed_in_key_order_holding_only_those_ahead_of_their_turn():
    vectors = [torch.randn(1000) * 10 ** k for k in range(5)]  # magnitudes apart: the order of the sum shows
    sizes = [3, 1, 4, 1, 5]
    average = OrderedAverage([10, 20, 30, 40, 50], sizes)
    for key in (30, 50, 10, 40):
        average.add(key, vectors[key // 10 - 1])
    assert len(average.waiting) == 3  # 10 summed; 30, 40, 50 wait for 20
    with pytest.raises(ValueError, match="1 of 5 vectors have not arrived"):
        average.result()
    average.add(20, vectors[1])
    assert not average.waiting and torch.equal(average.result(), weighted_average(vectors, sizes))


def test_the_shares_are_exact_in_double_precision():
    vectors = [torch.full((3,), 1.0, dtype=torch.float64), torch.full((3,), 4.0, dtype=torch.float64)]
    assert torch.equal(weighted_average(vectors, [1, 2]), torch.full((3,), 1 / 3 + 4 * 2 / 3, dtype=torch.float64))


def test_average_of_one_model_is_that_model_exactly():
    vector = torch.randn(1000)
    assert torch.equal(weighted_average([vector], [6000]), vector)


def test_server_momentum_accumulates_the_pseudo_gradient():
    aggregator = Aggregator(torch.zeros(3), server_momentum=0.5)
    aggregator.step(torch.ones(3))  # pseudo-gradient -1: velocity -1, params 1
    assert torch.allclose(aggregator.params, torch.ones(3))
    aggregator.step(torch.ones(3))  # pseudo-gradient 0: velocity -0.5, params 1.5
    assert torch.allclose(aggregator.params, torch.full((3,), 1.5))


def test_the_aggregator_resumes_from_its_state_with_its_momentum():
    aggregator = Aggregator(torch.zeros(3), server_momentum=0.5)
    aggregator.step(torch.ones(3))
    state = {k: v.clone() for k, v in aggregator.state_dict().items()}
    aggregator.step(2 * torch.ones(3))
    resumed = Aggregator(torch.full((3,), 7.0), server_momentum=0.5)
    resumed.load_state_dict(state)
    resumed.step(2 * torch.ones(3))
    assert torch.equal(resumed.params, aggregator.params) and torch.equal(resumed.velocity, aggregator.velocity)
    resumed.load_state_dict(state)  # the loaded tensors are copies: stepping leaves the checkpoint as it was
    assert torch.equal(state["params"], torch.ones(3))


def test_server_lr_scales_the_step_towards_the_average():
    aggregator = Aggregator(torch.zeros(3), server_lr=2.0)
    aggregator.step(weighted_average([torch.ones(3), 3 * torch.ones(3)], [1, 1]))  # average 2: the step is twice that
    assert torch.allclose(aggregator.params, torch.full((3,), 4.0))
    plain = Aggregator(torch.randn(1000))  # plain FedAvg: the global model becomes the average, round after round
    for _ in range(2):
        average = torch.randn(1000)
        plain.step(average)
        assert torch.equal(plain.params, average)


def test_sampling_is_seeded_sized_and_varies_by_round():
    rounds = [sample_clients(10, 0.3, seed=0, round_number=r) for r in range(1, 6)]
    assert all(len(s) == 3 and len(set(s)) == 3 and all(0 <= c < 10 for c in s) for s in rounds)
    assert rounds == [sample_clients(10, 0.3, seed=0, round_number=r) for r in range(1, 6)]
    assert len({tuple(s) for s in rounds}) > 1
    assert len(sample_clients(10, 0.01, seed=0, round_number=1)) == 1  # at least one client
    assert sample_clients(4, 1.0, seed=5, round_number=9) == [0, 1, 2, 3]


# ------------------------------------------------------------------------------------------------ end to end

FLAGS = ["--train-subset", "1000", "--test-subset", "500", "--patience", "0", "--no-progress", "--validation", "100"]


def losses(path, key="test_loss"):
    return [e[key] for e in json.loads(path.read_text())["epochs"]]


@needs_data
def test_one_client_one_local_epoch_is_regular_learning(tmp_path, regular_losses, regular_epochs):
    flags = [*FLAGS, "--epochs", "3"]
    federated = in_process("federated_learning.py", *flags, "--clients", "1", "--client-momentum", "keep",
                           "--results-dir", str(tmp_path), env=PINNED)
    assert federated.returncode == 0, federated.stderr
    assert losses(tmp_path / "federated.json") == pytest.approx(regular_losses(*flags), abs=1e-4)
    assert losses(tmp_path / "federated.json", "val_loss") == pytest.approx(
        [e["val_loss"] for e in regular_epochs(*flags)], abs=1e-4)


@needs_data
def test_momentum_reset_matches_regular_learning_only_in_the_first_round(tmp_path, regular_losses):
    flags = [*FLAGS, "--epochs", "2"]
    assert in_process("federated_learning.py", *flags, "--clients", "1", "--results-dir", str(tmp_path),
                      env=PINNED).returncode == 0
    federated, regular = losses(tmp_path / "federated.json"), regular_losses(*FLAGS, "--epochs", "3")[:2]
    assert federated[0] == pytest.approx(regular[0], abs=1e-4)
    assert federated[1] != pytest.approx(regular[1], abs=1e-4)


@needs_data
@pytest.mark.parametrize("ranks, extra, env", [
    (4, [], {}),  # a client a rank
    (3, ["--fraction", "0.5", "--server-momentum", "0.5", "--clip-update", "0.5", "--update-noise", "0.002"],
     {"DOORBELLS": "off"}),  # 3 clients on 2 ranks, polling; clipped, noised updates, the same noise in both modes
], ids=["a client a rank", "two ranks polling"])
def test_one_process_and_mpi_modes_agree(tmp_path, ranks, extra, env):
    flags = [*FLAGS, "--epochs", "2", "--clients", "3", *extra]
    one = in_process("federated_learning.py", *flags, "--results-dir", str(tmp_path / "one"), env=PINNED)
    mpi = mpirun(ranks, "federated_learning.py", *flags, "--results-dir", str(tmp_path / "mpi"), timeout=180,
                 env={**PINNED, **env})
    assert one.returncode == 0 and mpi.returncode == 0, one.stderr + mpi.stderr
    one_run = json.loads((tmp_path / "one" / "federated.json").read_text())
    mpi_run = json.loads((tmp_path / "mpi" / "federated.json").read_text())
    assert [e["test_loss"] for e in mpi_run["epochs"]] == pytest.approx(
        [e["test_loss"] for e in one_run["epochs"]], abs=1e-4)
    assert mpi_run["config"]["world_size"] == ranks and mpi_run["config"]["clients"] == 3
    assert mpi_run["environment"]["message_wait"] == ("polling" if env else "doorbells")
    for one_epoch, mpi_epoch in zip(one_run["epochs"], mpi_run["epochs"]):
        assert one_epoch["clients"] == mpi_epoch["clients"]
        assert one_epoch["model_bytes_up"] == mpi_epoch["model_bytes_up"] == mpi_epoch["clients"] * 61706 * 4
        assert one_epoch["bytes_sent"] == 0  # nothing crosses a process boundary in one process
        formula = fedavg_round_bytes(mpi_epoch["clients"], 61706)  # control messages aside: under 0.1 % more
        assert formula <= mpi_epoch["bytes_sent"] <= formula * 1.001
    # Both write the final global model (for attack_updates.py): the same model, the one the last round scored.
    one_model, _ = load_global_model(tmp_path / "one" / "federated.pt")
    mpi_model, _ = load_global_model(tmp_path / "mpi" / "federated.pt")
    assert flat_parameters(mpi_model) == pytest.approx(flat_parameters(one_model), abs=1e-5)
    _, _, x_eval, y_eval = load_fashion_mnist(None, 1000, 500, 100, 0)
    assert evaluate(one_model, x_eval, y_eval, 1000, 100)["test_acc"] == one_run["epochs"][-1]["test_acc"]


def test_a_clipped_update_has_at_most_the_clip_norm_and_its_noise_the_asked_spread():
    update = torch.full((40000,), 0.01)  # norm 2
    generator = torch.Generator().manual_seed(0)
    assert clip_and_noise(update, 0.5, 0.0, generator).norm().item() == pytest.approx(0.5, rel=1e-4)
    assert torch.equal(clip_and_noise(update, 5.0, 0.0, generator), update)  # already within: unchanged
    assert clip_and_noise(update, 0.0, 1.0, generator) is update  # off
    noise = clip_and_noise(update, 0.5, 0.2, generator) - update * 0.25
    assert noise.std().item() == pytest.approx(0.1, rel=0.02)  # 0.2 x the clip norm, in every coordinate
    seeds = {update_noise_generator(0, client, round).initial_seed() for client in (1, 2) for round in (1, 2)}
    assert len(seeds) == 4  # each client's noise its own in each round


def test_an_updates_noise_is_drawn_again_from_the_run_seed_client_and_round():
    """One process and MPI draw a client's noise apart and must agree: it follows the seed, client and round."""
    update = torch.full((1000,), 0.01)
    noised = [clip_and_noise(update, 0.5, 0.2, update_noise_generator(seed, 1, 2)) for seed in (0, 0, 1)]
    assert torch.equal(noised[0], noised[1]) and not torch.equal(noised[0], noised[2])


def test_a_fedavg_client_sends_its_update_clipped():
    args = federated_learning.build_parser().parse_args(["--clip-update", "0.01", "--batch-size", "8"])
    model, images = build("lenet5", 0), torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    start = flat_parameters(model).clone()
    sent, _ = Client(0, images, torch.arange(8), model, args).train(start, args.lr, 1)
    assert (sent - start).norm().item() == pytest.approx(0.01, rel=1e-4)


def test_update_noise_without_clipping_is_refused():
    with pytest.raises(SystemExit) as exit:
        federated_learning.build_parser().parse_args(["--update-noise", "1"])
    assert exit.value.code == 2


@needs_data
def test_mpi_with_one_rank_is_refused(tmp_path):
    result = mpirun(1, "federated_learning.py", *FLAGS, "--results-dir", str(tmp_path), timeout=120)
    assert result.returncode == 2
    assert "error: needs at least 2 MPI processes" in result.stderr and "Traceback" not in result.stderr


def test_bad_fraction_is_an_argparse_error():
    result = in_process("federated_learning.py", "--fraction", "1.5")
    assert result.returncode == 2 and "--fraction" in result.stderr
