"""Marks a results file failed when the process that writes it dies without saying how its run ended; and how a
results file is written, by the run (training.Results) and by this guard alike.

    python results_guard.py RESULTS_FILE     # started by splitlab.training.results.Results; its standard input a pipe from the run

The run holds the other end of the pipe, so the pipe closes when the run's process ends, however it ends. If the
file still says "running" then, the process was killed before it could write: by SIGKILL, for example from
mpirun after another rank died, or by the out-of-memory killer. Standard library only, so that it starts at once.
"""

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

# The statuses of a run that ended as planned: its last epoch, a stopping rule (--patience, --stop-at), or a loss
# that was no longer a number (diverged: finished, and it did not learn).
FINISHED = ("completed", "stopped_early", "diverged")
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
    write_json_atomic(path, data)


@contextmanager
def atomic_path(path):
    """A temporary path beside ``path`` to write to; once the block ends, it replaces ``path`` in one step, so that
    readers see the old file or the new one, never half of one (and nothing new if the block raised)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a results file is as readable as any other
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json_atomic(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically (:func:`atomic_path`), flushed to disk first."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def main():
    sys.stdin.buffer.read()  # returns when the run's process has ended
    mark_failed_if_running(sys.argv[1])


if __name__ == "__main__":
    main()
