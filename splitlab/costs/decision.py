"""Which method reaches a target test accuracy first, for a number of data holders and a network link.

    python decision.py                              # the runs of make scale and make decision: results/decision.png
    python decision.py --target 0.85 --latency 20ms --out results/decision.png

Time to the target = the epochs a method took to reach it (measured: the runs of make scale and make decision,
IID shards) x its epoch time over the link (a deployment model, below). Vanilla split learning's epochs are
counted in tenths where its runs were evaluated after the turns that end each tenth (--evals-per-epoch 10);
SplitFed V2's and FedAvg's in whole epochs (rounds): they have a model only once they average. Where a method did
not reach the target in the epochs it ran, its time is only known to exceed (epochs run) x (epoch time): it cannot
win where another method's time is shorter than that, and the cell is left undecided where it might.

The deployment model: the server and every data holder on a machine of its own, computing as one core of the
machine where the roles' batches were timed (one thread; timed once, ``python decision.py --time-roles``, and kept
in results/role_times.json, so that the same runs always draw the same map), every machine with a link of the
given bandwidth and latency in each direction; a message takes size / bandwidth on its sender's link and arrives
``latency`` after its last byte (as ``LINK=`` emulates, splitlab.net.link.Link). Per epoch (one round for FedAvg),
with M batches in all, m the largest client's batches (IID: every client's; on skewed shards the slowest client,
whom the methods whose clients work at once wait for), K clients, smashed/grad a batch's activations (with
labels) and their gradients:

    vanilla split   M (client forward + smashed + latency + server step + grad + latency + client backward)
                    + K x 2 latency (each client's turn begun and ended: clients take turns)
    SplitFed V2     the longest of: the server's steps (M server steps), its link in (M smashed) or out (M grad),
                    one client's own chain (m round trips as vanilla's), then the client parts averaged
                    (K parts in and K out through the server's link); clients work at once, the server one
                    batch at a time (a bottleneck bound: it assumes the server never waits once work is queued)
    FedAvg          2S model transfers on the server's link + 2 latency + m x (a whole-model step), S the
                    clients sampled (--fraction of K, at least one): the S models leave together and share the
                    server's link out, so all arrive after S transfers; the clients train at once; their S
                    answers share its link in (over the kernel's TCP the sends go side by side whatever order
                    they are posted in: docs/performance.md, "Across hosts")

Evaluation is left out (the experimenter's measurement, not the method's). The bytes each formula puts on the
links are traffic.py's closed forms (tests/test_decision.py).
"""


import datetime
import functools
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models import build, cut_shape, split
from splitlab.costs.traffic import FLOAT, LABEL, sampled_count
from splitlab.errors import InputError
from splitlab.runs import finished_runs, parse_run_name, same_partition, watched_acc
from splitlab.training.steps import client_backward, server_step

BANDWIDTHS = np.logspace(6, 10, 41)  # 1 Mbit/s to 10 Gbit/s
CLIENTS = np.unique(np.round(np.logspace(1, 3, 31)).astype(int))  # 10 to 1,000


# ------------------------------------------------------------------------------------ compute, timed here

def role_seconds(model, cut, batch=64, repeats=20):
    """Seconds of one training batch of each role on one thread of this machine, ``{role: {"least", "median",
    "most"}}`` over ``repeats`` (the map reads the least, as timeit advises: other work on the machine only adds
    to a time): ``client_forward``, ``client_backward`` (with its SGD step), ``server`` (forward, backward, step)
    and ``whole`` (the whole network's forward, backward and step, FedAvg's client)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        client, server = split(model, cut, seed=0)
        whole = build(model, seed=0)
        images, labels = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
        optimisers = {part: torch.optim.SGD(part.parameters(), lr=0.01, momentum=0.9)
                      for part in (client, server, whole)}
        times = {"client_forward": [], "client_backward": [], "server": [], "whole": []}
        for _ in range(repeats + 2):  # the first two warm up
            start = time.perf_counter()
            smashed = client(images)
            forwarded = time.perf_counter()
            _, cut_grad = server_step(server, optimisers[server], smashed.detach(), labels)
            served = time.perf_counter()
            optimisers[client].zero_grad()
            client_backward(optimisers[client], smashed, cut_grad)
            done = time.perf_counter()
            optimisers[whole].zero_grad()
            F.cross_entropy(whole(images), labels).backward()
            optimisers[whole].step()
            for key, seconds in zip(times, (forwarded - start, done - served, served - forwarded,
                                            time.perf_counter() - done)):
                times[key].append(seconds)
        return {key: {"least": min(values[2:]), "median": statistics.median(values[2:]), "most": max(values[2:])}
                for key, values in times.items()}
    finally:
        torch.set_num_threads(threads)


def this_machine():
    """What a time measured here is a claim about: the processor, its CPUs, the host, torch, the date."""
    try:
        processor = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        processor = platform.processor() or platform.machine()
    return {"processor": processor, "cpus": os.cpu_count(), "host": platform.node(), "torch": torch.__version__,
            "date": datetime.date.today().isoformat()}


def time_roles(path, models_cuts, batch=64, repeats=20):
    """Time every ``(model, cut)`` of ``models_cuts`` (role_seconds) and write them into the role-times file at
    ``path`` (JSON: ``machine``, ``batch``, ``repeats`` and ``times[model][cut][role]``), replacing all it held."""
    times = {}
    for model, cut in sorted(models_cuts):
        times.setdefault(model, {})[str(cut)] = role_seconds(model, cut, batch, repeats)
    Path(path).write_text(json.dumps({"machine": this_machine(), "batch": batch, "repeats": repeats,
                                      "times": times}, indent=1) + "\n")


def time_other_batch(path, models_cuts, batch, repeats=20):
    """Add the times of a batch of ``batch`` images of every ``(model, cut)`` of ``models_cuts`` to the role-times
    file at ``path``, under ``times_at_batch[batch]`` with the machine and date (for runs of another batch size
    than the file's own); a batch size already there is kept, so that the map drawn from it stays the same."""
    saved = json.loads(Path(path).read_text())
    if batch == saved["batch"] or str(batch) in saved.get("times_at_batch", {}):
        return
    times = {}
    for model, cut in sorted(models_cuts):
        times.setdefault(model, {})[str(cut)] = role_seconds(model, cut, batch, repeats)
    saved.setdefault("times_at_batch", {})[str(batch)] = {"machine": this_machine(), "repeats": repeats,
                                                         "times": times}
    Path(path).write_text(json.dumps(saved, indent=1) + "\n")


def read_role_times(path, model, cuts):
    """``{cut: {role: least seconds, "batch": the batch size timed}}`` of ``model`` at ``cuts`` from the role-times
    file at ``path``, and under ``(cut, batch)`` the same for every other batch size the file holds
    (time_other_batch); and the machine they were timed on. InputError naming what is missing and the command
    that times it."""
    try:
        saved = json.loads(Path(path).read_text())
        compute = {cut: {**{role: spread["least"] for role, spread in saved["times"][model][str(cut)].items()},
                         "batch": saved["batch"]} for cut in cuts}
        for batch, other in saved.get("times_at_batch", {}).items():
            for cut in cuts:
                if str(cut) in other["times"].get(model, {}):
                    compute[cut, int(batch)] = {**{role: spread["least"] for role, spread
                                                   in other["times"][model][str(cut)].items()}, "batch": int(batch)}
        return compute, saved["machine"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"no batch times for {model} at cuts {sorted(cuts)} in {path} ({type(exc).__name__}: "
                         f"{exc}); time them with 'python decision.py --time-roles --role-times {path}'") from None


# ---------------------------------------------------------------------------- an epoch over the link

def epoch_seconds(method, clients, link, compute, model, cut=1, n=60000, batch=64, local_epochs=1, fraction=1.0,
                  skew=1.0):
    """``(seconds, bytes)`` of one epoch (FedAvg: round, in which ``fraction`` of the clients take part) of
    ``method`` with ``clients`` shards of ``n`` images over ``link`` (``(bits_per_s, latency_s)``), each role's
    batch taking ``compute`` (role_seconds) seconds. ``skew``: the largest shard over the mean (1: IID shards),
    whose client SplitFed V2's and FedAvg's epochs wait for. The bytes are those on the links, evaluation left
    out."""
    bits_per_s, latency = link
    wire = lambda nbytes: nbytes * 8 / bits_per_s  # noqa: E731  (seconds on a link)
    m = math.ceil(n / clients / batch)  # a client's batches (IID: the shards differ by an image at most)
    longest = math.ceil(skew * n / clients / batch)  # the largest shard's
    batches = clients * m
    floats = int(np.prod(cut_shape(model, cut)))
    smashed, grad = n * (FLOAT * floats + LABEL), n * FLOAT * floats  # an epoch's, all clients together
    step = compute["client_forward"] + compute["server"] + compute["client_backward"]
    if method == "vanilla":
        seconds = batches * (step + 2 * latency) + wire(smashed + grad) + clients * 2 * latency
        return seconds, smashed + grad
    client_part, whole = parameter_bytes(model, cut)
    if method == "sflv2":
        server_bound = max(batches * compute["server"], wire(smashed), wire(grad))
        client_bound = longest * (step + 2 * latency) + wire(smashed + grad) * skew / clients
        averaging = 2 * (wire(clients * client_part) + latency)
        return max(server_bound, client_bound) + averaging, smashed + grad + 2 * clients * client_part
    if method == "fedavg":
        sampled = sampled_count(clients, fraction)
        seconds = wire(2 * sampled * whole) + 2 * latency + local_epochs * longest * compute["whole"]
        return seconds, 2 * sampled * whole
    raise ValueError(f"no time model for {method!r}")


@functools.cache
def parameter_bytes(model, cut):
    """Bytes of the client part's parameters and of the whole network's."""
    return (FLOAT * sum(p.numel() for p in split(model, cut)[0].parameters()),
            FLOAT * sum(p.numel() for p in build(model).parameters()))


def formula(run):
    """The time model of a results file's method: vanilla, sflv2 or fedavg (None: none here)."""
    if run["method"] == "federated":
        return "fedavg"
    variant = run["config"].get("variant")
    return variant if run["method"] == "split" and variant in ("vanilla", "sflv2") else None


# --------------------------------------------------------------------------------- time to the target

def epochs_to(run, target):
    """``(epochs, reached)``: the epochs of training until the watched accuracy (runs.watched_acc) first reached
    ``target``, or the epochs run. Where a run was evaluated within its epochs (split_learning.py
    --evals-per-epoch), a fraction: 1.3 is the first evaluation at or past the target three tenths into epoch 2."""
    for epoch in run["epochs"]:
        for point in epoch.get("within_epoch", []):
            if watched_acc(point) >= target:
                return epoch["epoch"] - 1 + point["fraction"], True
        if watched_acc(epoch) >= target:
            return epoch["epoch"], True
    return len(run["epochs"]), False


def epochs_over_seeds(runs, target):
    """``((fastest, median, slowest), (median_reached, all_reached))``: the epochs to ``target`` (epochs_to) of
    ``runs``, one a seed. A seed short of the target counts as slower than every seed that reached it (it ran all
    its epochs): the median is a number of epochs where the middle seeds reached the target, else only a lower
    bound (``median_reached``); so is the slowest unless every seed reached it (``all_reached``)."""
    order = sorted((epochs_to(run, target) for run in runs), key=lambda m: (not m[1], m[0]))
    middle = order[(len(order) - 1) // 2:len(order) // 2 + 1]  # one seed, or the two middle ones of an even count
    return ((order[0][0], statistics.mean(e for e, _ in middle), order[-1][0]),
            (all(r for _, r in middle), all(r for _, r in order)))


def measures(run):
    """How well a run measures its time to the target, to compare two runs of one seed: on held-out validation
    images first (make decision's, not make scale's), then evaluated more often an epoch, then for more epochs."""
    config = run["config"]
    return bool(config.get("validation")), config.get("evals_per_epoch") or 1, len(run["epochs"])


def load_runs(folders, partition="iid"):
    """model -> method -> {clients: [runs, one a seed of each setting]}: the finished runs of study.py on the whole
    training set, with ``partition`` ("iid", or a Dirichlet alpha as text: "0.5"), in ``folders`` (make scale's,
    make decision's and make decision-trials'); of two runs of one name (so one seed), setting and number of
    clients, the one that measures the time to the target better (``measures``)."""
    found = {}
    for path, run in (found for folder in folders for found in finished_runs(folder, "*.json")):
        name = parse_run_name(path.stem)
        if not (name and same_partition(name["partition"], partition) and formula(run)
                and not run["config"].get("train_subset")):
            continue
        key = (run["config"].get("model", "lenet5"), name["method"], setting(run), name["clients"], name["seed"])
        if key not in found or measures(run) > measures(found[key]):
            found[key] = run
    runs = {}
    for (model, method, _, k, _), run in sorted(found.items()):
        runs.setdefault(model, {}).setdefault(method, {}).setdefault(k, []).append(run)
    return runs


def shard_skew(by_k):
    """{clients: the largest shard over the mean, averaged over the seeds} of ``by_k`` ({clients: [runs]}); 1 for
    a run that does not record its shards."""
    def skew(run):
        sizes = run.get("shard_sizes")
        return max(sizes) * len(sizes) / sum(sizes) if sizes else 1.0
    return {k: statistics.mean(skew(run) for run in runs) for k, runs in by_k.items()}


def interpolated(measured, clients):
    """The numbers at ``clients``, each linear in log(clients) between the measured numbers of clients
    ``measured`` ({K: (numbers, flags)}, such as epochs_over_seeds's epochs to the target and whether they were
    reached), and each flag where both ends have it; None outside the measured ones."""
    ks = sorted(measured)
    if not ks[0] <= clients <= ks[-1]:
        return None
    high = next(k for k in ks if k >= clients)
    if high == clients:
        return measured[high]
    low = ks[ks.index(high) - 1]
    w = (math.log(clients) - math.log(low)) / (math.log(high) - math.log(low))
    (e0, r0), (e1, r1) = measured[low], measured[high]
    return tuple(a + w * (b - a) for a, b in zip(e0, e1)), tuple(a and b for a, b in zip(r0, r1))


def setting(run):
    """What a method's grid varies (make decision-trials), in words: ``batch 64, lr 0.01``, and for FedAvg
    ``, 1 local epoch(s), 100% of the clients a round``."""
    config = run["config"]
    text = f"batch {config['batch_size']}, lr {config.get('lr', 0.01):g}"
    if run["method"] == "federated":
        text += (f", {config.get('local_epochs', 1)} local epoch(s), {config.get('fraction', 1.0):.0%} of the clients "
                 "a round")
    return text


def by_setting(by_k):
    """A method's runs ``by_k`` ({clients: [runs]}) apart by setting: {setting: {clients: [runs]}}, in the order
    of the settings' words."""
    settings = {}
    for k, runs in by_k.items():
        for run in runs:
            settings.setdefault(setting(run), {}).setdefault(k, []).append(run)
    return dict(sorted(settings.items()))


def setting_seconds(by_k, compute, model, target, latency, clients, bandwidths):
    """``(seconds, reached)`` of one setting of a method (``by_k``: {clients: [runs, one a seed]}): seconds to
    ``target`` in every cell, an array (clients, bandwidths, 3) of its fastest seed's, median and slowest seed's
    (nan outside the numbers of clients it was run with), and whether its median seed and every seed reached the
    target, an array (clients, bandwidths, 2)."""
    run = by_k[min(by_k)][0]  # the settings, which every run of a setting shares
    measured = {k: epochs_over_seeds(seeds, target) for k, seeds in by_k.items()}
    skews = {k: ((skew,), (True,)) for k, skew in shard_skew(by_k).items()}
    cut, batch = run["config"].get("cut_layer", 1), run["config"]["batch_size"]
    roles = compute.get((cut, batch), compute[cut])
    if roles.get("batch", batch) != batch:  # a batch's time is not proportional to its size: not scaled
        raise InputError(f"{run['method']} runs with batch {batch}, but the roles' batches were timed at batch "
                         f"{roles['batch']}: time that size too with 'python decision.py --time-batch {batch}'")
    seconds = np.full((len(clients), len(bandwidths), 3), np.nan)
    reached = np.zeros((len(clients), len(bandwidths), 2), dtype=bool)
    for i, k in enumerate(clients):
        if (known := interpolated(measured, k)) is None:
            continue
        epochs, reached[i, :] = known
        for j, bits in enumerate(bandwidths):
            per_epoch, _ = epoch_seconds(formula(run), k, (bits, latency), roles, model, cut, batch=batch,
                                         local_epochs=run["config"].get("local_epochs", 1),
                                         fraction=run["config"].get("fraction", 1.0),
                                         skew=interpolated(skews, k)[0][0])
            seconds[i, j] = np.array(epochs) * per_epoch
    return seconds, reached


def shared_seeds(settings):
    """The seeds that every setting of a method ({setting: {clients: [runs, one a seed]}}) was run with, at every
    number of clients."""
    return set.intersection(*({run["config"].get("seed", 0) for run in runs}
                              for by_k in settings.values() for runs in by_k.values()))


def at_best(by_k, compute, model, target, latency, clients=CLIENTS, bandwidths=BANDWIDTHS):
    """A method at its best setting in every cell: ``(seconds, reached, chosen)`` as setting_seconds gives them for
    the setting (``setting``) of its runs ``by_k`` that is fastest there, and ``chosen``, that setting's words (''
    where none was run). Fastest: the least median time among settings whose median seed reached the target, else
    the least fastest seed's, counting only the seeds every setting was run with (make decision-trials runs each
    setting with one seed, then the chosen ones with more: those do not change the choice). The runs are scored on
    validation, so that is the choice on validation data; the chosen setting's time is then over all its seeds."""
    settings = by_setting(by_k)
    seeds = shared_seeds(settings)
    if not seeds:
        raise InputError(f"the settings of {next(iter(by_k.values()))[0]['method']} share no seed, so they cannot be "
                         "compared: run every setting with seed 0 (make decision-trials)")
    def timed(runs):
        return setting_seconds(runs, compute, model, target, latency, clients, bandwidths)

    on_shared = {name: {k: [run for run in seeded if run["config"].get("seed", 0) in seeds]
                        for k, seeded in runs.items()} for name, runs in settings.items()}
    compared = {name: timed(runs) for name, runs in on_shared.items()}
    # the chosen settings over all their seeds (the same numbers where every seed is shared)
    over_all = {name: compared[name] if on_shared[name] == runs else timed(runs) for name, runs in settings.items()}
    seconds = np.full((len(clients), len(bandwidths), 3), np.nan)
    reached = np.zeros((len(clients), len(bandwidths), 2), dtype=bool)
    chosen = np.full((len(clients), len(bandwidths)), "", dtype=object)
    for i in range(len(clients)):
        for j in range(len(bandwidths)):
            ran = [name for name, (t, _) in compared.items() if not np.isnan(t[i, j, 0])]
            if ran:
                chosen[i, j] = min(ran, key=lambda n: (not compared[n][1][i, j, 0],
                                                       compared[n][0][i, j, 1 if compared[n][1][i, j, 0] else 0]))
                seconds[i, j], reached[i, j] = over_all[chosen[i, j]][0][i, j], over_all[chosen[i, j]][1][i, j]
    return seconds, reached, chosen


def chosen_settings(by_k, compute, model, target, latency):
    """The settings of a method (its runs ``by_k``) that at_best chooses in at least one cell of the map:
    {setting: {clients: [runs]}}."""
    chosen = set(at_best(by_k, compute, model, target, latency)[2].flat)
    return {name: runs for name, runs in by_setting(by_k).items() if name in chosen}


def trial(run):
    """A run's setting in make decision-trials' words: ``batch:lr``, for FedAvg ``local epochs:batch:fraction``."""
    config = run["config"]
    if run["method"] == "federated":
        return f"{config.get('local_epochs', 1)}:{config['batch_size']}:{config.get('fraction', 1.0):g}"
    return f"{config['batch_size']}:{config.get('lr', 0.01):g}"


def decide(runs, compute, model, target, latency, clients=CLIENTS, bandwidths=BANDWIDTHS):
    """The fastest method to ``target`` in every cell of ``clients`` x ``bandwidths``, from ``runs`` (method ->
    {clients: [runs, one a seed, of each of its settings]}), each method at its best setting there (``at_best``):
    an array of method names, a pair (winner, runner-up) where they tie, or '' where a method that did not reach
    the target might still be faster; and {method: seconds array (clients, bandwidths, 3): its fastest seed's,
    median and slowest seed's}. A method whose median seed reached the target takes part with the median's time;
    a cell is decided only when the winner (the least median) is faster in its slowest seed than the runner-up in
    its fastest (a winner with a seed short of the target is a tie). A method takes part only between the fewest
    and the most clients it was run with."""
    seconds = {name: at_best(by_k, compute, model, target, latency, clients, bandwidths)[:2]
               for name, by_k in runs.items()}
    winner = np.full((len(clients), len(bandwidths)), "", dtype=object)
    for i in range(len(clients)):
        for j in range(len(bandwidths)):
            done = {name: t[i, j, 1] for name, (t, r) in seconds.items() if r[i, j, 0]}
            if not done:
                continue
            best = min(done, key=done.get)
            # a method short of the target takes at least its fastest seed's time: if that might be less, undecided
            if any(t[i, j, 0] < done[best] for name, (t, r) in seconds.items() if not r[i, j, 0]):  # nan: no rival
                continue
            runner_up = min((n for n in done if n != best), key=done.get, default=None)
            best_seconds, best_reached = seconds[best]
            if runner_up and not (best_reached[i, j, 1] and best_seconds[i, j, 2] < seconds[runner_up][0][i, j, 0]):
                winner[i, j] = (best, runner_up)
            else:
                winner[i, j] = best
    return winner, {name: t for name, (t, _) in seconds.items()}
