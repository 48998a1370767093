"""Reconstruction attacks by an honest-but-curious split-learning server on cut-layer activations.

    python attack.py results/split.pt              # writes results/split-attack.json, results/reconstructions.png
    python attack.py results/split.pt --help

The server holds the activations a client sent for test images it never saw (the victims: the first
--victims images of the test set) and tries to rebuild the images (He et al. 2019, "Model inversion attacks
against collaborative inference"):

* white-box inversion (rMLE): the server knows the client part's weights, and optimises an image so that the
  client part maps it to the activations, with a total-variation prior. It chooses the prior's weight
  (--tv-weights) and its number of steps by inverting up to 100 of its own auxiliary images (the held-out tenth
  below), never the victims;
* learned decoder (black-box): the server has auxiliary images of the same kind and query access to the client
  part (test images 5000 onwards, disjoint from the victims); it trains a decoder from activations to images on
  those pairs and applies it to the victims' activations. It chooses the decoder's width (--decoder-widths) and
  its number of passes on a tenth of its own pairs held out, never on the victims.

If the run added noise to the activations (--noise-std), the server sees noisy activations, in both attacks.
Scores per attack, on images in [0, 1]: MSE, PSNR, SSIM (pytorch-msssim), and the accuracy that a LeNet-5
trained by regular learning gets on the reconstructions (does the attacker see the class?). Each attack also runs
against a blind client part (all weights zero: the same activations for every image), its baseline: an attack no
better than its baseline, image by image, is marked failed ("attack failed", not "defended").
"""


import argparse
import json
import sys
from pathlib import Path

from splitlab.privacy.attack import AUX_START, LOOK_EVERY, add_judge_args, attack, figure
from splitlab.training.cli import nonnegative_float_list, positive_int, positive_int_list, run_main


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("parts", help="a split-learning run's saved parts, <results-dir>/<run-name>.pt")
    add("--client", type=positive_int, default=None, help="whose client part to attack (1..N); default: the last")
    add("--cut-layer", type=int, default=None,
        help="the cut layer the file must come from (default: whatever its configuration says)")
    add("--victims", type=positive_int, default=100, help="test images attacked (the first N)")
    add("--aux", type=positive_int, default=5000, help=f"auxiliary images for the decoder (test images {AUX_START}+)")
    add("--decoder-epochs", type=positive_int, default=20,
        help="the most passes of decoder training over the auxiliary pairs; the attacker keeps the pass that "
             "rebuilds its own held-out tenth of them best")
    add("--decoder-widths", type=positive_int_list, default="32",
        help="the decoder's widths (channels) to choose from, comma-separated, on that held-out tenth")
    add("--inversion-steps", type=positive_int, default=600,
        help="the most optimisation steps of the white-box inversion; the attacker keeps the step (of every "
             f"{LOOK_EVERY}) that rebuilds its own held-out auxiliary images best")
    add("--tv-weights", type=nonnegative_float_list, default="0.01",
        help="weights of the inversion's total-variation prior to choose from, comma-separated, on those images")
    add_judge_args(parser)
    add("--figure", default=None, help="the figure's path (default: reconstructions.png beside the .pt file)")
    add("--out", default=None, help="the scores' path (default: <run-name>-attack.json beside the .pt file)")
    return parser


def main():
    args = build_parser().parse_args()
    result, original, reconstructions = attack(args)
    parts = Path(args.parts)
    out = Path(args.out) if args.out else parts.with_name(f"{parts.stem}-attack.json")
    out.write_text(json.dumps(result, indent=2))
    figure(args.figure or parts.with_name("reconstructions.png"), original, reconstructions)
    for name, s in result["attacks"].items():
        print(f"{name:<10} SSIM {s['ssim']:.3f} (baseline {s['baseline_ssim']:.3f}"
              f"{': attack failed' if s['failed'] else ''})  PSNR {s['psnr_db']:.1f} dB  MSE {s['mse']:.4f}  "
              f"classifier accuracy {s['classifier_accuracy']:.1%}", file=sys.stderr)
    print(f"results: {out}  ({result['time_s']:.0f} s)")


if __name__ == "__main__":
    run_main(main)
