"""The split is exact: client part then server part is the whole LeNet-5, forward and backward."""

import pytest
import torch
import torch.nn.functional as F

from models import CUT_SHAPES, HEAD_SHAPES, flat_parameters, lenet5, load_flat_parameters, split_lenet5, \
    split_u_shaped


@pytest.mark.parametrize("cut_layer", sorted(CUT_SHAPES))
def test_client_then_server_is_the_whole_network(cut_layer):
    whole = lenet5(seed=3)
    client_part, server_part = split_lenet5(cut_layer, seed=3)
    x = torch.randn(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))

    smashed = client_part(x)
    assert smashed.shape == (8, *CUT_SHAPES[cut_layer])
    assert torch.equal(server_part(smashed), whole(x))

    # Gradients through the cut, as split learning computes them, equal the whole network's.
    F.cross_entropy(whole(x), y).backward()
    smashed = client_part(x)
    cut_input = smashed.detach().requires_grad_()
    F.cross_entropy(server_part(cut_input), y).backward()
    smashed.backward(cut_input.grad)
    split_grads = [p.grad for p in [*client_part.parameters(), *server_part.parameters()]]
    for whole_param, grad in zip(whole.parameters(), split_grads, strict=True):
        assert torch.allclose(whole_param.grad, grad, atol=1e-7)


def test_same_seed_same_weights_other_seed_other_weights():
    assert torch.equal(flat_parameters(lenet5(seed=1)), flat_parameters(lenet5(seed=1)))
    assert not torch.equal(flat_parameters(lenet5(seed=1)), flat_parameters(lenet5(seed=2)))
    client_part, server_part = split_lenet5(1, seed=1)
    assert torch.equal(torch.cat([flat_parameters(client_part), flat_parameters(server_part)]),
                       flat_parameters(lenet5(seed=1)))


def test_lenet5_shape_and_size():
    model = lenet5(seed=0)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == 61706  # LeNet-5 with a padded first convolution


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


def test_unknown_cut_layer_is_refused():
    with pytest.raises(ValueError, match="cut layer"):
        split_lenet5(3)


@pytest.mark.parametrize("cut_layer", sorted(CUT_SHAPES))
@pytest.mark.parametrize("head_layers", sorted(HEAD_SHAPES))
def test_u_shaped_front_middle_head_is_the_whole_network(cut_layer, head_layers):
    whole = lenet5(seed=3)
    front, middle, head = split_u_shaped(cut_layer, head_layers, seed=3)
    x = torch.randn(8, 1, 28, 28)
    smashed = front(x)
    assert smashed.shape == (8, *CUT_SHAPES[cut_layer])
    assert middle(smashed).shape == (8, *HEAD_SHAPES[head_layers])
    assert torch.equal(head(middle(smashed)), whole(x))
    parts = [front, middle, head]
    assert torch.equal(torch.cat([flat_parameters(p) for p in parts]), flat_parameters(whole))
