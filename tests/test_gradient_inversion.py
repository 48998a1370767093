"""The attack on FedAvg's leg (gradient_inversion.py, update_attack.py, attack_updates.py): the update it
simulates is the one a FedAvg client sends; it rebuilds an image from a one-image update, does no better than its
baseline on an update that carries nothing, reads the labels of an update; its scores match each rebuilt image
to its original."""

import json

import pytest
import torch
from pytorch_msssim import ssim

import federated_learning
from conftest import PINNED, in_process, needs_data
from models import build, flat_parameters
from splitlab.methods.federated import Client
from splitlab.privacy.attack import against_baseline, blind, from_unit
from splitlab.privacy.gradient_inversion import (
    cosine_cost,
    idlg_label,
    invert,
    label_counts,
    local_update,
    mean_softmax,
    sgd_update,
)
from splitlab.privacy.update_attack import cases, matched


@pytest.fixture(autouse=True)
def one_thread():
    """One image's operations are tiny: two threads waited on each other, four times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def a_shirt():
    """A made-up image in [0, 1]: a bright T shape on a dark field, with a soft edge."""
    u = torch.zeros(1, 1, 28, 28)
    u[..., 6:10, 4:24] = 0.9  # the sleeves
    u[..., 10:24, 9:19] = 0.8  # the body
    return torch.nn.functional.avg_pool2d(u, 3, stride=1, padding=1)


def test_one_image_is_rebuilt_from_its_update_and_nothing_from_a_blind_models():
    torch.manual_seed(0)
    model, original, label = build("lenet5", 0), a_shirt(), torch.tensor([3])
    rebuilt = invert(model, one(sgd_update(model, from_unit(original), label)), label[None], steps=400)[0]
    zero = blind(model)
    baseline = invert(zero, one(sgd_update(zero, from_unit(original), label)), label[None], steps=400)[0]
    assert ssim(rebuilt, original, data_range=1.0).item() > 0.5
    assert ssim(baseline, original, data_range=1.0).item() < 0.2
    assert not against_baseline(rebuilt, baseline, original)["failed"]
    assert against_baseline(baseline, baseline, original)["failed"]  # no better than itself: failed


def one(update):
    """A stack of one update, as invert takes them."""
    return [t[None] for t in update]


def test_the_simulated_update_is_what_a_fedavg_client_sends():
    """Two local epochs over a shard of one batch, with momentum and weight decay: local_update, as the attack's
    case for the run's settings calls it, against federated.Client.train (torch.optim.SGD), which the attack would
    otherwise only assume it copies."""
    args = federated_learning.build_parser().parse_args(["--local-epochs", "2", "--batch-size", "16", "--lr", "0.05"])
    images = from_unit(torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(6)))
    labels = torch.arange(16) % 10
    model = build("lenet5", 7)
    start = flat_parameters(model).clone()
    sent, _ = Client(0, images, labels, model, args).train(start, args.lr, 1)
    [(name, case)] = cases([], vars(args), victims=16).items()
    assert name == "2 local epochs, batch 16" and case["batch"] == 16
    simulated = local_update(build("lenet5", 7), images, labels, **case["training"])
    assert torch.cat([u.flatten() for u in simulated]) == pytest.approx(sent - start, abs=1e-6)
    one_step = local_update(build("lenet5", 7), images, labels, args.lr, 16, 1, args.momentum, args.weight_decay)
    assert torch.cat([u.flatten() for u in one_step]) != pytest.approx(sent - start, abs=1e-6)


def test_side_by_side_attacks_are_independent():
    """Two one-image attacks stacked: the second's images follow its own update only (vmap), so replacing the
    first update changes the first reconstruction and leaves the second as it was."""
    model = build("lenet5", 0)
    shirt, dark, grey = a_shirt(), torch.zeros(1, 1, 28, 28), torch.full((1, 1, 28, 28), 0.5)
    labels = torch.tensor([[3], [3]])
    update = {name: sgd_update(model, from_unit(u), torch.tensor([3])) for name, u in
              (("shirt", shirt), ("dark", dark), ("grey", grey))}

    def attack(first, second):
        return invert(model, [torch.stack(t) for t in zip(update[first], update[second])], labels, steps=30)
    one, other = attack("shirt", "dark"), attack("grey", "dark")
    assert not torch.equal(one[0], other[0])
    assert torch.equal(one[1], other[1])


def test_the_rebuilt_images_are_scored_against_the_originals_they_match():
    originals = torch.stack([a_shirt()[0], torch.zeros(1, 28, 28), torch.full((1, 28, 28), 0.5)])
    shuffled = originals[[2, 0, 1]] + 0.01
    assert torch.equal(matched(shuffled, originals), originals + 0.01)


def test_the_label_of_a_one_image_update_is_read_exactly():
    model = build("lenet5", 1)
    images = from_unit(torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(2)))
    for label in range(10):
        update = sgd_update(model, images[label:label + 1], torch.tensor([label]))
        assert idlg_label(update) == label


def test_the_cost_is_the_cosine_distance_over_all_parameters_at_once():
    a, b = [torch.tensor([1.0, 0.0]), torch.tensor([0.0])], [torch.tensor([0.0, 0.0]), torch.tensor([2.0])]
    assert cosine_cost(a, a).item() == 0.0
    assert abs(cosine_cost(a, b).item() - 1.0) < 1e-6  # orthogonal as one vector, whatever each tensor says
    assert abs(cosine_cost(a, [-t for t in a]).item() - 2.0) < 1e-6
    assert abs(cosine_cost([torch.tensor([1.0, 1.0]), torch.tensor([0.0])], [torch.tensor([1.0, 0.0]),
                                                                            torch.tensor([0.0])]).item()
               - (1 - 2 ** -0.5)) < 1e-6


def test_the_labels_of_a_batch_are_counted_from_an_update():
    """Eight images: every class counted exactly, with the softmax estimated on images of the attacker's own
    (here, like the victims, random); without that estimate (a uniform guess) the count is wrong."""
    model = build("lenet5", 3)
    labels = torch.tensor([0, 0, 0, 4, 4, 7, 9, 2])
    images = from_unit(torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(4)))
    own = from_unit(torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(5)))
    update = sgd_update(model, images, labels, lr=0.05)
    assert label_counts(update, 8, mean_softmax(model, own), lr=0.05) == [3, 0, 1, 0, 2, 0, 0, 1, 0, 1]
    assert label_counts(update, 8, torch.full((10,), 0.1), lr=0.05) != [3, 0, 1, 0, 2, 0, 0, 1, 0, 1]


def test_label_counts_add_up_to_the_batch():
    """Rounding each class on its own can lose or gain an image; the largest remainders settle it."""
    update = [torch.tensor([0.0]), torch.zeros(10)]  # the last bias: no information at all
    def softmax(*shares):
        return torch.tensor([*shares] + [0.0] * (10 - len(shares)))
    assert label_counts(update, 2, softmax(0.28, 0.32, 0.4), lr=1.0)[:3] == [0, 1, 1]  # 0.56, 0.64, 0.8: 3 round up
    assert label_counts(update, 3, softmax(0.44, 0.46, 0.1), lr=1.0)[:3] == [1, 2, 0]  # 1.32, 1.38, 0.3: 2
    assert label_counts(update, 4, softmax(0.3, 0.25, 0.2, 0.15, 0.1), lr=1.0)[:5] == [1, 1, 1, 1, 0]  # as rounded


@needs_data
def test_a_fedavg_runs_updates_attacked_end_to_end(tmp_path):
    """federated_learning.py writes its final model; attack_updates.py attacks every case at the first round and
    the last, counts the updates and their bytes, reads one image's label exactly, and refuses a file that is not a
    FedAvg model with a clear error."""
    trained = in_process("federated_learning.py", "--train-subset", "600", "--test-subset", "200", "--epochs", "1",
                         "--clients", "2", "--batch-size", "8", "--no-progress", "--results-dir", str(tmp_path),
                         env=PINNED)
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "attack.json"
    attacked = in_process("attack_updates.py", str(tmp_path / "federated.pt"), "--victims", "9", "--batches", "1,4",
                          "--steps", "3", "--classifier-images", "500", "--classifier-epochs", "1", "--out", str(out),
                          env=PINNED)
    assert attacked.returncode == 0, attacked.stderr
    result = json.loads(out.read_text())
    assert set(result["rounds"]) == {"first", "last"}
    for found in result["rounds"].values():
        attacks = found["attacks"]
        assert list(attacks) == ["one step, B=1", "one step, B=4", "one local epoch, batch 8"]
        assert [a["updates"] for a in attacks.values()] == [9, 3, 1]
        assert attacks["one step, B=4"]["bytes_seen"] == 3 * 61706 * 4  # LeNet-5's parameters, as float32
        assert attacks["one step, B=1"]["labels_read_right"] == 1.0
        per_image = attacks["one step, B=4"]["ssim_per_image"]
        assert len(per_image) == 9 and sum(s > 0.5 for s in per_image) / 9 == attacks["one step, B=4"]["recognisable"]
        assert attacks["one local epoch, batch 8"]["labels_read_right"] is None  # given, not read
    assert (tmp_path / "federated-updates-reconstructions.png").exists()
    (tmp_path / "not-a-model.pt").write_bytes(b"not a checkpoint")
    refused = in_process("attack_updates.py", str(tmp_path / "not-a-model.pt"), env=PINNED)
    assert refused.returncode == 2 and "is not a FedAvg run's global model" in refused.stderr
    assert "Traceback" not in refused.stderr
