"""traffic.py's closed forms, against byte counts made by hand for small cases (the runs' measured bytes are
compared with them in test_split_variants.py and test_decision.py), and the properties the map relies on."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from splitlab.costs.traffic import crossover, fedavg_round_bytes, split_epoch_bytes, sync_sgd_epoch_bytes

# 10 training images, 5 test images, 3 floats at the cut, 2 entering the head, a client part of 7 parameters.
# Vanilla: per image 3 floats up, 3 down (24 bytes) and a label (8): 10 x 32 = 320; the test set 5 x 3 floats up: 60.


@pytest.mark.parametrize("variant, extra, expected", [
    ("vanilla", {}, 320 + 60),
    ("vanilla", {"evaluated": 2}, 320 + 2 * 60),  # two client parts evaluated
    ("vanilla", {"p": 7, "handovers": 3}, 380 + 3 * (7 + 7) * 4),  # each hand-over: the part and its momentum
    ("vanilla", {"p": 7, "handovers": 3, "momentum": False}, 380 + 3 * 7 * 4),
    ("sflv1", {"p": 7}, 380 + 2 * 2 * 7 * 4),  # each of 2 clients' part up, the average down
    ("sflv2", {"p": 7}, 380 + 2 * 2 * 7 * 4),
    # U-shaped, per image: the cut's 3 floats up and their gradient down, the head's 2 down and their gradient up,
    # no label; a test image: 3 up, 2 down
    ("u-shaped", {"h": 2}, 10 * 2 * 5 * 4 + 5 * 5 * 4),
])
def test_split_learning_bytes_counted_by_hand(variant, extra, expected):
    assert split_epoch_bytes(variant, n=10, t=5, clients=2, c=3, **extra) == expected


def test_fedavg_and_sync_sgd_bytes_counted_by_hand():
    assert fedavg_round_bytes(3, 100) == 3 * 2 * 100 * 4  # 3 clients, 100 floats down and up each
    # 2 steps x 3 workers: 10 parameters + the step down (11 floats), the gradient + step, loss, worker up (13)
    assert sync_sgd_epoch_bytes(2, 3, 10) == 2 * 3 * (11 + 13) * 4
    assert crossover(1000, 40) == 25


@given(n=st.integers(1, 10**6), t=st.integers(0, 10**4), clients=st.integers(1, 1000), c=st.integers(1, 5000))
def test_split_bytes_follow_the_images_not_the_clients_and_grow_with_the_cut(n, t, clients, c):
    vanilla = split_epoch_bytes("vanilla", n, t, clients, c)
    assert vanilla == split_epoch_bytes("vanilla", n, t, clients + 1, c)  # more holders of the same images
    assert split_epoch_bytes("vanilla", n, t, clients, c + 1) - vanilla == 8 * n + 4 * t  # a float more at the cut
    assert split_epoch_bytes("vanilla", n + 1, t, clients, c) - vanilla == 8 * c + 8  # an image more


@given(clients=st.integers(1, 10**4), parameters=st.integers(1, 10**7))
def test_fedavg_bytes_grow_by_a_model_down_and_up_for_each_client(clients, parameters):
    assert fedavg_round_bytes(clients + 1, parameters) - fedavg_round_bytes(clients, parameters) == 8 * parameters
