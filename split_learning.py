"""Split learning (splitNN) over MPI: rank 0 is the server, ranks 1..N the clients (N = world size - 1).

    mpirun -n 11 python split_learning.py     # the report's experiment (10 clients); writes results/split.json
    mpirun -n 11 python split_learning.py --help

Each client holds LeNet-5 up to the cut layer and its own shard of the training data; the server holds the
rest. Clients take turns; in its turn a client runs through its shard in mini-batches: forward to the cut,
send the activations ("smashed" data) and labels, the server finishes the forward pass, takes the loss, steps
its layers and sends back the gradient at the cut, and the client finishes the backward pass and steps its
layers. The messages are laid out in protocol.py.
"""

import runtime  # first: process settings that must precede torch

import numpy as np
import torch
import torch.nn.functional as F
from mpi4py import MPI

from data import batches, load_fashion_mnist, num_batches, partition, shuffle_generator
from models import CUT_SHAPES, flatten, split_lenet5, unflatten_into
from mpi_utils import Channel, ProtocolError, check_world, collective, cores, mpi_description, parse_args, \
    run_mpi_main, use_threads
from protocol import Tag
from training import Results, add_client_args, common_parser, fit, progress, resolve_device, set_lr, sgd

SERVER = 0


def build_parser():
    parser = common_parser("split", "Split learning over MPI: rank 0 is the server, ranks 1..N the clients.")
    add_client_args(parser)
    parser.add_argument("--cut-layer", type=int, choices=sorted(CUT_SHAPES), default=1,
                        help="cut after this conv block: 1 (clients send 6x14x14) or 2 (16x5x5)")
    parser.add_argument("--client-weights", choices=["keep", "pass"], default="keep",
                        help="keep: each client trains its own client part (the report); pass: each client "
                             "starts its turn from the previous client's weights (original splitNN)")
    parser.add_argument("--client-eval", choices=["end", "epoch"], default="end",
                        help="when to evaluate every client's part (each epoch evaluates the last client's): "
                             "once at the end, or after every epoch (10 test passes an epoch with 10 clients)")
    return parser


class Server:
    """Holds the layers after the cut; drives the clients' turns and evaluates through their parts."""

    def __init__(self, channel, server_part, args, y_test, shard_sizes, device):
        self.channel, self.server_part, self.args = channel, server_part, args
        self.optimizer = sgd(server_part.parameters(), args)
        self.y_test, self.shard_sizes, self.device = y_test.to(device), shard_sizes, device
        self.clients = list(range(1, len(shard_sizes) + 1))
        self.cut_shape = CUT_SHAPES[args.cut_layer]
        self.per_example = int(np.prod(self.cut_shape))
        most = max(args.batch_size, args.test_batch_size)
        self.smashed_buf = torch.empty((most, *self.cut_shape))  # receive buffer, allocated once
        self.holder = None  # in pass mode: the client whose part is the newest
        self.received = {}  # what the server has been sent: (tag, shape per example) -> messages

    def _expect(self, status, client, tags):
        """Check that a probed message comes from ``client`` with one of ``tags``; return its tag."""
        source, tag = status.Get_source(), status.Get_tag()
        if source != client or tag not in tags:
            raise ProtocolError(f"server expected {[Tag(t).name for t in tags]} from client {client}, "
                                f"got tag {tag} from rank {source}")
        return Tag(tag)

    def _recv_smashed(self, status, client, most):
        """Receive one batch of cut-layer activations, checking that it is one and not, say, raw images."""
        count = status.Get_count(MPI.FLOAT)
        batch = count // self.per_example
        if count % self.per_example or not 0 < batch <= most:
            raise ProtocolError(f"client {client} sent {count} floats: not a batch of at most {most} "
                                f"cut-layer activations of shape {self.cut_shape}")
        smashed = self.smashed_buf[:batch]
        self.channel.recv(smashed.numpy(), client, Tag.SMASHED)
        self._note(Tag.SMASHED, self.cut_shape)
        return smashed.to(self.device)

    def _note(self, tag, shape):
        key = (tag.name, tuple(shape))
        self.received[key] = self.received.get(key, 0) + 1

    def _finish_turn(self, client):
        report = self.channel.recv_obj(client, Tag.TURN_DONE)
        self._note(Tag.TURN_DONE, ())
        return report

    def _recv_labels(self, client):
        """The labels of ``client``'s whole turn, in the order its batches will come (one message a turn)."""
        labels = torch.empty(self.shard_sizes[client - 1], dtype=torch.int64)
        self.channel.recv(labels.numpy(), client, Tag.LABELS)
        self._note(Tag.LABELS, ())
        return labels.to(self.device)

    def _train_batch(self, status, client, labels):
        """Server side of one batch: finish forward, loss, backward, step; send back the cut gradient."""
        smashed = self._recv_smashed(status, client, self.args.batch_size).requires_grad_()
        labels = labels[:len(smashed)]
        loss = F.cross_entropy(self.server_part(smashed), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.channel.send(smashed.grad.cpu().numpy(), client, Tag.CUT_GRAD)
        return loss.item() * len(labels), len(labels)

    def train_epoch(self, epoch, lr):
        """Every client's turn, in order; returns the mean training loss and the epoch's traffic."""
        self.server_part.train()
        set_lr(self.optimizer, lr)
        loss_sum, seen, client_traffic = 0.0, 0, []
        total = sum(num_batches(n, self.args.batch_size) for n in self.shard_sizes)
        with progress(self.args, None, total, f"epoch {epoch}") as bar:
            for client in self.clients:
                receive_from = None
                if self.args.client_weights == "pass" and self.holder not in (None, client):
                    receive_from = self.holder
                    self.channel.send_obj({"to": client}, receive_from, Tag.HAND_OVER)
                self.channel.send_obj({"epoch": epoch, "lr": lr, "receive_from": receive_from}, client, Tag.TURN)
                labels, turn_seen = self._recv_labels(client), 0
                while True:
                    status = self.channel.probe()
                    if self._expect(status, client, (Tag.SMASHED, Tag.TURN_DONE)) == Tag.TURN_DONE:
                        break
                    batch_loss, batch_size = self._train_batch(status, client, labels[turn_seen:])
                    loss_sum, seen, turn_seen = loss_sum + batch_loss, seen + batch_size, turn_seen + batch_size
                    bar.update()
                if turn_seen != len(labels):
                    raise ProtocolError(f"client {client} sent {turn_seen} activations for {len(labels)} labels")
                client_traffic.append(self._finish_turn(client))
                self.holder = client
        return {"train_loss": loss_sum / seen, **self._traffic(client_traffic)}

    def _traffic(self, client_reports):
        """Bytes sent and received by every rank since the last call."""
        total = self.channel.traffic()
        for report in client_reports:
            for key in total:
                total[key] += report[key]
        return total

    @torch.no_grad()
    def evaluate_client(self, client):
        """Test loss and accuracy of ``client``'s part followed by the server part."""
        self.server_part.eval()
        self.channel.send_obj({}, client, Tag.EVALUATE)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(self.y_test), self.args.test_batch_size):
            status = self.channel.probe()
            self._expect(status, client, (Tag.SMASHED,))
            logits = self.server_part(self._recv_smashed(status, client, self.args.test_batch_size))
            target = self.y_test[start:start + len(logits)]
            loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
        return loss_sum / len(self.y_test), correct / len(self.y_test), self._finish_turn(client)

    def evaluate(self):
        """The report's measure: the last client's part; with --client-eval epoch, every client's too."""
        if self.args.client_eval == "epoch":
            return self.evaluate_all_clients()
        loss, acc, report = self.evaluate_client(self.clients[-1])
        return {"test_loss": loss, "test_acc": acc, **self._traffic([report])}

    def evaluate_all_clients(self):
        """Every client's part (the last client's last, as the report's measure), with mean and spread."""
        accuracies, reports = [], []
        for client in self.clients:
            loss, acc, report = self.evaluate_client(client)
            accuracies.append(acc)
            reports.append(report)
        return {"test_loss": loss, "test_acc": acc, "client_test_acc": accuracies,
                "client_test_acc_mean": float(np.mean(accuracies)),
                "client_test_acc_std": float(np.std(accuracies)), **self._traffic(reports)}

    def final_summary(self):
        """For the results file: every client's part evaluated, and every kind of message the server saw."""
        final = self.evaluate_all_clients()
        return {"final_client_test_acc": final["client_test_acc"],
                "final_client_test_acc_mean": final["client_test_acc_mean"],
                "final_client_test_acc_std": final["client_test_acc_std"],
                "server_received": [{"tag": tag, "shape_per_example": list(shape), "messages": count}
                                    for (tag, shape), count in sorted(self.received.items())]}

    def stop(self):
        for client in self.clients:
            self.channel.send_obj({}, client, Tag.STOP)
        self.channel.flush()


class Client:
    """Holds the layers up to the cut and one shard of the training data; obeys the server's commands."""

    def __init__(self, channel, client_part, args, x_train, y_train, x_test, device):
        self.channel, self.client_part, self.args, self.device = channel, client_part, args, device
        self.x_train, self.y_train, self.x_test = x_train.to(device), y_train, x_test.to(device)
        self.optimizer = sgd(client_part.parameters(), args)
        self.state = list(client_part.parameters())
        if args.momentum > 0:  # create the momentum buffers now, so that a passed state has a fixed size
            for p in client_part.parameters():  # (zeros give the same first step as torch's lazy buffers)
                self.optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
                self.state.append(self.optimizer.state[p]["momentum_buffer"])
        self.shuffle = shuffle_generator(args.seed, channel.rank - 1)
        self.cut_grad_buf = torch.empty((args.batch_size, *CUT_SHAPES[args.cut_layer]))

    def serve(self):
        """Wait for the server's commands until it says stop."""
        handlers = {Tag.TURN: self.take_turn, Tag.HAND_OVER: self.hand_over, Tag.EVALUATE: self.evaluate}
        while True:
            tag = Tag(self.channel.probe(SERVER).Get_tag())
            command = self.channel.recv_obj(SERVER, tag)
            if tag == Tag.STOP:
                self.channel.flush()
                return
            if tag not in handlers:
                raise ProtocolError(f"client {self.channel.rank}: unexpected command {tag.name} from the server")
            handlers[tag](**command)

    def _report(self):
        """Tell the server this turn is over, with this client's traffic since its last report."""
        self.channel.send_obj(self.channel.traffic(), SERVER, Tag.TURN_DONE)

    def take_turn(self, epoch, lr, receive_from):
        """One pass over this client's shard, batch by batch with the server."""
        set_lr(self.optimizer, lr)
        if receive_from is not None:
            flat = torch.empty(sum(t.numel() for t in self.state))
            self.channel.recv(flat.numpy(), receive_from, Tag.CLIENT_STATE)
            unflatten_into(self.state, flat)
        self.client_part.train()
        turn = list(batches(self.x_train, self.y_train, self.args.batch_size, self.shuffle))
        # All the turn's labels in one message: one hand-over less per batch than labels sent with each batch.
        self.channel.send(torch.cat([y for _, y in turn]).numpy(), SERVER, Tag.LABELS)
        for x, _ in turn:
            smashed = self.client_part(x)
            self.channel.send(smashed.detach().cpu().numpy(), SERVER, Tag.SMASHED)
            cut_grad = self.cut_grad_buf[:len(x)]
            self.channel.recv(cut_grad.numpy(), SERVER, Tag.CUT_GRAD)
            self.optimizer.zero_grad(set_to_none=True)
            smashed.backward(cut_grad.to(self.device))
            self.optimizer.step()
        self._report()

    def hand_over(self, to):
        """Pass this client's part (weights and momentum) to the client whose turn is next."""
        self.channel.send(flatten(self.state).cpu().numpy(), to, Tag.CLIENT_STATE)

    @torch.no_grad()
    def evaluate(self):
        """Send the test set through this client's part to the server, batch by batch."""
        self.client_part.eval()
        for start in range(0, len(self.x_test), self.args.test_batch_size):
            smashed = self.client_part(self.x_test[start:start + self.args.test_batch_size])
            self.channel.send(smashed.cpu().numpy(), SERVER, Tag.SMASHED)
        self._report()


def main():
    comm = MPI.COMM_WORLD
    args = parse_args(build_parser(), comm)

    def setup():
        check_world(comm, servers=1, least_clients=1, command="mpirun -n 11 python split_learning.py")
        device = resolve_device(args.device)
        x_train, y_train, x_test, y_test = load_fashion_mnist(args.data_dir, args.train_subset, args.test_subset)
        shards = partition(y_train, comm.Get_size() - 1, args.partition, args.alpha, args.seed)
        if comm.Get_rank() == SERVER:  # no images: the test labels, and the size of each client's shard
            return device, (y_test, [len(s) for s in shards])
        shard = shards[comm.Get_rank() - 1]
        return device, (x_train[shard], y_train[shard], x_test)  # a client's own data, nobody else's

    device, data = collective(comm, setup)
    runtime.release_freed_memory()  # the rest of the data set, which this rank does not keep
    client_part, server_part = (part.to(device) for part in split_lenet5(args.cut_layer, args.seed))
    channel = Channel(comm)
    use_threads(cores())  # one rank computes at a time (the others wait on their doorbells): give it every core

    if channel.rank != SERVER:
        client = Client(channel, client_part, args, *data, device)
        channel.barrier()  # every rank set up: the first epoch's time is training alone
        client.serve()
        return
    server = Server(channel, server_part, args, *data, device)
    results = Results(args, "split", device, world_size=comm.Get_size(), mpi=mpi_description())
    channel.barrier()
    fit(args, results, server.train_epoch, server.evaluate, final_info=server.final_summary)
    server.stop()
    print(f"results: {results.path}")


if __name__ == "__main__":
    run_mpi_main(main)
