"""Every method on the GPU against the same method on the CPU cores: one epoch each, side by side.

    python benchmarks/bench_gpu.py [--rounds 3] [--methods regular,split,federated] [--models lenet5,vgg-small]

For each model and method, a table of the median training-pass time with ``--device cuda`` and with ``--device cpu``
(the GPU hidden, all cores), and their ratio, pair by pair in each round. Needs a CUDA device; without one it
says so and stops.
"""

from common import MPIRUN, PYTHON, bench_parser, compare
from models import MODELS

METHODS = {
    "regular": [PYTHON, "regular_learning.py"],
    "split": [MPIRUN, "-n", "11", PYTHON, "split_learning.py", "--leakage-images", "0"],
    "sflv2": [MPIRUN, "-n", "11", PYTHON, "split_learning.py", "--variant", "sflv2", "--leakage-images", "0"],
    "federated": [PYTHON, "federated_learning.py"],
    "federated-mpi": [MPIRUN, "-n", "11", PYTHON, "federated_learning.py"],
    "sync_sgd": [MPIRUN, "-n", "11", PYTHON, "sync_sgd.py"],
}


def main():
    parser = bench_parser(__doc__.splitlines()[0], cores=False)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from: " + ", ".join(METHODS))
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated, from: " + ", ".join(MODELS) + " (vgg-small is where a GPU should pay)")
    args = parser.parse_args()
    import torch
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: nothing to compare")
    failed = []
    for model in args.models.split(","):
        for method in args.methods.split(","):
            command = [*METHODS[method], "--test-subset", "1000", "--model", model]
            print(f"\n== {model}, {method}", flush=True)
            try:
                compare({"cpu": ["env", "CUDA_VISIBLE_DEVICES=", *command, "--device", "cpu"],
                         "cuda": [*command, "--device", "cuda"]}, args.rounds, "cpu")
            except SystemExit as failure:  # a GPU's time is short: one method's failure must not cost the others
                print(failure, flush=True)
                failed.append(f"{model}, {method}")
    if failed:
        raise SystemExit("failed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
