"""Reconstruction attacks by an honest-but-curious FedAvg server on the updates its clients send.

    python federated_learning.py --clients 2 --epochs 3 --run-name fedavg   # writes results/fedavg.pt
    python attack_updates.py results/fedavg.pt     # writes results/fedavg-updates-attack.json and its figure

The server knows the model it sent and receives each client's model back; their difference, the update, is a
function of the client's images. It inverts it as Geiping et al. 2020 do ("Inverting Gradients": random images
moved by Adam on the sign of the cost's gradient until the update they give points the way the client's does,
cosine distance plus a total-variation prior), after reading the labels from the last layer as iDLG does (Zhao
et al. 2020): one image's label from the weights' update, a batch's label counts from the bias's. The victims
are the first --victims test images, each update made from some of them:

* one SGD step on one batch of B images (--batches): the textbook case, B = 1 the easiest;
* one local epoch of the run's own training (its batch size, learning rate, momentum and weight decay) on a
  client whose shard is the victims: the update FedAvg sends. The server simulates the client's steps on its
  candidate images; it is given the labels in the client's order (Geiping et al.'s multi-step setting, an upper
  bound on what it reads itself).

Each case runs at the first round (the run's initial model, which the server sent first) and at the last (the
run's final model). The reconstructions of each update are matched to its originals (by SSIM, one each) before
scoring: MSE, PSNR, SSIM (pytorch-msssim), the share recognisable (SSIM over 0.5), the accuracy that a LeNet-5
trained by regular learning gets on them, and the labels read right. Each attack also runs on the update of the
model with all weights zero, its baseline: an attack no better than it, image by image, is marked failed.
"""

import argparse
import json
import sys
from pathlib import Path

from splitlab.privacy.attack import add_judge_args, figure
from splitlab.privacy.update_attack import attack_updates
from splitlab.runs import update_attack_files
from splitlab.training.cli import nonnegative_float, positive_int, positive_int_list, run_main


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("model_file", help="a FedAvg run's final global model, <results-dir>/<run-name>.pt")
    add("--victims", type=positive_int, default=100, help="test images attacked (the first N)")
    add("--batches", type=positive_int_list, default="1,8,64",
        help="batch sizes of the one-step updates, comma-separated")
    add("--steps", type=positive_int, default=1000, help="optimisation steps of each inversion")
    add("--tv-weight", type=nonnegative_float, default=0.01, help="weight of the total-variation prior")
    add_judge_args(parser)
    add("--figure", default=None, help="the figure's path (default: <run-name>-updates-reconstructions.png)")
    add("--out", default=None, help="the scores' path (default: <run-name>-updates-attack.json beside the .pt file)")
    return parser


def main():
    args = build_parser().parse_args()
    result, original, reconstructions = attack_updates(args)
    model_file = Path(args.model_file)
    scores, reconstructions_figure = update_attack_files(model_file.stem)
    out = Path(args.out) if args.out else model_file.with_name(scores)
    out.write_text(json.dumps(result, indent=2))
    figure(args.figure or model_file.with_name(reconstructions_figure), original, reconstructions)
    for round_name, found in result["rounds"].items():
        for name, s in found["attacks"].items():
            labels = "given" if s["labels_read_right"] is None else f"{s['labels_read_right']:.0%} read right"
            print(f"{round_name} round, {name:<26} SSIM {s['ssim']:.3f} (baseline {s['baseline_ssim']:.3f}"
                  f"{': attack failed' if s['failed'] else ''})  recognisable {s['recognisable']:.0%}  "
                  f"labels {labels}", file=sys.stderr)
    print(f"results: {out}  ({result['time_s']:.0f} s)")


if __name__ == "__main__":
    run_main(main)
