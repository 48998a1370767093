"""The reconstruction attacks of attack.py (its docstring says what each does), and their scores."""

import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim
from torch import nn

from data import MEAN, STD, batches, load_fashion_mnist, shuffle_generator
from models import cut_shape, lenet5, split
from splitlab.errors import InputError
from splitlab.training import codec as codecs
from splitlab.training.cli import common_parser, nonnegative_int, positive_int
from splitlab.training.steps import evaluate, sgd, train_epoch

AUX_START = 5000  # the attacker's auxiliary images: test images from here on (the victims come first)


def _one_line(exc, most=200):
    text = " ".join(str(exc).split())
    return text if len(text) <= most else text[:most] + "..."


def load_saved(path, what, read):
    """``read(saved)`` of the file a run saved at ``path`` (``what``: "a FedAvg run's global model", say);
    InputError naming the file when it is missing or ``read`` finds it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; {what} is written to <results-dir>/<run-name>.pt")
    try:
        return read(torch.load(path, weights_only=True))
    except Exception as exc:  # torch.load raises many kinds (unpickling, zip, version): all mean "not ours"
        raise InputError(f"{path} is not {what} ({type(exc).__name__}: {_one_line(exc)})") from None


def load_client_part(path, client, cut_layer):
    """The attacked client part and the run's configuration; InputError naming the file when it won't do."""
    path = Path(path)
    config, parts = load_saved(path, "a split-learning run's client parts",
                               lambda saved: (saved["config"], saved["client_parts"]))
    if cut_layer is not None and config.get("cut_layer") != cut_layer:
        raise InputError(f"{path} comes from cut layer {config.get('cut_layer')}, not {cut_layer}")
    client = client or len(parts)
    if not 1 <= client <= len(parts):
        raise InputError(f"{path} has client parts 1..{len(parts)}, not {client}")
    model = config.setdefault("model", "lenet5")  # files written before --model held LeNet-5
    try:
        front = split(model, config["cut_layer"], bottleneck=codecs.parse(config.get("compress", "none"))[0])[0]
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    try:
        front.load_state_dict(parts[client - 1][0])
    except RuntimeError as exc:
        raise InputError(f"{path}: its client part does not fit {model} at cut layer {config['cut_layer']} "
                         f"({_one_line(exc)})") from None
    return front.eval().requires_grad_(False), config, client


def to_unit(x):
    """Standardised images back to pixels in [0, 1]."""
    return (x * STD + MEAN).clamp(0, 1)


def from_unit(u):
    return (u - MEAN) / STD


def observe(front, x, noise_std, generator, compress="none"):
    """What the server receives for images ``x``: the client part's activations, with the run's noise, through the
    run's codec (--compress; decoded, as the server computes on them)."""
    with torch.no_grad():
        z = front(x)
        z = z + noise_std * torch.randn(z.shape, generator=generator) if noise_std else z
        coded = codecs.codec(codecs.parse(compress)[1])
        return coded.decode(coded.encode(z), z.shape) if coded.name != "none" else z


def total_variation(u):
    return (u[..., 1:, :] - u[..., :-1, :]).abs().mean() + (u[..., :, 1:] - u[..., :, :-1]).abs().mean()


LOOK_EVERY = 100  # the white-box attacker's steps between looks at how well it rebuilds its own held-out images


def white_box_inversion(front, z, steps, tv_weight):
    """rMLE: images in [0, 1] (a sigmoid keeps them there) whose activations match ``z``, with a TV prior. Yields
    (step, images) every ``LOOK_EVERY`` steps and after the last."""
    logits = torch.zeros(len(z), 1, 28, 28, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for step in range(1, steps + 1):
        u = torch.sigmoid(logits)
        loss = F.mse_loss(front(from_unit(u)), z) + tv_weight * total_variation(u)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % LOOK_EVERY == 0 or step == steps:
            yield step, torch.sigmoid(logits).detach()


def chosen_inversion(front, z_held, u_held, z_victims, tv_weights, most_steps):
    """White-box inversion with the care of a careful attacker, who knows the client part and so can invert its
    own images: for each TV weight it inverts its held-out auxiliary images for up to ``most_steps`` steps,
    scoring SSIM at every look; the best (weight, step) inverts the victims, which are never looked at. Returns
    the reconstructions and the choice, with every weight's held-out SSIM look by look
    (``inversion_held_out_curve``: how the attack grows with its budget)."""
    best, curve = None, {}
    for tv_weight in tv_weights:
        for step, u in white_box_inversion(front, z_held, most_steps, tv_weight):
            score = ssim(u, u_held, data_range=1.0).item()
            curve.setdefault(f"{tv_weight:g}", []).append(score)
            if best is None or score > best[0]:
                best = score, tv_weight, step
    score, tv_weight, chosen = best
    rebuilt = next(u for step, u in white_box_inversion(front, z_victims, most_steps, tv_weight) if step == chosen)
    return rebuilt, {"inversion_tv_weight": tv_weight, "inversion_steps": chosen, "inversion_held_out_ssim": score,
                     "inversion_held_out_curve": curve}


def decoder(cut_shape, width=32):
    """Activations at the cut -> a 28x28 image in [0, 1]: a convolution of ``width`` channels at the cut's
    resolution, upsampling to 14x14 where the cut is smaller, one transposed convolution to 28x28, a last
    convolution."""
    channels, size = cut_shape[0], cut_shape[1]
    return nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
                         *([nn.Upsample(size=(14, 14), mode="bilinear")] if size != 14 else []),
                         nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(width // 2, 1, 3, padding=1), nn.Sigmoid())


HELD_OUT = 0.1  # the share of the attacker's auxiliary pairs it keeps to choose its attacks by
INVERTED_HELD_OUT = 100  # the most of those the white-box attacker inverts to choose by (each costs the victims' time)


def learned_decoder(z_aux, u_aux, z_victims, cut_shape, widths, most_epochs, seed):
    """He et al.'s black-box attack: train a decoder on auxiliary (activation, image) pairs, apply it. The attacker
    chooses the decoder as a careful one would, on its own images: a decoder of each width trains on 90 % of the
    pairs for up to ``most_epochs`` passes, scored by SSIM on the other 10 % after each; the best (width, pass)
    rebuilds the victims. Returns the reconstructions and the choice, with every (width, pass)'s held-out SSIM
    (``decoder_held_out_curve``: how the attack grows with its budget)."""
    held = max(1, int(len(z_aux) * HELD_OUT))
    best, curve = None, {}
    for width in widths:
        torch.manual_seed(seed)
        net = decoder(cut_shape, width)
        optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
        shuffle = shuffle_generator(seed, 999)
        for epoch in range(1, most_epochs + 1):
            for z, u in batches(z_aux[held:], u_aux[held:], 64, shuffle):
                out = net(z)  # trained for what it is scored by: pixel error and structure
                loss = F.mse_loss(out, u) + 0.1 * (1 - ssim(out, u, data_range=1.0))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                score = ssim(net(z_aux[:held]), u_aux[:held], data_range=1.0).item()
                curve.setdefault(str(width), []).append(score)
                if best is None or score > best[0]:
                    best = score, width, epoch, net(z_victims)
    score, width, epoch, rebuilt = best
    return rebuilt, {"decoder_width": width, "decoder_epochs": epoch, "decoder_held_out_ssim": score,
                     "decoder_held_out_curve": curve}


def blind(front):
    """The client part with every weight zero: the same activations for every image. What an attack rebuilds from
    them is what it knows without the victims' activations (the mean image, a grey field): its baseline."""
    zeroed = copy.deepcopy(front)
    with torch.no_grad():
        for p in zeroed.parameters():
            p.zero_()
    return zeroed


def against_baseline(reconstructed, baseline, original):
    """Whether an attack did better than its baseline, image by image: the mean gain in SSIM and its standard
    error; ``failed`` when the gain is not above twice that (or not above 0)."""
    baseline_ssim = ssim(baseline, original, data_range=1.0, size_average=False)
    gain = ssim(reconstructed, original, data_range=1.0, size_average=False) - baseline_ssim
    mean, error = gain.mean().item(), gain.std().item() / len(gain) ** 0.5 if len(gain) > 1 else 0.0
    return {"baseline_ssim": baseline_ssim.mean().item(), "ssim_over_baseline": mean, "ssim_over_baseline_se": error,
            "failed": bool(mean <= max(2 * error, 0.0))}


def scores(reconstructed, original, labels, classifier):
    """MSE, PSNR and SSIM on images in [0, 1] (and each image's SSIM), the share of images recognisable (SSIM
    over 0.5), and the classifier's accuracy on the reconstructions."""
    mse = F.mse_loss(reconstructed, original, reduction="none").mean((1, 2, 3))
    per_image_ssim = ssim(reconstructed, original, data_range=1.0, size_average=False)
    accuracy = evaluate(classifier, from_unit(reconstructed), labels, 1000)["test_acc"]
    return {"mse": mse.mean().item(), "psnr_db": (10 * torch.log10(1 / mse.clamp(min=1e-10))).mean().item(),
            "ssim": per_image_ssim.mean().item(), "ssim_min": per_image_ssim.min().item(),
            "recognisable": (per_image_ssim > 0.5).float().mean().item(), "ssim_per_image": per_image_ssim.tolist(),
            "classifier_accuracy": accuracy}


def add_judge_args(parser):
    """The flags both attack scripts share: the judging classifier, the attacks' seed, the data folder."""
    add = parser.add_argument
    add("--classifier-epochs", type=positive_int, default=2,
        help="epochs of regular learning for the LeNet-5 that judges the reconstructions")
    add("--classifier-images", type=positive_int, default=60000,
        help="training images of that LeNet-5 (the first N; fewer make a quicker, weaker judge)")
    add("--seed", type=nonnegative_int, default=0, help="seed of the attacks' random choices")
    add("--data-dir", default=None, help="Fashion-MNIST folder (default: searched for, as the training scripts do)")


def train_classifier(x_train, y_train, epochs, seed):
    """A LeNet-5 trained by regular learning with the suite's defaults: the judge of the reconstructions."""
    model = lenet5(seed)
    optimizer = sgd(model.parameters(), common_parser("regular", "").parse_args([]))  # the suite's defaults
    shuffle = shuffle_generator(seed)
    for _ in range(epochs):
        train_epoch(model, optimizer, batches(x_train, y_train, 64, shuffle))
    return model.eval()


def figure(path, original, reconstructions, columns=10):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [("original", original), *reconstructions.items()]
    columns = min(columns, len(original))  # fewer victims than columns: a column each
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 1.1, len(rows) * 1.25), squeeze=False)
    for row, (name, images) in zip(axes, rows):
        for i, ax in enumerate(row):
            ax.imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_attacks(front, victims, aux, noise_std, cut, args, compress="none"):
    """Both attacks on what ``front`` sends for the victims (with the run's noise and codec): images by attack, and
    each attack's choice (the decoder's width and passes, the inversion's TV weight and steps)."""
    generator = torch.Generator().manual_seed(args.seed)
    z_victims = observe(front, victims, noise_std, generator, compress)
    z_aux = observe(front, aux, noise_std, generator, compress)
    decoded, decoder_choice = learned_decoder(z_aux, to_unit(aux), z_victims, cut, args.decoder_widths,
                                              args.decoder_epochs, args.seed)
    held = min(max(1, int(len(aux) * HELD_OUT)), INVERTED_HELD_OUT)
    inverted, inversion_choice = chosen_inversion(front, z_aux[:held], to_unit(aux[:held]), z_victims,
                                                  args.tv_weights, args.inversion_steps)
    return {"white-box": inverted, "decoder": decoded}, {"white-box": inversion_choice, "decoder": decoder_choice}


def attack(args):
    """Both attacks on the victims of ``args`` (attack.py's flags), and each against its baseline (the same attack
    on a blind part, :func:`blind`): the results' record, the victims in [0, 1] and the reconstructions by row of
    the figure."""
    start = time.perf_counter()
    front, config, client = load_client_part(args.parts, args.client, args.cut_layer)
    x_train, y_train, x_test, y_test = load_fashion_mnist(args.data_dir, train_subset=args.classifier_images)
    if args.victims > AUX_START or AUX_START + args.aux > len(y_test):
        raise InputError(f"--victims must be at most {AUX_START} and --aux at most {len(y_test) - AUX_START}")
    noise_std = config.get("noise_std", 0.0)
    victims, labels = x_test[:args.victims], y_test[:args.victims]
    aux = x_test[AUX_START:AUX_START + args.aux]
    compress = config.get("compress", "none")
    original = to_unit(victims)
    cut = cut_shape(config["model"], config["cut_layer"], codecs.parse(compress)[0])

    print(f"attacking client {client}'s part ({config['model']}, cut layer {config['cut_layer']}, variant "
          f"{config.get('variant', 'vanilla')}, noise {noise_std}, NoPeek {config.get('nopeek', 0.0)})",
          file=sys.stderr)
    reconstructions, choices = run_attacks(front, victims, aux, noise_std, cut, args, compress)
    baselines, _ = run_attacks(blind(front), victims, aux, noise_std, cut, args, compress)
    classifier = train_classifier(x_train, y_train, args.classifier_epochs, args.seed)
    result = {"parts": str(args.parts), "client": client, "config": config, "compress": compress,
              "victims": f"test images 0..{args.victims - 1}",
              "auxiliary": f"test images {AUX_START}..{AUX_START + args.aux - 1}", "attack_settings": vars(args),
              "classifier_accuracy_on_originals": evaluate(classifier, victims, labels, 1000)["test_acc"],
              "baseline": "the same attack on the client part with all weights zero (the same activations for "
                          "every image); failed: no better than it, image by image (SSIM gain <= 2 standard errors)",
              "attacks": {name: {**scores(images, original, labels, classifier),
                                 **against_baseline(images, baselines[name], original)}
                          for name, images in reconstructions.items()}}
    for name, choice in choices.items():
        result["attacks"][name].update(choice)
    succeeded = [name for name, s in result["attacks"].items() if not s["failed"]]
    result["strongest"] = max(succeeded, key=lambda name: result["attacks"][name]["ssim"], default=None)
    result["time_s"] = time.perf_counter() - start
    rows = {}
    for name, images in reconstructions.items():
        rows[f"{name}{' (attack failed)' if result['attacks'][name]['failed'] else ''}"] = images
        rows[f"{name}, baseline"] = baselines[name]
    return result, original, rows
