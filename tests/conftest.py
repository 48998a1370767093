import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import runtime  # noqa: E402,F401  (as in the scripts: before torch)


def have_data():
    import data
    try:
        data.find_data_dir()
        return True
    except data.DataError:
        return False


needs_data = pytest.mark.skipif(not have_data(), reason="Fashion-MNIST not installed (run 'make setup')")

# No test may reach the internet: a proxy that refuses makes any download fail at once.
OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


def run(args, timeout=300, cwd=ROOT, env=None):
    """Run a command from the project folder, as a user would; returns the CompletedProcess. The project's
    modules are importable in it (for the helpers in tests/helpers)."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **OFFLINE, "PYTHONPATH": str(ROOT), **(env or {})})


def script(name, *args, **kwargs):
    return run([sys.executable, str(ROOT / name), *args], **kwargs)


MPIRUN = str(Path(sys.executable).parent / "mpirun")  # the one `make setup` installs in .venv


def mpirun(n, name, *args, **kwargs):
    """``mpirun -n N python NAME ARGS`` from the project folder (NAME relative to it)."""
    return run([MPIRUN, "-n", str(n), sys.executable, str(ROOT / name), *args], **kwargs)
