"""Marks a results file failed when the process that writes it dies without saying how its run ended.

    python results_guard.py RESULTS_FILE     # started by training.Results; its standard input a pipe from the run

The run holds the other end of the pipe, so the pipe closes when the run's process ends, however it ends. If the
file still says "running" then, the process was killed before it could write: by SIGKILL, for example from
mpirun after another rank died, or by the out-of-memory killer. Standard library only, so that it starts at once.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

KILLED = ("killed: the process that wrote this file ended without a word (SIGKILL: mpirun ends every rank this "
          "way when one rank dies, and so does the out-of-memory killer); the job's output says which rank died first")


def mark_failed_if_running(path):
    """Set ``status`` to failed with KILLED as the error, if the file still says running."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if data.get("status") != "running":
        return
    data.update(status="failed", error=KILLED)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main():
    sys.stdin.buffer.read()  # returns when the run's process has ended
    mark_failed_if_running(sys.argv[1])


if __name__ == "__main__":
    main()
