"""The tensor math of split learning's two roles, apart from any message: what the server does with a batch's
activations, and how a client finishes its backward pass from the gradient at the cut. The roles
(split_roles, split_variants), the decision map's timing and the benchmarks all call these."""

import torch.nn.functional as F


def server_step(server_part, optimizer, smashed, labels):
    """The server's step on one batch: the activations at the cut (``smashed``, a leaf tensor that is given a
    gradient) through ``server_part``, the loss on ``labels``, backward, and one step of ``optimizer``. Returns
    the loss (still on the device) and the gradient at the cut, which goes back to the client."""
    smashed.requires_grad_()
    loss = F.cross_entropy(server_part(smashed), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), smashed.grad


def client_backward(optimizer, smashed, cut_grad, penalty=None):
    """A client's backward pass from the gradient at the cut, ``cut_grad``, into the activations it sent,
    ``smashed`` (after the gradient of its own ``penalty``, such as NoPeek's, if any), then one step of
    ``optimizer``; the caller cleared the gradients before its forward pass."""
    if penalty is not None:
        penalty.backward(retain_graph=True)
    smashed.backward(cut_grad)
    optimizer.step()
