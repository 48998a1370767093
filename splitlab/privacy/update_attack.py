"""The attacks of attack_updates.py (its docstring says what each does): a FedAvg server inverts the updates its
clients send, at the first round and at the last, and each attack is scored against its blind baseline."""

import sys
import time

import torch
from pytorch_msssim import ssim
from scipy.optimize import linear_sum_assignment

from data import load_fashion_mnist
from models import build
from splitlab.errors import InputError
from splitlab.privacy.attack import (
    AUX_START,
    against_baseline,
    blind,
    load_saved,
    scores,
    to_unit,
    train_classifier,
)
from splitlab.privacy.defences import clip_and_noise
from splitlab.privacy.gradient_inversion import idlg_label, invert, label_counts, local_update, mean_softmax
from splitlab.runs import local_training_name
from splitlab.training.steps import evaluate


def load_global_model(path):
    """The final global model of a FedAvg run (federated_learning.py writes <results-dir>/<run-name>.pt) and its
    configuration; InputError naming the file when it won't do."""
    def read(saved):
        config = saved["config"]
        model = build(config["model"], config["seed"])
        model.load_state_dict(saved["global_model"])
        return model, config
    model, config = load_saved(path, "a FedAvg run's global model", read)
    return model.requires_grad_(False), config


def cases(batch_sizes, config, victims):
    """What the server receives, by name: one SGD step on batches of each size (the textbook case), and the run's
    own local training (its local epochs, batch size, learning rate, momentum, weight decay) on a client whose
    shard is the victims (the update FedAvg sends)."""
    one_step = {f"one step, B={b}": {"batch": b, "training": {"lr": config["lr"]}} for b in batch_sizes}
    epochs = config.get("local_epochs", 1)
    local = {"batch": victims, "training": {"lr": config["lr"], "batch_size": config["batch_size"], "epochs": epochs,
                                            "momentum": config["momentum"], "weight_decay": config["weight_decay"]}}
    return {**one_step, local_training_name(epochs, config["batch_size"]): local}


def read_labels(model, update, batch, training, own_images):
    """The labels the server reads from one update (iDLG for one image, counts from the last bias for a batch);
    None where it cannot (several local steps: the attacker is given the true labels, Geiping et al.'s setting)."""
    if len(training) > 1:
        return None
    if batch == 1:
        return torch.tensor([idlg_label(update)])
    counts = label_counts(update, batch, mean_softmax(model, own_images), training["lr"])
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


def matched(rebuilt, original):
    """The rebuilt images of one update in the order of the originals they best match (by SSIM, one each): the
    server's images come in no particular order."""
    pairs = ssim(rebuilt.repeat_interleave(len(original), 0), original.repeat(len(rebuilt), 1, 1, 1),
                 data_range=1.0, size_average=False).view(len(rebuilt), len(original))
    rows, columns = linear_sum_assignment(pairs.numpy(), maximize=True)
    return rebuilt[rows[columns.argsort()]]


def attack_case(model, victims, labels, case, own_images, args):
    """Every update of one case on ``model`` inverted: the victims in batches of ``case['batch']``, each batch
    one client's update; updates of one size run side by side. The reconstructions in the victims' order, and
    the share of labels the server read right (None where it was given them)."""
    rebuilt, wrong = torch.empty(len(victims), 1, 28, 28), 0
    training = case["training"]
    starts = range(0, len(victims), case["batch"])
    for size in sorted({min(case["batch"], len(victims) - s) for s in starts}):
        group = [s for s in starts if min(case["batch"], len(victims) - s) == size]
        updates, read = [], []
        for s in group:
            update = defended(local_update(model, victims[s:s + size], labels[s:s + size], **training), args, s)
            guess = read_labels(model, update, size, training, own_images)
            read.append(labels[s:s + size] if guess is None else guess)
            wrong += 0 if guess is None else _wrong(guess, labels[s:s + size])
            updates.append(update)
        images = invert(model, [torch.stack(t) for t in zip(*updates)], torch.stack(read), args.steps,
                        tv_weight=args.tv_weight, seed=args.seed, **training)
        for s, found in zip(group, images):
            rebuilt[s:s + size] = matched(found, to_unit(victims[s:s + size]))
    return rebuilt, None if len(training) > 1 else 1 - wrong / len(victims)


def defended(update, args, start):
    """The update as the client sends it: clipped and noised where the run used that defence (--clip-update,
    --update-noise; defences.clip_and_noise), each update with noise of its own."""
    if not args.clip_update:
        return update
    flat = clip_and_noise(torch.cat([u.flatten() for u in update]), args.clip_update, args.update_noise,
                          torch.Generator().manual_seed(args.seed * 100003 + start))
    return [piece.view_as(u) for piece, u in zip(flat.split([u.numel() for u in update]), update)]


def _wrong(guess, truth):
    """Images whose label the guess misses: the counts of each class apart."""
    return int((torch.bincount(truth, minlength=10) - torch.bincount(guess, minlength=10)).clamp(min=0).sum())


def attack_updates(args):
    """Every case at the first round (the run's initial model) and the last (its final model), each against its
    blind baseline: the results' record, the victims in [0, 1] and the reconstructions by row of the figure."""
    start = time.perf_counter()
    last, config = load_global_model(args.model_file)
    args.clip_update, args.update_noise = config.get("clip_update", 0.0), config.get("update_noise", 0.0)
    x_train, y_train, x_test, y_test = load_fashion_mnist(args.data_dir)
    if args.victims > AUX_START:
        raise InputError(f"--victims must be at most {AUX_START}")
    victims, labels = x_test[:args.victims], y_test[:args.victims]
    own_images = x_test[AUX_START:AUX_START + 1000]  # the attacker's own, for its estimate of the softmax
    original = to_unit(victims)
    classifier = train_classifier(x_train[:args.classifier_images], y_train[:args.classifier_images],
                                  args.classifier_epochs, args.seed)
    rounds = {"first": build(config["model"], config["seed"]).requires_grad_(False), "last": last}
    parameter_bytes = sum(p.numel() * p.element_size() for p in last.parameters())
    result = {"model_file": str(args.model_file), "config": config, "victims": f"test images 0..{args.victims - 1}",
              "attack_settings": vars(args), "update_bytes": parameter_bytes,
              "classifier_accuracy_on_originals": evaluate(classifier, victims, labels, 1000)["test_acc"],
              "baseline": "the same attack on the update of the model with all weights zero; failed: no better than "
                          "it, image by image (SSIM gain <= 2 standard errors)", "rounds": {}}
    rows = {}
    for round_name, model in rounds.items():
        result["rounds"][round_name] = {"test_acc": evaluate(model, x_test, y_test, 1000)["test_acc"], "attacks": {}}
        for name, case in cases(args.batches, config, args.victims).items():
            print(f"{round_name} round: {name}", file=sys.stderr, flush=True)
            rebuilt, labels_right = attack_case(model, victims, labels, case, own_images, args)
            baseline, _ = attack_case(blind(model), victims, labels, case, own_images, args)
            updates = -(-args.victims // case["batch"])
            record = {**scores(rebuilt, original, labels, classifier), **against_baseline(rebuilt, baseline, original),
                      "labels_read_right": labels_right, "updates": updates,
                      "bytes_seen": updates * parameter_bytes}
            result["rounds"][round_name]["attacks"][name] = record
            rows[f"{round_name} round, {name}{' (attack failed)' if record['failed'] else ''}"] = rebuilt
        rows[f"{round_name} round, baseline ({name})"] = baseline
    result["time_s"] = time.perf_counter() - start
    return result, original, rows

