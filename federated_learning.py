"""Federated averaging (FedAvg, McMahan et al. 2017): clients train the global model on their own shards and
the aggregator replaces it with the average of their models, weighted by shard size.

    python federated_learning.py                  # 10 clients simulated in one process; results/federated.json
    mpirun -n 11 python federated_learning.py     # rank 0 the aggregator, ranks 1..10 the clients
    mpirun -n 5 python federated_learning.py --clients 1000   # 1,000 clients on 4 ranks (placement.py)
    python federated_learning.py --help

Both modes give the same numbers for the same seed and flags. One round (every sampled client
--local-epochs passes over its shard) is one epoch in the results. Unlike the report, local SGD keeps
momentum and weight decay; each client's momentum buffers start from zero every round by default
(--client-momentum keep carries them over to the client's next round). --server-momentum adds FedAvgM.
"""

from splitlab.methods.federated import ONE_PROCESS_CLIENTS, AggregatorRank, ClientRank, run_one_process
from splitlab.methods.mpi_method import load_clients, run_method, run_mpi_main
from splitlab.training.cli import (
    add_client_args,
    add_mpi_args,
    common_parser,
    compress_spec,
    fraction,
    launched_by_mpi,
    nonnegative_float,
    positive_float,
    positive_int,
    resolve_device,
    run_main,
)


def build_parser():
    parser = common_parser("federated", __doc__.splitlines()[0])
    add_client_args(parser)
    add_mpi_args(parser, one_process_clients=ONE_PROCESS_CLIENTS)
    add = parser.add_argument
    add("--local-epochs", type=positive_int, default=1, help="passes over its shard each client makes per round")
    add("--fraction", type=fraction, default=1.0, help="share of the clients sampled each round (seeded)")
    add("--client-momentum", choices=["reset", "keep"], default="reset",
        help="reset: local momentum starts from zero every round; keep: each client keeps its buffers")
    add("--clip-update", type=nonnegative_float, default=0.0, metavar="C",
        help="a defence (DP-FedAvg): each client scales its update down to an L2 norm of at most C before sending "
             "it (0 = off)")
    add("--update-noise", type=nonnegative_float, default=0.0, metavar="Z",
        help="with --clip-update: Gaussian noise of standard deviation Z x C added to each coordinate of the update")
    add("--server-momentum", type=nonnegative_float, default=0.0,
        help="FedAvgM: momentum of the aggregator's update (0 = plain FedAvg)")
    add("--server-lr", type=positive_float, default=1.0,
        help="the aggregator moves the global model this many times the clients' mean update "
             "(1 = plain FedAvg: the global model becomes the average)")
    add("--compress", type=compress_spec(learned=False), default="none", metavar="SPEC",
        help="how each client's update travels: none (its whole model as float32, as FedAvg sends it); int8 or "
             "int4 (its update, the change from the global model, each parameter tensor quantised to 255 or 15 "
             "equal steps between its least and greatest value, nearest rounding); topk:F (each tensor's fraction F "
             "of changes largest in magnitude, exact, with their positions). splitlab/training/codec.py")
    add("--compress-down", type=compress_spec(learned=False), default="none", metavar="SPEC",
        help="how the global model travels down to the clients, coded the same way (each parameter tensor's "
             "values, not a change: a client may not hold the last model); the clients train from the decoded model")
    parse = parser.parse_args

    def parse_args(*args, **kwargs):  # the one rule between two flags, checked wherever the flags are parsed
        parsed = parse(*args, **kwargs)
        if parsed.update_noise and not parsed.clip_update:
            parser.error("--update-noise needs --clip-update: the noise is a multiple of the clipping norm")
        return parsed
    parser.parse_args = parse_args
    return parser


def main():
    if launched_by_mpi():
        run_mpi_main(lambda: run_method(build_parser(), "federated", "mpirun -n 11 python federated_learning.py",
                                        load_clients, lambda args: (AggregatorRank, ClientRank)))
    else:
        parser = build_parser()
        args = parser.parse_args()
        run_one_process(parser, args, resolve_device(args.device))


if __name__ == "__main__":
    run_main(main)
