"""Evaluations within an epoch (split_learning.py --evals-per-epoch), which the decision map's time to a target
reads: they leave the training as it was, come after the turns that end each N-th of the epoch's batches, count
their traffic, and are refused where a method has no model within an epoch."""

import pytest

from conftest import PINNED, needs_data, results_in_one_job
from splitlab.errors import InputError
from splitlab.methods.split_roles import evaluation_turns

pytestmark = needs_data

# 600 training images, 100 of them held out: 4 clients of 125 images, 2 batches of 64 each, 8 batches an epoch
SMALL = ["--train-subset", "600", "--validation", "100", "--test-subset", "200", "--patience", "0",
         "--epochs", "2", "--clients", "4", "--no-progress"]
EVALS = ["--evals-per-epoch", "4"]
LENET5_CUT1_FLOATS = 6 * 14 * 14  # what an image sends at lenet5's first cut


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Vanilla and U-shaped split learning, each with and without evaluations within the epoch: 4 clients on 2
    ranks, pinned threads, one MPI job."""
    return results_in_one_job(3, {
        f"{variant}{'-within' if within else ''}": ["split_learning.py", *SMALL, "--variant", variant,
                                                    *(EVALS if within else [])]
        for variant in ("vanilla", "u-shaped") for within in (False, True)},
        tmp_path_factory.mktemp("within"), env=PINNED, timeout=400)


@pytest.mark.parametrize("variant", ["vanilla", "u-shaped"])
def test_evaluating_within_the_epoch_leaves_the_training_as_it_was(runs, variant):
    plain, within = runs[variant]["epochs"], runs[f"{variant}-within"]["epochs"]
    keys = ("lr", "train_loss", "val_loss", "val_acc", "test_loss", "test_acc")
    assert [[e[k] for k in keys] for e in within] == [[e[k] for k in keys] for e in plain]


@pytest.mark.parametrize("variant", ["vanilla", "u-shaped"])
def test_the_evaluations_come_after_the_turns_that_end_each_quarter(runs, variant):
    for epoch in runs[f"{variant}-within"]["epochs"]:
        points = epoch["within_epoch"]
        assert [p["fraction"] for p in points] == [2 / 8, 4 / 8, 6 / 8]  # after turns 1, 2 and 3 (2 batches each)
        assert all(set(p) == {"fraction", "val_loss", "val_acc"} for p in points)  # the validation set alone
        assert 0 < epoch["within_epoch_s"] < epoch["train_time_s"]
    assert "within_epoch" not in runs[variant]["epochs"][0]


def test_the_evaluations_traffic_is_the_epochs(runs):
    plain, within = runs["vanilla"]["epochs"], runs["vanilla-within"]["epochs"]
    # three evaluations an epoch, each 100 validation images' activations sent (and received), with a command
    # and a report of a few hundred bytes
    smashed = 3 * 100 * LENET5_CUT1_FLOATS * 4
    for a, b in zip(plain, within):
        assert b["bytes_sent"] - a["bytes_sent"] == pytest.approx(smashed, abs=3 * 400)


@pytest.mark.parametrize("turn_batches,evaluations,expected", [
    ([10] * 10, 10, list(range(9))),  # the report's 10 clients: after every turn but the last
    ([10] * 10, 1, []),
    ([1] * 1000, 10, [99, 199, 299, 399, 499, 599, 699, 799, 899]),
    ([2, 2, 2, 2], 4, [0, 1, 2]),
    ([5, 1, 1, 1, 1, 1], 2, [0]),  # the first turn ends half the batches
    ([1, 1, 1], 10, [0, 1]),  # more evaluations asked than turns: one after each turn
    ([8], 10, []),  # one client: the epoch's own evaluation only
])
def test_evaluation_turns_counted_by_hand(turn_batches, evaluations, expected):
    assert evaluation_turns(turn_batches, evaluations) == expected


@pytest.mark.parametrize("flags,named", [
    (["--variant", "sflv2", "--validation", "100", *EVALS], "sflv2's clients train at once"),
    (EVALS, "hold one out with --validation N"),
])
def test_evaluations_within_an_epoch_are_refused_where_they_cannot_be(flags, named):
    """The script's check of its flags, which every rank runs; that a refusal there ends the job with one line and
    status 2 is tests/test_split_variants.py's (a cut the model lacks)."""
    import split_learning
    with pytest.raises(InputError, match=named):
        split_learning.check(split_learning.build_parser().parse_args(flags), world_size=2)
    split_learning.check(split_learning.build_parser().parse_args([*flags, "--variant", "u-shaped",
                                                                    "--validation", "100"]), world_size=2)
