"""What split learning keeps from the server: the leakage it records, the defences that lower it, and the labels
that U-shaped split learning keeps on the clients."""

import argparse

import pytest

from conftest import PINNED, needs_data, results_in_one_job

pytestmark = needs_data
SMALL = ["--train-subset", "600", "--test-subset", "300", "--epochs", "2", "--patience", "0", "--no-progress"]
LEAKAGE_KEYS = {"dcor_batch", "dcor_batch_null", "dcor2_bias_corrected", "dcor2_bias_corrected_null"}


RUNS = {"none": [], "nopeek": ["--nopeek", "5"], "noise": ["--noise-std", "3"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Pinned 2-client split-learning runs (both clients on one rank), undefended and under each defence of RUNS:
    their results by name, made in one MPI job on the module's first use."""
    return results_in_one_job(2, {name: ["split_learning.py", *SMALL, "--clients", "2", *flags]
                                  for name, flags in RUNS.items()}, tmp_path_factory.mktemp("defences"), timeout=600,
                              env=PINNED)


@pytest.fixture
def undefended(runs):
    return runs["none"]


def test_every_evaluation_records_the_leakage_of_what_was_sent(undefended):
    for epoch in undefended["epochs"]:
        assert LEAKAGE_KEYS <= set(epoch)
        # Activations of a trained part are far from independent of the images: above the shuffled-pairs null.
        assert epoch["dcor2_bias_corrected"] > 0.5 > 0.05 > epoch["dcor2_bias_corrected_null"]
        assert 0 <= epoch["dcor_batch_null"] < epoch["dcor_batch"] <= 1
    final = undefended["final_client_leakage"]
    assert len(final) == 2 and all(LEAKAGE_KEYS <= set(client) for client in final)
    assert final[-1]["leakage_images"] == 300  # the --leakage-images default (2000) capped by the test set


def test_nopeek_lowers_the_distance_correlation(runs, undefended):
    defended = runs["nopeek"]
    # Same seed, same data: the NoPeek term alone makes the difference (0.981 -> 0.974 on 2026-11-28).
    assert defended["epochs"][-1]["dcor2_bias_corrected"] < undefended["epochs"][-1]["dcor2_bias_corrected"] - 0.002


def test_noise_changes_what_the_server_receives_in_training_and_evaluation(runs, undefended):
    noisy = runs["noise"]
    # Evaluation: the leakage is measured on the activations sent, which carry the noise (the server sees
    # activations at inference too); training: the server part learns from noisy activations.
    assert noisy["epochs"][-1]["dcor2_bias_corrected"] < 0.8 < undefended["epochs"][-1]["dcor2_bias_corrected"]
    assert noisy["epochs"][0]["train_loss"] != pytest.approx(undefended["epochs"][0]["train_loss"], abs=1e-3)


def test_the_u_shaped_server_is_given_no_label():
    import split_learning
    from splitlab.net.placement import Placement
    args = split_learning.build_parser().parse_args(["--variant", "u-shaped", "--train-subset", "600",
                                                     "--test-subset", "300"])
    test_labels, num_test, shard_sizes = split_learning.load(args, 0, Placement(2, 2))
    assert test_labels is None and num_test == 300 and shard_sizes == [300, 300]
    vanilla = argparse.Namespace(**{**vars(args), "variant": "vanilla"})
    assert split_learning.load(vanilla, 0, Placement(2, 2))[0] is not None  # the vanilla server computes the loss
