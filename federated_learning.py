"""Federated averaging (FedAvg, McMahan et al. 2017): clients train the global model on their own shards and
the aggregator replaces it with the average of their models, weighted by shard size.

    python federated_learning.py                  # 10 clients simulated in one process; results/federated.json
    mpirun -n 11 python federated_learning.py     # rank 0 the aggregator, ranks 1..10 the clients
    python federated_learning.py --help

Both modes give the same numbers for the same seed and flags. One round (every sampled client
--local-epochs passes over its shard) is one epoch in the results. Unlike the report, local SGD keeps
momentum and weight decay; each client's momentum buffers start from zero every round by default
(--client-momentum keep carries them over to the client's next round). --server-momentum adds FedAvgM.
"""

import runtime  # first: process settings that must precede torch

import numpy as np
import torch

from data import batches, load_fashion_mnist, partition, shuffle_generator
from models import flat_parameters, lenet5, load_flat_parameters
from training import Results, add_client_args, common_parser, evaluate, fit, fraction, launched_by_mpi, \
    nonnegative_float, positive_float, positive_int, resolve_device, run_main, set_lr, sgd, train_epoch


def build_parser():
    parser = common_parser("federated", __doc__.splitlines()[0])
    add_client_args(parser, "number of clients in one-process mode (under MPI: the world size minus one)")
    add = parser.add_argument
    add("--local-epochs", type=positive_int, default=1, help="passes over its shard each client makes per round")
    add("--fraction", type=fraction, default=1.0, help="share of the clients sampled each round (seeded)")
    add("--client-momentum", choices=["reset", "keep"], default="reset",
        help="reset: local momentum starts from zero every round; keep: each client keeps its buffers")
    add("--server-momentum", type=nonnegative_float, default=0.0,
        help="FedAvgM: momentum of the aggregator's update (0 = plain FedAvg)")
    add("--server-lr", type=positive_float, default=1.0,
        help="the aggregator moves the global model this many times the clients' mean update "
             "(1 = plain FedAvg: the global model becomes the average)")
    return parser


# --------------------------------------------------------------------------------------- the method itself

def weighted_average(vectors, weights):
    """Average of equally long 1-D tensors, weighted (a lone vector comes back unchanged)."""
    weights = torch.tensor(weights, dtype=torch.float64)
    shares = (weights / weights.sum()).to(vectors[0].dtype)
    return sum(share * vector for share, vector in zip(shares, vectors))


def sample_clients(num_clients, share, seed, round_number):
    """Client indices (sorted) taking part in ``round_number``: ``share`` of them, at least one, seeded."""
    count = max(1, round(share * num_clients))
    rng = np.random.default_rng([seed, round_number])
    return sorted(rng.choice(num_clients, size=count, replace=False).tolist())


class Aggregator:
    """Holds the global model; folds the clients' models into it each round."""

    def __init__(self, initial, server_momentum=0.0, server_lr=1.0):
        self.params = initial.clone()
        self.server_momentum, self.server_lr = server_momentum, server_lr
        self.velocity = torch.zeros_like(initial)

    def aggregate(self, client_params, num_examples):
        average = weighted_average(client_params, num_examples)
        if self.server_momentum == 0 and self.server_lr == 1:
            self.params = average
        else:  # FedAvgM/FedOpt: treat (global - average) as a gradient and take a momentum step on it
            self.velocity = self.server_momentum * self.velocity + (self.params - average)
            self.params = self.params - self.server_lr * self.velocity

    def evaluate(self, model, x_test, y_test, batch_size):
        load_flat_parameters(model, self.params)
        test_loss, test_acc = evaluate(model, x_test, y_test, batch_size)
        return {"test_loss": test_loss, "test_acc": test_acc}


class Client:
    """One data holder: its shard, its shuffling and its local optimizer (whose momentum buffers it keeps
    between rounds with --client-momentum keep)."""

    def __init__(self, index, x, y, model, args):
        self.x, self.y, self.model, self.args = x, y, model, args
        self.shuffle = shuffle_generator(args.seed, index)
        # Made once: torch's first optimizer in a process costs seconds of imports (measured 1.8 s), which
        # would otherwise land in every MPI client's first round.
        self.optimizer = sgd(model.parameters(), args)

    def train(self, global_params, lr):
        """Start from the global model, train locally; return (parameters, mean training loss)."""
        load_flat_parameters(self.model, global_params)
        if self.args.client_momentum == "reset":
            self.optimizer.state.clear()
        set_lr(self.optimizer, lr)
        for _ in range(self.args.local_epochs):
            loss = train_epoch(self.model, self.optimizer,
                               batches(self.x, self.y, self.args.batch_size, self.shuffle))
        return flat_parameters(self.model), loss


def round_record(losses, sizes, model_bytes, sampled):
    """The per-round keys both modes write: loss, who took part, and the model traffic a deployment has."""
    return {"train_loss": float(np.average(losses, weights=sizes)), "clients": len(sampled),
            "model_bytes_down": model_bytes * len(sampled), "model_bytes_up": model_bytes * len(sampled)}


# ---------------------------------------------------------------------------------------------- two modes

def run_one_process(args, device):
    x_train, y_train, x_test, y_test = (t.to(device) for t in
                                        load_fashion_mnist(args.data_dir, args.train_subset, args.test_subset))
    shards = partition(y_train.cpu(), args.clients, args.partition, args.alpha, args.seed)
    model = lenet5(args.seed).to(device)  # one model, which each client in turn trains
    clients = [Client(i, x_train[s.to(device)], y_train[s.to(device)], model, args) for i, s in enumerate(shards)]
    aggregator = Aggregator(flat_parameters(model), args.server_momentum, args.server_lr)
    model_bytes = aggregator.params.numel() * aggregator.params.element_size()

    def train_one_round(round_number, lr):
        sampled = sample_clients(len(clients), args.fraction, args.seed, round_number)
        trained = [clients[i].train(aggregator.params, lr) for i in sampled]
        sizes = [len(clients[i].y) for i in sampled]
        aggregator.aggregate([params for params, _ in trained], sizes)
        return round_record([loss for _, loss in trained], sizes, model_bytes, sampled)

    results = Results(args, "federated", device)
    fit(args, results, train_one_round, lambda: aggregator.evaluate(model, x_test, y_test, args.test_batch_size))
    print(f"results: {results.path}")


def run_mpi(args, device):
    from mpi4py import MPI

    from mpi_utils import Channel, check_world, collective, cores, mpi_description, use_threads
    from protocol import Tag

    comm = MPI.COMM_WORLD
    aggregator_rank = 0

    def setup():
        check_world(comm, servers=1, least_clients=1, command="mpirun -n 11 python federated_learning.py")
        x_train, y_train, x_test, y_test = load_fashion_mnist(args.data_dir, args.train_subset, args.test_subset)
        if comm.Get_rank() == aggregator_rank:  # no training images: the aggregator only evaluates
            return x_test, y_test
        shard = partition(y_train, comm.Get_size() - 1, args.partition, args.alpha, args.seed)[comm.Get_rank() - 1]
        return x_train[shard], y_train[shard]  # a client's own data, nobody else's

    data = collective(comm, setup)
    runtime.release_freed_memory()  # the rest of the data set, which this rank does not keep
    num_clients = comm.Get_size() - 1
    args.clients = num_clients
    channel = Channel(comm)
    model = lenet5(args.seed)
    num_params = sum(p.numel() for p in model.parameters())

    # Clients train at the same time, but no more of them than there are cores: more would only take turns on
    # the cores and evict each other from the caches. Each uses the cores left for it. (Measured together with
    # making each client's optimizer at set-up: a round went from 1.70x to 0.77x of regular learning's epoch.)
    window = min(num_clients, cores())
    if channel.rank != aggregator_rank:
        use_threads(cores() // window)
        client = Client(channel.rank - 1, *data, model, args)
        global_params = torch.empty(num_params)
        channel.barrier()  # every rank set up: the first round's time is training alone
        while True:
            tag = Tag(channel.probe(aggregator_rank).Get_tag())
            command = channel.recv_obj(aggregator_rank, tag)
            if tag == Tag.STOP:
                channel.flush()
                return
            channel.recv(global_params.numpy(), aggregator_rank, Tag.GLOBAL_MODEL)
            params, loss = client.train(global_params, command["lr"])
            channel.send(params.numpy(), aggregator_rank, Tag.UPDATE)
            channel.send_obj({"num_examples": len(client.y), "train_loss": loss, **channel.traffic()},
                             aggregator_rank, Tag.UPDATE_INFO)

    use_threads(cores())  # the aggregator evaluates while the clients wait
    aggregator = Aggregator(flat_parameters(model), args.server_momentum, args.server_lr)
    model_bytes = aggregator.params.numel() * aggregator.params.element_size()
    update = torch.empty(num_params)
    channel.barrier()

    def train_one_round(round_number, lr):
        sampled = [i + 1 for i in sample_clients(num_clients, args.fraction, args.seed, round_number)]
        to_start = list(sampled)

        def start_next():
            rank = to_start.pop(0)
            channel.send_obj({"round": round_number, "lr": lr}, rank, Tag.ROUND)
            channel.send(aggregator.params.numpy(), rank, Tag.GLOBAL_MODEL)

        for _ in range(min(window, len(sampled))):
            start_next()
        params, infos = {}, {}
        for _ in sampled:  # in whatever order they finish...
            rank = channel.probe(tag=Tag.UPDATE).Get_source()
            channel.recv(update.numpy(), rank, Tag.UPDATE)
            params[rank] = update.clone()
            infos[rank] = channel.recv_obj(rank, Tag.UPDATE_INFO)
            if to_start:
                start_next()
        sizes = [infos[rank]["num_examples"] for rank in sampled]
        aggregator.aggregate([params[rank] for rank in sampled], sizes)  # ...but summed in client order
        record = round_record([infos[rank]["train_loss"] for rank in sampled], sizes, model_bytes, sampled)
        traffic = channel.traffic()
        for key in traffic:
            traffic[key] += sum(info[key] for info in infos.values())
        return {**record, **traffic}

    results = Results(args, "federated", device, world_size=comm.Get_size(), mpi=mpi_description())
    x_test, y_test = data
    fit(args, results, train_one_round, lambda: aggregator.evaluate(model, x_test, y_test, args.test_batch_size))
    for rank in range(1, comm.Get_size()):
        channel.send_obj({}, rank, Tag.STOP)
    channel.flush()
    print(f"results: {results.path}")


def main():
    if launched_by_mpi():
        from mpi4py import MPI

        from mpi_utils import parse_args, run_mpi_main
        args = parse_args(build_parser(), MPI.COMM_WORLD)
        run_mpi_main(lambda: run_mpi(args, torch.device("cpu")))
    else:
        args = build_parser().parse_args()
        run_one_process(args, resolve_device(args.device))


if __name__ == "__main__":
    run_main(main)
