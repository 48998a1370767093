"""The attack on FedAvg's leg (gradient_inversion.py): it rebuilds an image from a one-image update, does no
better than its baseline on an update that carries nothing, and reads the label of a one-image update exactly."""

import pytest
import torch
from pytorch_msssim import ssim

from models import build
from splitlab.privacy.attack import against_baseline, blind, from_unit
from splitlab.privacy.gradient_inversion import cosine_cost, idlg_label, invert, label_counts, mean_softmax, sgd_update


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
    rebuilt = invert(model, sgd_update(model, from_unit(original), label), label, steps=400)
    zero = blind(model)
    baseline = invert(zero, sgd_update(zero, from_unit(original), label), label, steps=400)
    assert ssim(rebuilt, original, data_range=1.0).item() > 0.5
    assert ssim(baseline, original, data_range=1.0).item() < 0.2
    assert not against_baseline(rebuilt, baseline, original)["failed"]
    assert against_baseline(baseline, baseline, original)["failed"]  # no better than itself: failed


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
