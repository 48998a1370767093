"""What a FedAvg server rebuilds from a client's update: gradient inversion as in Geiping et al. 2020 ("Inverting
Gradients"), with the labels read first from the last layer's gradient as in iDLG (Zhao et al. 2020): one image's
label from the weights' update, a batch's label counts from the bias's.

The server knows the model it sent and receives the client's parameters back; after one SGD step on one batch
their difference is -lr x the batch's gradient, so it points the way the gradient does. The attack starts from
random images and moves them (Adam on the sign of the cost's gradient, pixels kept in [0, 1], as the reference
code does) until the gradient they give points the way the update does: 1 - the cosine similarity of the two
over all parameters at once, plus a total-variation prior; the step size is cut tenfold at 3/8, 5/8 and 7/8 of
the steps (the reference code's schedule). Its baseline is the same attack on the update of a model whose
weights are all zero (attack.blind): whatever it rebuilds from that is known without the victims' update.
"""

import torch
import torch.nn.functional as F

from splitlab.privacy.attack import from_unit, total_variation


def sgd_update(model, images, labels, lr=0.01):
    """The update a client sends after one SGD step on ``images`` (standardised) and ``labels``: new minus old
    parameters, one tensor a parameter."""
    loss = F.cross_entropy(model(images), labels)
    return [-lr * g for g in torch.autograd.grad(loss, list(model.parameters()))]


def idlg_label(update):
    """The label of a one-image update (iDLG): the last layer's weights feed the softmax, and only the true
    class's row of their gradient, (p_y - 1) x activations, is negative (the activations are >= 0 after a
    ReLU); an update is -lr x the gradient, so that row sums highest."""
    return int(update[-2].sum(dim=1).argmax())


def label_counts(update, batch, mean_softmax, lr=0.01):
    """How many of a one-step update's ``batch`` images have each label, read from the last layer's bias: its
    gradient is the batch's mean of (softmax - one-hot), so B x (mean softmax) + B x update / lr counts each class.
    The attacker does not know the victims' softmax; ``mean_softmax`` is its estimate (:func:`mean_softmax` on
    images of its own)."""
    counts = batch * mean_softmax + batch * update[-1] / lr
    return [int(c) for c in counts.round().clamp(min=0)]


def mean_softmax(model, images):
    """The model's mean prediction over ``images`` (standardised): the attacker's estimate of the victims'."""
    with torch.no_grad():
        return torch.softmax(model(images), dim=1).mean(dim=0)


def cosine_cost(gradient, target):
    """1 - the cosine similarity of two gradients, each all its parameter tensors taken as one vector."""
    dot = sum((g * t).sum() for g, t in zip(gradient, target))
    norms = sum(g.pow(2).sum() for g in gradient).sqrt() * sum(t.pow(2).sum() for t in target).sqrt()
    return 1 - dot / (norms + 1e-12)


def invert(model, update, labels, steps=1000, lr=0.1, tv_weight=1e-2, seed=0):
    """Images in [0, 1] whose gradient on ``model`` with ``labels`` points the way ``update`` does."""
    params = list(model.parameters())
    pixels = torch.rand((len(labels), 1, 28, 28), generator=torch.Generator().manual_seed(seed), requires_grad=True)
    optimizer = torch.optim.Adam([pixels], lr=lr)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [steps * 3 // 8, steps * 5 // 8, steps * 7 // 8], 0.1)
    for _ in range(steps):
        loss = F.cross_entropy(model(from_unit(pixels)), labels)
        gradient = torch.autograd.grad(loss, params, create_graph=True)
        cost = cosine_cost([-g for g in gradient], update) + tv_weight * total_variation(pixels)
        optimizer.zero_grad()
        pixels.grad, = torch.autograd.grad(cost, [pixels])
        pixels.grad.sign_()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            pixels.clamp_(0, 1)
    return pixels.detach()
