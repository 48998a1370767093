import contextlib
import functools
import io
import json
import os
import runpy
import subprocess
import sys
import tempfile
from unittest import mock

import pytest
from hypothesis import settings

from common import MPIRUN, ROOT  # benchmarks/common.py: the mpirun that `make setup` installs in .venv


# Hypothesis' per-example deadline would fail a property on a machine busy with the suite's other processes.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def have_data():
    import data
    try:
        data.find_data_dir()
        return True
    except data.DataError:
        return False


# Tests that train on the data set; `make mutate` leaves them out (SPLITLAB_UNIT_ONLY=1): it runs the tests once a
# mutant, and needs those that take a second.
UNIT_ONLY = bool(os.environ.get("SPLITLAB_UNIT_ONLY"))
needs_data = pytest.mark.skipif(UNIT_ONLY or not have_data(),
                                reason="unit tests only (make mutate)" if UNIT_ONLY else
                                "Fashion-MNIST not installed (run 'make setup')")

# Floating-point sums follow the thread count: a test that compares two runs for "the same numbers" runs both
# with one thread (FedAvg over MPI and in one process differed by 1.7e-3 in test loss at default threads).
PINNED = {"OMP_NUM_THREADS": "1"}

# No test may reach the internet: a proxy that refuses makes any download fail at once.
OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


def run(args, timeout=300, cwd=ROOT, env=None):
    """Run a command from the project folder, as a user would; returns the CompletedProcess. The scripts at the
    top are importable (PYTHONPATH), for the helpers in tests/helpers that run a script with something planted."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **OFFLINE, "PYTHONPATH": str(ROOT), **(env or {})})


def script(name, *args, **kwargs):
    return run([sys.executable, str(ROOT / name), *args], **kwargs)


def in_process(name, *args, env=None):
    """``python NAME ARGS`` run in this process: the same code from ``__main__`` on, without a process's start-up
    (importing torch: 2 CPU-seconds a process on the 2-core machine). ``env`` is set for the
    run and ``OMP_NUM_THREADS`` in it is torch's thread count, as in a process of its own; both are restored
    after. A CompletedProcess with the exit status and what was printed."""
    import torch
    env = {**OFFLINE, **(env or {})}
    stdout, stderr, argv, threads = io.StringIO(), io.StringIO(), sys.argv, torch.get_num_threads()
    sys.argv = [str(ROOT / name), *args]
    if "OMP_NUM_THREADS" in env:
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    try:
        with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            runpy.run_path(str(ROOT / name), run_name="__main__")
        status = 0
    except SystemExit as exit_:  # as the interpreter ends: a message is printed and is status 1
        status = exit_.code or 0
        if not isinstance(status, int):
            stderr.write(f"{status}\n")
            status = 1
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess([name, *args], status, stdout.getvalue(), stderr.getvalue())


def mpirun(n, name, *args, **kwargs):
    """``mpirun -n N python NAME ARGS`` from the project folder (NAME relative to it)."""
    return run([MPIRUN, "-n", str(n), sys.executable, str(ROOT / name), *args], **kwargs)


@contextlib.contextmanager
def runs_file(commands):
    """A file that lists ``commands`` (each a script and its flags) for tests/helpers/runs_in_one_job.py."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as runs:
        json.dump([list(command) for command in commands], runs)
        runs.flush()
        yield runs.name


def mpirun_each(n, commands, **kwargs):
    """Each of ``commands`` (a script and its flags) as ``mpirun -n N python SCRIPT FLAGS`` runs it, one after the
    other in one job (tests/helpers/runs_in_one_job.py): its ranks import torch once, not once a run (5 CPU-s a
    rank on the 2-core machine). The job's CompletedProcess; a run that fails ends the job."""
    with runs_file(commands) as runs:
        return mpirun(n, "tests/helpers/runs_in_one_job.py", runs, **kwargs)


def results_in_one_job(n, runs, folder, **kwargs):
    """``{name: results}`` of ``runs`` (``{name: [script, flags...]}``), each made into ``folder / name`` in one
    ``mpirun -n N`` job (:func:`mpirun_each`); a run that fails fails the caller with the job's output."""
    job = mpirun_each(n, [[*command, "--results-dir", str(folder / name)] for name, command in runs.items()], **kwargs)
    assert job.returncode == 0, job.stderr
    return {name: json.loads(next((folder / name).glob("*.json")).read_text()) for name in runs}


@pytest.fixture(scope="session")
def regular_epochs(tmp_path_factory):
    """``regular_epochs(*flags)``: the epoch records of regular learning with ``flags``, pinned threads; run once
    per flags in a session (the reference of every "one client is regular learning" test)."""
    @functools.cache
    def epochs(*flags):
        folder = tmp_path_factory.mktemp("regular")
        result = in_process("regular_learning.py", *flags, "--results-dir", str(folder), env=PINNED)
        assert result.returncode == 0, result.stderr
        return json.loads((folder / "regular.json").read_text())["epochs"]
    return epochs


@pytest.fixture(scope="session")
def regular_losses(regular_epochs):
    """``regular_losses(*flags)``: regular learning's test losses with ``flags`` (``regular_epochs``)."""
    return lambda *flags: [e["test_loss"] for e in regular_epochs(*flags)]
