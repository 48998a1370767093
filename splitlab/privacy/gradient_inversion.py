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
from torch.func import functional_call

from splitlab.privacy.attack import from_unit, total_variation


def sgd_update(model, images, labels, lr=0.01):
    """The update a client sends after one SGD step on ``images`` (standardised) and ``labels``: new minus old
    parameters, one tensor a parameter."""
    return local_update(model, images, labels, lr)


def local_update(model, images, labels, lr, batch_size=None, epochs=1, momentum=0.0, weight_decay=0.0):
    """New minus old parameters after ``epochs`` of SGD over ``images`` in batches of ``batch_size`` (all at once
    by default), taken in the order given, with torch.optim.SGD's momentum and weight decay: what a FedAvg client
    sends (federated.Client.train). Written with torch.func, so it is differentiable in the images and maps over
    a stack of clients (:func:`invert`)."""
    start = {name: p.detach() for name, p in model.named_parameters()}

    def loss(params, x, y):
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    params, velocity = start, None
    batch_size = batch_size or len(images)
    for _ in range(epochs):
        for i in range(0, len(images), batch_size):
            grads = torch.func.grad(loss)(params, images[i:i + batch_size], labels[i:i + batch_size])
            grads = {k: g + weight_decay * params[k] for k, g in grads.items()}
            velocity = grads if velocity is None else {k: momentum * velocity[k] + g for k, g in grads.items()}
            params = {k: params[k] - lr * v for k, v in velocity.items()}
    return [params[k] - start[k] for k in start]


def idlg_label(update):
    """The label of a one-image update (iDLG): the last layer's weights feed the softmax, and only the true
    class's row of their gradient, (p_y - 1) x activations, is negative (the activations are >= 0 after a
    ReLU); an update is -lr x the gradient, so that row sums highest."""
    return int(update[-2].sum(dim=1).argmax())


def label_counts(update, batch, mean_softmax, lr=0.01):
    """How many of a one-step update's ``batch`` images have each label, read from the last layer's bias: its
    gradient is the batch's mean of (softmax - one-hot), so B x (mean softmax) + B x update / lr counts each class.
    The attacker does not know the victims' softmax; ``mean_softmax`` is its estimate (:func:`mean_softmax` on
    images of its own). The counts add up to ``batch``: rounded, then the largest remainders decide (Hamilton's
    method)."""
    estimate = (batch * mean_softmax + batch * update[-1] / lr).clamp(min=0)
    counts = estimate.round()
    while counts.sum() != batch:  # rounding lost or gained an image: add where most is missing, or take back
        remainder = estimate - counts
        if counts.sum() < batch:
            counts[remainder.argmax()] += 1
        else:
            counts[torch.where(counts > 0, remainder, torch.inf).argmin()] -= 1
    return [int(c) for c in counts]


def mean_softmax(model, images):
    """The model's mean prediction over ``images`` (standardised): the attacker's estimate of the victims'."""
    with torch.no_grad():
        return torch.softmax(model(images), dim=1).mean(dim=0)


def cosine_cost(gradient, target):
    """1 - the cosine similarity of two gradients, each all its parameter tensors taken as one vector."""
    dot = sum((g * t).sum() for g, t in zip(gradient, target))
    norms = sum(g.pow(2).sum() for g in gradient).sqrt() * sum(t.pow(2).sum() for t in target).sqrt()
    return 1 - dot / (norms + 1e-12)


def invert(model, updates, labels, steps=1000, attack_lr=0.1, tv_weight=1e-2, seed=0, **training):
    """For each of a stack of updates (a list of tensors, one a parameter, each with the updates along its first
    dimension) and its batch's labels (one row each), images in [0, 1] whose update on ``model`` points the way
    that update does: one gradient step by default, else the client's local training as ``training`` describes it
    (:func:`local_update`'s lr, batch_size, epochs, momentum, weight_decay), simulated on the candidate images.
    The attacks are independent and run side by side (torch.func.vmap); Adam's step is ``attack_lr``."""
    training = {"lr": 1.0, **training}  # one step: the cosine cost does not see the step's size

    def cost(pixels, update, labels):
        simulated = local_update(model, from_unit(pixels), labels, **training)
        return cosine_cost(simulated, update) + tv_weight * total_variation(pixels)

    shape = (*labels.shape, 1, 28, 28)
    pixels = torch.rand(shape, generator=torch.Generator().manual_seed(seed), requires_grad=True)
    optimizer = torch.optim.Adam([pixels], lr=attack_lr)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [steps * 3 // 8, steps * 5 // 8, steps * 7 // 8], 0.1)
    for _ in range(steps):
        total = torch.func.vmap(cost)(pixels, updates, labels).sum()  # each attack's pixels see only its cost
        optimizer.zero_grad()
        pixels.grad, = torch.autograd.grad(total, [pixels])
        pixels.grad.sign_()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            pixels.clamp_(0, 1)
    return pixels.detach()
