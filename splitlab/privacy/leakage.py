"""How much the cut-layer activations say about the raw images: Székely's distance correlation.

Two estimators, because they answer different questions:

* ``distance_correlation(x, z)``: the plain sample statistic dCor (V-statistic, double centring of Euclidean
  distances). NoPeek trains with it on each batch, and papers report it at a fixed batch size. At our
  dimensions (784 pixels, 1,176 activations) it is close to 1 even for *independent* data at batch 64: it
  is biased towards 1 when the dimension is large against the batch.
* ``bias_corrected_dcor_sqr(x, z)``: Székely and Rizzo's bias-corrected dCor^2 (U-centring, 2014). Near 0
  for independent data whatever the dimension, so it can be read as an amount of dependence.

``leakage_report`` gives both on a fixed set of images, with a shuffled-pairs null level for each.
"""

import torch


def _distances(x):
    x = x.reshape(len(x), -1).to(torch.float64)
    return torch.cdist(x, x)


def _double_centred(d):
    return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()


def _u_centred(d):
    n = len(d)
    u = d - d.sum(0, keepdim=True) / (n - 2) - d.sum(1, keepdim=True) / (n - 2) + d.sum() / ((n - 1) * (n - 2))
    return u.fill_diagonal_(0.0)


def distance_correlation(x, z):
    """The plain sample distance correlation dCor(x, z) in [0, 1] (rows are examples); differentiable, so
    NoPeek can train against it."""
    a, b = _double_centred(_distances(x)), _double_centred(_distances(z))
    dcov2, dvar_x2, dvar_z2 = (a * b).mean(), (a * a).mean(), (b * b).mean()
    denominator = (dvar_x2 * dvar_z2).sqrt()
    if denominator <= 0:  # a constant batch (NoPeek can drive every activation to 0): no dependence, and a zero
        return dcov2.double() * 0  # that stays in the graph, so that NoPeek's backward pass still runs
    return (dcov2 / denominator).clamp(min=0).sqrt()


def bias_corrected_dcor_sqr(x, z):
    """Bias-corrected squared distance correlation (U-centred; about 0 for independent data, may go below)."""
    n = len(x)
    if n < 4:
        raise ValueError(f"the bias-corrected estimator needs at least 4 examples, got {n}")
    a, b = _u_centred(_distances(x)), _u_centred(_distances(z))

    def inner(p, q):
        return (p * q).sum() / (n * (n - 3))
    denominator = (inner(a, a) * inner(b, b)).sqrt()
    return inner(a, b) / denominator if denominator > 0 else torch.zeros((), dtype=torch.float64)


def batch_distance_correlation(x, z, batch_size=64):
    """Mean of the plain dCor over consecutive batches of ``batch_size`` (a last, smaller batch is left out)."""
    values = [distance_correlation(x[s:s + batch_size], z[s:s + batch_size]).item()
              for s in range(0, len(x) - batch_size + 1, batch_size)]
    return sum(values) / len(values)


@torch.no_grad()
def leakage_report(images, activations, batch_size=64, seed=0):
    """Both estimators between ``images`` and their ``activations``, and each for shuffled pairs (the level
    that independence gives at these sizes): the keys a split-learning results file records."""
    shuffled = activations[torch.randperm(len(activations), generator=torch.Generator().manual_seed(seed))]
    return {"dcor_batch": batch_distance_correlation(images, activations, batch_size),
            "dcor_batch_null": batch_distance_correlation(images, shuffled, batch_size),
            "dcor2_bias_corrected": bias_corrected_dcor_sqr(images, activations).item(),
            "dcor2_bias_corrected_null": bias_corrected_dcor_sqr(images, shuffled).item(),
            "leakage_images": len(images), "leakage_batch_size": batch_size}
