"""The split is exact for every model: client part then server part is the whole network, forward and backward;
the shapes sent are the model's own."""

import pytest
import torch
import torch.nn.functional as F

from models import (
    MODELS,
    build,
    check_split,
    cut_points,
    cut_shape,
    flat_parameters,
    head_choices,
    head_shape,
    lenet5,
    load_flat_parameters,
    split,
    split_u_shaped,
)

SPLITS = [(name, cut) for name in MODELS for cut in cut_points(name)]


@pytest.mark.parametrize("name, cut_layer", SPLITS)
def test_client_then_server_is_the_whole_network(name, cut_layer):
    whole = build(name, seed=3)
    client_part, server_part = split(name, cut_layer, seed=3)
    x = torch.randn(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))

    smashed = client_part(x)
    assert smashed.shape == (8, *cut_shape(name, cut_layer))
    assert torch.equal(server_part(smashed), whole(x))

    # Gradients through the cut, as split learning computes them, equal the whole network's.
    F.cross_entropy(whole(x), y).backward()
    smashed = client_part(x)
    cut_input = smashed.detach().requires_grad_()
    F.cross_entropy(server_part(cut_input), y).backward()
    smashed.backward(cut_input.grad)
    split_grads = [p.grad for p in [*client_part.parameters(), *server_part.parameters()]]
    for whole_param, grad in zip(whole.parameters(), split_grads, strict=True):
        assert torch.allclose(whole_param.grad, grad, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_weights_other_seed_other_weights(name):
    assert torch.equal(flat_parameters(build(name, seed=1)), flat_parameters(build(name, seed=1)))
    assert not torch.equal(flat_parameters(build(name, seed=1)), flat_parameters(build(name, seed=2)))
    client_part, server_part = split(name, 1, seed=1)
    assert torch.equal(torch.cat([flat_parameters(client_part), flat_parameters(server_part)]),
                       flat_parameters(build(name, seed=1)))


def test_building_a_seeded_model_leaves_the_process_generator_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    lenet5(seed=0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name, parameters, cut_shapes", [
    ("lenet5", 61706, [(6, 14, 14), (16, 5, 5)]),  # the first convolution padded
    ("lenet5-report", 44426, [(6, 12, 12), (16, 4, 4)]),  # the report's code: bt-s/Split-Learning-..., models.py
    ("vgg-small", 1722490, [(16, 14, 14), (32, 7, 7), (64, 3, 3)])])
def test_each_model_has_its_size_and_cut_shapes(name, parameters, cut_shapes):
    model = build(name, seed=0)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert [cut_shape(name, cut) for cut in cut_points(name)] == cut_shapes


def test_flat_parameters_round_trip_copies():
    source, target = lenet5(seed=0), lenet5(seed=1)
    flat = flat_parameters(source)
    load_flat_parameters(target, flat)
    assert torch.equal(flat_parameters(target), flat)
    with torch.no_grad():  # training the target must not change the vector it was loaded from
        next(target.parameters()).add_(1.0)
    assert torch.equal(flat, flat_parameters(source))
    with pytest.raises(ValueError):
        load_flat_parameters(target, flat[:-1])


def test_unknown_models_and_cuts_are_refused_naming_the_choices():
    with pytest.raises(ValueError, match="lenet5 has cut points 1, 2, not 3"):
        split("lenet5", 3)
    with pytest.raises(ValueError, match="choose from lenet5, lenet5-report, vgg-small"):
        check_split("resnet", 1)
    with pytest.raises(ValueError, match="keeps 1, 2 fully connected layers, not 3"):
        split_u_shaped("lenet5", 1, 3)


@pytest.mark.parametrize("name, cut_layer", SPLITS)
def test_u_shaped_front_middle_head_is_the_whole_network(name, cut_layer):
    whole = build(name, seed=3)
    x = torch.randn(8, 1, 28, 28)
    for head_layers in head_choices(name):
        front, middle, head = split_u_shaped(name, cut_layer, head_layers, seed=3)
        smashed = front(x)
        assert smashed.shape == (8, *cut_shape(name, cut_layer))
        assert middle(smashed).shape == (8, *head_shape(name, head_layers))
        assert torch.equal(head(middle(smashed)), whole(x))
        parts = [front, middle, head]
        assert torch.equal(torch.cat([flat_parameters(p) for p in parts]), flat_parameters(whole))
