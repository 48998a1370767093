"""The train and evaluate steps every method shares, and their scores; and the tensor math of split learning's
two roles apart from any message (the roles, the decision map's timing and the benchmarks call it)."""

import contextlib

import torch
import torch.nn.functional as F


def train_step(model, optimizer, x, y):
    """One SGD step on the batch ``x``, ``y``; returns its mean training loss, still on the device."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_epoch(model, optimizer, batch_iter, work=None):
    """One pass of SGD over ``batch_iter``; returns the mean training loss per example. ``work`` (work.py), if
    given, counts the batches' FLOPs.

    The batch losses are read once, at the end: reading each at once would make the host wait for a GPU after
    every step, where it could be queueing the next. Summed in order, in double precision, as floats are.
    """
    model.train()
    losses, sizes = [], []
    for x, y in batch_iter:
        with work.batch(len(y)) if work else contextlib.nullcontext():
            losses.append(train_step(model, optimizer, x, y))
        sizes.append(len(y))
    values = torch.stack(losses).tolist() if losses else []
    return sum(value * size for value, size in zip(values, sizes)) / max(sum(sizes), 1)


class Scores:
    """Test loss and accuracy summed over batches, overall and per class."""

    def __init__(self, num_classes=10):
        self.loss_sum, self.examples = 0.0, 0
        self.correct, self.counts = torch.zeros(num_classes), torch.zeros(num_classes)

    def add(self, logits, target):
        self.loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
        self.examples += len(target)
        hits = (logits.argmax(1) == target).float().cpu()
        target = target.cpu()
        self.correct.index_add_(0, target, hits)
        self.counts.index_add_(0, target, torch.ones_like(hits))

    def merge(self, sums):
        """Add the ``sums()`` of another Scores, as sent over the wire."""
        self.loss_sum += sums["loss_sum"]
        self.examples += sums["examples"]
        self.correct += torch.tensor(sums["correct"])
        self.counts += torch.tensor(sums["counts"])

    def sums(self):
        return {"loss_sum": self.loss_sum, "examples": self.examples, "correct": self.correct.tolist(),
                "counts": self.counts.tolist()}

    def result(self):
        """``test_loss``, ``test_acc`` and ``test_class_acc`` (one fraction per class; None for a class the
        test set lacks): the keys every method records."""
        return {"test_loss": self.loss_sum / self.examples, "test_acc": self.correct.sum().item() / self.examples,
                "test_class_acc": [c / n if n else None for c, n in zip(self.correct.tolist(), self.counts.tolist())]}


@torch.no_grad()
def evaluate(model, x, y, batch_size):
    """``test_loss``, ``test_acc`` (in [0, 1]) and ``test_class_acc`` of ``model`` (any callable) on ``x``, ``y``."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    scores = Scores()
    for start in range(0, len(y), batch_size):
        scores.add(model(x[start:start + batch_size]), y[start:start + batch_size])
    return scores.result()


def sgd(params, args):
    return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


# ------------------------------------------------------------------------------ split learning's two roles

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
