"""How the ranks of an MPI method share their host: how many compute threads each rank takes, and how it waits.

What decides it is what a rank can see (``Host``): the cores it may run on, and how many ranks of its host
share those cores. Its method says how many of them compute at the same time. The rules, and why:

1. A rank takes its share of its cores: all of them when it computes alone (vanilla split learning: one rank
   at a time; a server that evaluates while its clients wait), a k-th when k ranks compute at once (FedAvg's
   clients, sync SGD's workers, SplitFed). More threads than cores make OpenMP's threads take turns on a
   core, and every operation of a step waits at a barrier for the slowest of them.
2. A rank that takes turns with others takes at most ``MAX_THREADS``. A LeNet-5 step at batch 64 is some forty
   operations of tens of microseconds: more threads cut them thinner while each barrier waits for more of
   them, and a rank that hands a batch over finds its threads asleep when the answer comes (the measurements:
   docs/performance.md, "The process policy, across core counts"). Ranks that compute side by side keep their
   whole share: they are busy for a whole turn or round (SplitFed's server takes batch after batch), as regular
   learning is.
3. ``OMP_NUM_THREADS``, when set, is the most any rank takes.
4. A rank that takes turns polls for the answer for ``POLL_SECONDS`` before it sleeps on its doorbell, where its
   cores have room for it beside the computing rank's threads: an answer within a batch comes in a few
   milliseconds, and a sleeping rank pays a wake-up at every hand-over (docs/performance.md).
   Otherwise a rank sleeps at once: where cores are short a polling rank takes the core from the one that
   computes. Ranks on several hosts look now and then instead of sleeping on doorbells (messaging.py). How long
   OpenMP's threads spin before they sleep is set before torch loads (runtime.py), as measured on 2 cores.

Every rule lives here: the plans below, what SplitFed and FedAvg ask for (how many clients at once), and
study.py's threads for runs side by side; only OpenMP's waiting is set elsewhere (runtime.py), since it must
precede torch.

On the 2-core machine these rules give the settings measured there (every split-learning rank 2 threads, no
polling; SplitFed's server 1 thread and two clients of 1 thread at once; FedAvg's and sync SGD's
clients 1 thread). ``tests/test_process_policy.py`` holds them to that.
"""

import os
from dataclasses import dataclass

MAX_THREADS = 4
POLL_SECONDS = 0.01


@dataclass(frozen=True)
class Plan:
    threads: int  # torch's compute threads
    poll_s: float  # how long the rank polls for a message before it sleeps on its doorbell


@dataclass(frozen=True)
class Host:
    """What a rank can see of its host."""
    cores: int  # the cores this rank may run on
    sharing: int = 1  # ranks of this host whose cores overlap this rank's, itself included
    elsewhere: int = 0  # the cores of the job's other hosts (each host's as its ranks see them)

    @classmethod
    def of(cls, comm, hosts):
        """This rank's view, ``hosts`` naming each rank's host; collective over ``comm``."""
        from mpi4py import MPI
        mine = affinity()
        local = comm.Split_type(MPI.COMM_TYPE_SHARED)
        sharing = sum(1 for theirs in local.allgather(sorted(mine)) if mine.intersection(theirs))
        local.Free()
        cores_by_host = {}
        for name, cores in zip(hosts, comm.allgather(len(mine))):
            cores_by_host[name] = max(cores, cores_by_host.get(name, 0))
        elsewhere = sum(cores for name, cores in cores_by_host.items() if name != hosts[comm.Get_rank()])
        return cls(len(mine), sharing, elsewhere)


def affinity():
    """The set of CPU cores this process may run on."""
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def asked_threads():
    """``OMP_NUM_THREADS`` as a number, or None where it is not set (or not a count)."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    return int(threads) if threads.isdigit() and int(threads) > 0 else None


def one_at_a_time(host):
    """The plan of a rank that takes turns with the others: one of them computes at a time while the others
    wait (vanilla and U-shaped split learning)."""
    threads = max(1, min(asked_threads() or MAX_THREADS, host.cores))
    return Plan(threads, POLL_SECONDS if host.cores >= threads + 1 else 0.0)


def side_by_side(host, at_once=1, cores=None):
    """The plan of one of ``at_once`` ranks that compute at the same time on ``cores`` (default: all the rank's
    cores); they sleep at once when they wait. FedAvg's aggregator and sync SGD's server take ``at_once=1``:
    they compute while the workers wait, and wait while the workers compute."""
    at_once = max(1, min(at_once, host.sharing))
    share = (host.cores if cores is None else cores) // at_once
    return Plan(max(1, min(asked_threads() or share, share)), 0.0)


# ------------------------------------------------------------------------- what each method asks for

def splitfed_server(host):
    """SplitFed's server computes at the same time as its clients: half the cores at most."""
    return side_by_side(host, cores=max(1, host.cores // 2))


def splitfed_client_cores(host):
    """The cores SplitFed's server leaves to its clients."""
    return host.cores - splitfed_server(host).threads


def splitfed_clients_at_once(host, num_clients):
    """Two at least, so that one computes while the server works on the other's batch; at most one per core
    left after the server's threads, and one per core of the other hosts."""
    return min(num_clients, max(2, splitfed_client_cores(host) + host.elsewhere))


def splitfed_client(host, num_clients):
    return side_by_side(host, splitfed_clients_at_once(host, num_clients), cores=splitfed_client_cores(host))


def local_loss(host):
    """Local-loss split learning's server and the client in its turn compute at the same time (the client waits
    for no gradient, the server for no client): half the cores each."""
    return side_by_side(host, cores=max(1, host.cores // 2))


def fedavg_clients_at_once(host, num_clients):
    """FedAvg's clients train at the same time, but no more of them than there are cores, this host's and the
    other hosts': more would only take turns on the cores and evict each other from the caches."""
    return min(num_clients, host.cores + host.elsewhere)


def threads_per_job(jobs):
    """study.py's threads for each of ``jobs`` single-process runs that go at once: a share of the cores."""
    return max(1, len(affinity()) // jobs)


def apply(plan, channel):
    """Compute with ``plan.threads`` threads (needed under mpirun too: MPICH's launcher leaves torch believing
    it has one core) and wait on ``channel`` as the plan says."""
    import torch
    torch.set_num_threads(plan.threads)
    channel.poll_s = plan.poll_s
