"""The train and evaluate steps every method shares, and their scores; and the tensor math of split learning's
two roles apart from any message (the roles, the decision map's timing and the benchmarks call it)."""

import contextlib

import torch
import torch.nn.functional as F

from splitlab.training.eager import SGD


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
    """Loss and accuracy summed over evaluation batches, overall and per class. The first ``validation`` examples
    added are the held-out validation images (data.hold_out), scored apart from the test images after them."""

    def __init__(self, validation=0, num_classes=10):
        self.validation, self.seen = validation, 0
        self.groups = {group: {"loss_sum": 0.0, "examples": 0, "correct": torch.zeros(num_classes),
                               "counts": torch.zeros(num_classes)} for group in ("val", "test")}

    def add(self, logits, target):
        split = min(max(self.validation - self.seen, 0), len(target))  # this batch's validation rows come first
        self.seen += len(target)
        for group, rows in (("val", slice(0, split)), ("test", slice(split, None))):
            if rows.start != rows.stop:
                self._add(self.groups[group], logits[rows], target[rows])

    @staticmethod
    def _add(sums, logits, target):
        sums["loss_sum"] += F.cross_entropy(logits, target, reduction="sum").item()
        sums["examples"] += len(target)
        hits = (logits.argmax(1) == target).float().cpu()
        target = target.cpu()
        sums["correct"].index_add_(0, target, hits)
        sums["counts"].index_add_(0, target, torch.ones_like(hits))

    def merge(self, sums):
        """Add the ``sums()`` of another Scores, as sent over the wire."""
        for group, mine in self.groups.items():
            theirs = sums[group]
            mine["loss_sum"] += theirs["loss_sum"]
            mine["examples"] += theirs["examples"]
            mine["correct"] += torch.tensor(theirs["correct"])
            mine["counts"] += torch.tensor(theirs["counts"])

    def sums(self):
        return {group: {"loss_sum": sums["loss_sum"], "examples": sums["examples"],
                        "correct": sums["correct"].tolist(), "counts": sums["counts"].tolist()}
                for group, sums in self.groups.items()}

    def result(self):
        """``test_loss``, ``test_acc`` and ``test_class_acc`` (one fraction per class; None for a class the
        test set lacks): the keys every method records; with a validation set, ``val_loss`` and ``val_acc`` too
        (alone where only validation images were scored: an evaluation within an epoch)."""
        test, result = self.groups["test"], {}
        if test["examples"]:
            result = {"test_loss": test["loss_sum"] / test["examples"],
                      "test_acc": test["correct"].sum().item() / test["examples"],
                      "test_class_acc": [c / n if n else None for c, n in zip(test["correct"].tolist(),
                                                                              test["counts"].tolist())]}
        if self.validation:
            val = self.groups["val"]
            result.update(val_loss=val["loss_sum"] / val["examples"],
                          val_acc=val["correct"].sum().item() / val["examples"])
        return result


@torch.no_grad()
def evaluate(model, x, y, batch_size, validation=0):
    """``test_loss``, ``test_acc`` (in [0, 1]) and ``test_class_acc`` of ``model`` (any callable) on ``x``, ``y``;
    with ``validation``, its first that many examples are the validation set (``val_loss``, ``val_acc``)."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    scores = Scores(validation)
    for start in range(0, len(y), batch_size):
        scores.add(model(x[start:start + batch_size]), y[start:start + batch_size])
    return scores.result()


def sgd(params, args):
    return SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


# ------------------------------------------------------------------------------ split learning's two roles

def server_step(server_part, optimizer, smashed, labels, cut_grad=True):
    """The server's step on one batch: the activations at the cut (``smashed``, a leaf tensor that is given a
    gradient) through ``server_part``, the loss on ``labels``, backward, and one step of ``optimizer``. Returns
    the loss (still on the device) and the gradient at the cut, which goes back to the client (None without
    ``cut_grad``: local-loss split learning sends none, and its server does not compute it)."""
    smashed.requires_grad_(cut_grad)
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
