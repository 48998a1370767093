"""Distance correlation: both estimators equal the dcor package's, and the plain one's trap is documented."""

import importlib

import numpy as np
import pytest
import torch

from splitlab.privacy.leakage import (
    batch_distance_correlation,
    bias_corrected_dcor_sqr,
    distance_correlation,
    leakage_report,
)


@pytest.fixture(scope="module")
def dcor():
    """The reference package, imported by the one worker that runs this file: its first import compiles with numba
    into a shared cache (`make setup` does that once), and xdist's workers compiling it at once corrupted that
    cache (numba issue 4807), so that every worker aborted while collecting this file."""
    return importlib.import_module("dcor")


@pytest.mark.parametrize("n, dx, dz", [(64, 784, 1176), (30, 5, 3), (200, 20, 40)])
def test_both_estimators_equal_the_dcor_package(n, dx, dz, dcor):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, dx))
    z = np.tanh(x[:, :1] @ rng.normal(size=(1, dz))) + rng.normal(size=(n, dz))  # dependent, not linearly
    assert distance_correlation(torch.from_numpy(x), torch.from_numpy(z)).item() == pytest.approx(
        dcor.distance_correlation(x, z), abs=1e-6)
    assert bias_corrected_dcor_sqr(torch.from_numpy(x), torch.from_numpy(z)).item() == pytest.approx(
        dcor.u_distance_correlation_sqr(x, z), abs=1e-6)


def test_independent_data_of_our_dimensions_fools_only_the_plain_statistic():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 784, generator=generator)  # images and activations that have nothing to do with them
    z = torch.rand(2000, 1176, generator=generator)
    assert batch_distance_correlation(x, z, 64) > 0.8  # the trap: "high leakage" from independent data
    assert abs(bias_corrected_dcor_sqr(x, z).item()) < 0.05


def test_a_copy_leaks_everything_and_shuffling_gives_the_null_level():
    x = torch.randn(256, 50, generator=torch.Generator().manual_seed(1))
    report = leakage_report(x, 3 * x + 1)
    assert report["dcor_batch"] == pytest.approx(1.0) and report["dcor2_bias_corrected"] == pytest.approx(1.0)
    assert abs(report["dcor2_bias_corrected_null"]) < 0.05 < report["dcor_batch_null"]


def test_the_plain_statistic_can_be_trained_against():
    x = torch.randn(32, 10, dtype=torch.float64)
    z = (x @ torch.randn(10, 6, dtype=torch.float64)).requires_grad_()
    distance_correlation(x, z).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_nopeek_can_train_through_a_batch_of_constant_activations():
    """NoPeek at a large weight can drive a client's activations to 0 (a make privacy run at W = 8 ended with
    "does not require grad" there): dCor is then 0, and its backward pass runs and pushes nothing."""
    z = torch.zeros(16, 6, dtype=torch.float64, requires_grad=True)
    penalty = distance_correlation(torch.randn(16, 10, dtype=torch.float64), z)
    penalty.backward()
    assert penalty.item() == 0 and torch.equal(z.grad, torch.zeros_like(z))


def test_the_bias_corrected_estimator_takes_four_examples_or_more_and_is_zero_for_a_constant(dcor):
    rng = np.random.default_rng(4)
    x, z = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    assert bias_corrected_dcor_sqr(torch.from_numpy(x), torch.from_numpy(z)).item() == pytest.approx(
        dcor.u_distance_correlation_sqr(x, z), abs=1e-9)
    with pytest.raises(ValueError, match="needs at least 4 examples, got 3"):
        bias_corrected_dcor_sqr(torch.from_numpy(x[:3]), torch.from_numpy(z[:3]))
    constant = torch.zeros(10, 2, dtype=torch.float64)
    assert bias_corrected_dcor_sqr(torch.from_numpy(rng.normal(size=(10, 3))), constant).item() == 0


def test_the_batch_statistic_is_the_mean_over_whole_batches_only(dcor):
    rng = np.random.default_rng(5)
    x, z = rng.normal(size=(130, 6)), rng.normal(size=(130, 4))
    z[:64] += x[:64, :4]  # the first batch dependent, the second not; the last two examples left out
    expected = np.mean([dcor.distance_correlation(x[s:s + 64], z[s:s + 64]) for s in (0, 64)])
    assert batch_distance_correlation(torch.from_numpy(x), torch.from_numpy(z)) == pytest.approx(expected, abs=1e-9)
