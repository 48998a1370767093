"""Process settings (splitlab/net/runtime.py): freed memory stays in the process during training, and goes back once
asked; and start-up (splitlab/training/eager.py): no method's training imports torch.compile's machinery."""

import os
import subprocess
import sys

import pytest

from common import MPIRUN
from conftest import OFFLINE, ROOT, needs_data, run, runs_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, tunes glibc")

MEASURE = """
import torch
from splitlab.net import runtime

def anonymous_mb():
    line = next(l for l in open('/proc/self/status') if l.startswith('RssAnon'))
    return int(line.split()[1]) // 1024

x = torch.ones(50_000_000)  # 200 MB, below the 1 GiB from which glibc would map it apart and unmap it on free
del x
kept = anonymous_mb()
runtime.release_freed_memory()
print(kept, anonymous_mb())
"""


def test_freed_memory_is_kept_until_released():
    result = run([sys.executable, "-c", MEASURE])
    assert result.returncode == 0, result.stderr
    kept, released = map(int, result.stdout.split())
    assert kept > released + 150, (kept, released)  # the 200 MB were kept, then handed back


PROBE = """
import importlib.abc, os, runpy, sys

class TorchLoads(Exception):
    pass

class Watch(importlib.abc.MetaPathFinder):  # stops a script at its first import of torch, saying what was set then
    def find_spec(self, name, path, target=None):
        if name == "torch":
            raise TorchLoads(os.environ.get("OMP_WAIT_POLICY"))

sys.meta_path.insert(0, Watch())
for script in sys.argv[1:]:
    os.environ.pop("OMP_WAIT_POLICY", None)
    for name in [name for name in sys.modules if name.split(".")[0] in ("splitlab", "models", "data")]:
        del sys.modules[name]
    try:
        runpy.run_path(script, run_name="probe")
        print(os.path.basename(script), "no torch")
    except TorchLoads as seen:
        print(os.path.basename(script), seen)
"""


def test_every_script_applies_the_process_settings_before_torch_loads():
    scripts = sorted(str(path) for path in ROOT.glob("*.py"))
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-c", PROBE, *scripts], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert len(seen) == len(scripts) and "models.py" in seen and "split_learning.py" in seen
    assert {script: value for script, value in seen.items() if value not in ("PASSIVE", "no torch")} == {}


@needs_data
def test_no_method_imports_torch_compile_while_it_trains(tmp_path):
    """torch._dynamo costs every process that imports it 0.9 CPU-s (eager.py): each MPI method, its FLOPs counted
    and its checkpoint written and read back (--resume), runs on ranks that never import it."""
    small = ["--train-subset", "300", "--test-subset", "100", "--no-progress", "--results-dir", str(tmp_path)]
    runs = [["split_learning.py", "--clients", "3", "--epochs", "1", *small],
            ["split_learning.py", "--clients", "3", "--epochs", "2", "--resume", *small],
            ["split_learning.py", "--variant", "sflv2", "--clients", "2", "--epochs", "1", *small],
            ["split_learning.py", "--variant", "u-shaped", "--clients", "2", "--epochs", "1", *small],
            ["federated_learning.py", "--clients", "2", "--epochs", "1", *small],
            ["sync_sgd.py", "--clients", "2", "--epochs", "1", *small]]
    with runs_file(runs) as path:  # the ranks' every import, as Python's -X importtime logs it
        job = run([MPIRUN, "-n", "2", sys.executable, "-X", "importtime", "tests/helpers/runs_in_one_job.py", path],
                  env=OFFLINE)
    assert job.returncode == 0, job.stderr[-3000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in job.stderr.splitlines() if line.startswith("import time")]
    assert "torch" in imported and "torch.utils.flop_counter" in imported
    assert [name for name in imported if name.startswith("torch._dynamo")] == []
