"""Split learning (splitNN) over MPI: rank 0 is the server, ranks 1..R hold the clients (one each by default).

    mpirun -n 11 python split_learning.py                      # the report's experiment (10 clients, vanilla)
    mpirun -n 11 python split_learning.py --variant sflv2      # SplitFed V2; also sflv1, u-shaped
    mpirun -n 5 python split_learning.py --clients 1000        # 1,000 clients on 4 client ranks (placement.py)
    mpirun -n 11 python split_learning.py --help

Vanilla: each client holds LeNet-5 up to the cut layer and its own shard of the training data; the server holds
the rest. Clients take turns; in its turn a client sends the activations at the cut ("smashed" data) batch by
batch, and the server, which has the labels, sends back the gradient at the cut. The roles are in
split_roles.py, the variants in split_variants.py; every message is laid out in protocol.py.
"""


from data import load_shards
from models import check_split
from splitlab.errors import InputError
from splitlab.methods.mpi_method import run_method, run_mpi_main
from splitlab.methods.local_loss import LocalLossServer
from splitlab.methods.split_roles import Server
from splitlab.methods.split_variants import SplitFedV1Server, SplitFedV2Server, UShapedServer
from splitlab.net.protocol import SERVER
from splitlab.training.cli import (
    add_client_args,
    add_mpi_args,
    common_parser,
    compress_spec,
    nonnegative_float,
    nonnegative_int,
    positive_int,
)

SERVERS = {"vanilla": Server, "sflv1": SplitFedV1Server, "sflv2": SplitFedV2Server, "u-shaped": UShapedServer,
           "local-loss": LocalLossServer}


def build_parser():
    parser = common_parser("split", "Split learning over MPI: rank 0 is the server, the other ranks hold the "
                                    "clients.")
    add_client_args(parser)
    add_mpi_args(parser)
    add = parser.add_argument
    add("--variant", choices=list(SERVERS), default="vanilla",
        help="vanilla: clients take turns (the report); sflv1/sflv2: SplitFed V1/V2, clients in parallel, client "
             "parts averaged every epoch; u-shaped: the client also holds the last layers and keeps the labels; "
             "local-loss: each client trains its part on its own loss (an auxiliary head) and gets no gradient "
             "back, so it never waits for the server (local_loss.py)")
    add("--compress", type=compress_spec(), default="none", metavar="SPEC",
        help="how the activations at the cut travel (both cuts of u-shaped): none (float32); int8 or int4 (each "
             "example's values quantised to 255 or 15 equal steps between its least and greatest value, which "
             "travel as float32; nearest rounding); topk:F (each example's fraction F of values largest in "
             "magnitude, exact, with their positions; the rest zero); bottleneck:C (learned: a 1x1 convolution "
             "down to C channels ends the client part, one back up begins the server part), alone or before a "
             "codec (bottleneck:2+int4). Training passes the gradient straight through the codec "
             "(splitlab/training/codec.py)")
    add("--compress-grad", type=compress_spec(learned=False), default=None, metavar="SPEC",
        help="how the gradients sent back to the clients travel: none, int8, int4 or topk:F, as for --compress; "
             "default: --compress's codec")
    add("--cut-layer", type=positive_int, default=1,
        help="cut after this block of the model: lenet5 1 (clients send 6x14x14) or 2 (16x5x5); lenet5-report 1 "
             "(6x12x12) or 2 (16x4x4); vgg-small 1 (16x14x14), 2 (32x7x7) or 3 (64x3x3)")
    add("--head-layers", type=positive_int, default=1,
        help="u-shaped: fully connected layers the client keeps at the end (lenet5: 1, it receives 84 values per "
             "example, or 2, 120)")
    add("--client-weights", choices=["keep", "pass"], default="keep",
        help="vanilla and u-shaped: keep: each client trains its own client part (the report); pass: each "
             "client starts its turn from the previous client's weights (original splitNN)")
    add("--nopeek", type=nonnegative_float, default=0.0, metavar="W",
        help="NoPeek defence: each client adds W x the distance correlation between a batch's images and its "
             "activations to its loss (0: none)")
    add("--noise-std", type=nonnegative_float, default=0.0, metavar="S",
        help="noise defence: clients add Gaussian noise of this standard deviation to every activation they "
             "send, in training and in evaluation (the server sees activations at inference too)")
    add("--grad-noise-std", type=nonnegative_float, default=0.0, metavar="S",
        help="u-shaped: label defence: clients add Gaussian noise of this standard deviation to the gradient they "
             "return to the server (whose label attacks are scored each epoch: label_leakage.py)")
    add("--leakage-images", type=nonnegative_int, default=2000,
        help="the first N test images on which each evaluation measures the leakage (distance correlation "
             "between images and the activations sent); 0: not measured")
    add("--client-eval", choices=["end", "epoch"], default="end",
        help="when to evaluate the parts of the evaluation sample (each epoch evaluates the last client's): "
             "once at the end, or after every epoch (10 test passes an epoch with 10 clients)")
    add("--eval-clients", type=positive_int, default=10, metavar="M",
        help="client parts evaluated on the test set at the end (and every epoch with --client-eval epoch): "
             "every client's when there are at most M, else a seeded sample of M that includes the last "
             "client's (a test pass each; the sample is in the results, 'evaluated_clients')")
    add("--evals-per-epoch", type=positive_int, default=1, metavar="N",
        help="vanilla and u-shaped: also evaluate on the validation set (needs --validation) N-1 times within each "
             "epoch, after the turns that end each N-th of its batches, with the part of the client whose turn "
             "just ended (recorded under within_epoch; the decision map's time to a target reads them). The "
             "training is unchanged (with --noise-std, these evaluations draw from the clients' noise too)")
    return parser


def load(args, rank, placement):
    """The server gets no images: the test labels (none in U-shaped split learning), how many test images
    there are and the size of each shard; a client rank its own clients' shards and the test set."""
    mine = placement.clients_on(rank) if rank != SERVER else ()
    shard_sizes, shards, (x_test, y_test) = load_shards(args, placement.num_clients, mine)
    if rank == SERVER:
        return None if args.variant == "u-shaped" else y_test, len(y_test), shard_sizes
    return shards, (x_test, y_test)


def roles(args):
    """The server and client-rank classes of ``args.variant``."""
    server = SERVERS[args.variant]
    return server, server.rank_class


def check(args, world_size):
    try:
        check_split(args.model, args.cut_layer, args.head_layers if args.variant == "u-shaped" else None)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if args.variant == "local-loss" and args.compress_grad is not None:
        raise InputError("--compress-grad: local-loss split learning sends no gradient to its clients; leave the "
                         "flag out (accepted forms: none, int8, int4, topk:F)")
    if args.grad_noise_std and args.variant != "u-shaped":
        raise InputError("--grad-noise-std protects the labels a U-shaped client keeps; the other variants send "
                         "their labels: use it with --variant u-shaped")
    if args.variant in ("sflv1", "sflv2") and args.client_weights == "pass":
        raise InputError(f"--client-weights pass is for clients that take turns; {args.variant} averages the "
                         "client parts instead: leave the flag out")
    if args.evals_per_epoch > 1 and args.variant in ("sflv1", "sflv2"):
        raise InputError(f"--evals-per-epoch is for clients that take turns; {args.variant}'s clients train at once, "
                         "and it has a model only once it averages their parts at the end of the epoch")
    if args.evals_per_epoch > 1 and not args.validation:
        raise InputError("--evals-per-epoch evaluates on the validation set within an epoch: hold one out with "
                         "--validation N (for example 5000)")


def main():
    run_method(build_parser(), "split", "mpirun -n 11 python split_learning.py", load, roles, check)


if __name__ == "__main__":
    run_mpi_main(main)
