"""Large-batch synchronous SGD with backup workers (Chen et al. 2016, "Revisiting distributed synchronous SGD").

    mpirun -n 11 python sync_sgd.py                      # 10 workers, all awaited (N = 10, b = 0)
    mpirun -n 11 python sync_sgd.py --backup-workers 2   # 10 workers, the first 8 gradients of a step used
    mpirun -n 5 python sync_sgd.py --backup-workers 1 --straggler-delay-ms 20
    mpirun -n 5 python sync_sgd.py --clients 100         # 100 workers on 4 ranks (placement.py)

Rank 0 is the parameter server, the other ranks hold the N+b workers (one a rank by default), each with its own
shard. A rank computes its workers' gradients one after another, so with backup workers which gradients come
first depends on the placement; with every gradient awaited the run does not. Each step the server sends
the parameters to every worker; each computes a gradient on its next mini-batch and sends it back; the server
averages the first N to arrive, takes one SGD step, and goes on. A gradient that arrives for an old step is
dropped and counted, never applied. An epoch is one pass of every worker over its shard: as many steps as a
shard has batches, each step taking one batch from each worker (as in the other methods, where an epoch is
every data holder one pass over its data). With b backup workers the server applies N of the N + b gradients
of a step, so an epoch uses N / (N + b) of the images it computes on: the price of not waiting for stragglers.
"""


from splitlab.errors import InputError
from splitlab.methods.mpi_method import load_clients, run_method, run_mpi_main
from splitlab.methods.sync_sgd import ParameterServer, WorkerRank
from splitlab.training.cli import add_client_args, add_mpi_args, common_parser, nonnegative_float, nonnegative_int


def build_parser():
    parser = common_parser("sync_sgd", __doc__.splitlines()[0])
    add_client_args(parser)
    add_mpi_args(parser)
    add = parser.add_argument
    add("--backup-workers", type=nonnegative_int, default=0,
        help="b: workers whose gradients are not awaited each step (N = --clients - b are)")
    add("--lr-scaling", choices=["linear", "none"], default="linear",
        help="linear: learning rate x N for the N-times larger batch, reached by a linear warm-up; none: --lr")
    add("--warmup-epochs", type=nonnegative_float, default=1.0, help="epochs of warm-up with --lr-scaling linear")
    add("--straggler-delay-ms", type=nonnegative_float, default=0.0,
        help="mean of a seeded exponential delay added to every worker step, to model stragglers")
    return parser


def check(args, world_size):
    if args.backup_workers >= args.clients:  # run_method has set --clients' default by now
        raise InputError(f"--backup-workers {args.backup_workers} leaves no gradient to wait for with "
                         f"{args.clients} workers; use fewer backup workers or more workers (--clients)")


def main():
    run_method(build_parser(), "sync_sgd", "mpirun -n 11 python sync_sgd.py", load_clients,
               lambda args: (ParameterServer, WorkerRank), check)


if __name__ == "__main__":
    run_mpi_main(main)
