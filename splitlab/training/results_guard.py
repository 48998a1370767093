"""Marks a results file failed when the process that writes it dies without saying how its run ended; and how a
results file is written, by the run (training.Results) and by this guard alike.

    python results_guard.py RESULTS_FILE                # started by splitlab.training.results.Results
    python results_guard.py RESULTS_FILE RANK HOST      # the same, for one rank of an MPI run (every rank has one)

Its standard input is a pipe from the run, whose process holds the other end: the pipe closes when the process
ends, however it ends. If the file still says "running" then, the process was killed before it could write: by
SIGKILL, for example from mpirun after another rank died, or by the out-of-memory killer. A rank of an MPI run
that ends without writing "done" to the pipe first is noted, with its host and the time, in ``.<name>.ended``
beside the results file (where the ranks share a file system); rank 0's guard waits a moment for those notes
and names the rank that ended first. Standard library only, so that it starts at once.
"""

import json
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

# The statuses of a run that ended as planned: its last epoch, a stopping rule (--patience, --stop-at), or a loss
# that was no longer a number (diverged: finished, and it did not learn).
FINISHED = ("completed", "stopped_early", "diverged")
KILLED = ("killed: the process that wrote this file ended without a word (SIGKILL: mpirun ends every rank this "
          "way when one rank dies, and so does the out-of-memory killer); the job's output says which rank died first")
NOTES_WAIT_S = 1.0  # how long rank 0's guard waits for the other ranks' guards to note their ends


def killed_error(first=None):
    """The error of a killed run, naming the rank that ended first where the notes say (``{"rank", "host"}``)."""
    if first is None:
        return KILLED
    return (f"killed: rank {first['rank']} (on {first['host']}) ended first without a word (SIGKILL, for example "
            f"from the out-of-memory killer), and mpirun then ended every rank (of the ranks whose guards noted "
            f"their ends: a host that went away leaves no note, and the job's output names it)")


def mark_failed_if_running(path, first=None):
    """Set ``status`` to failed with :func:`killed_error` as the error, if the file still says running."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if data.get("status") != "running":
        return
    data.update(status="failed", error=killed_error(first))
    write_json_atomic(path, data)


def notes_path(path):
    """Where the ranks of the run whose results file is ``path`` note their ends."""
    path = Path(path)
    return path.with_name(f".{path.stem}.ended")


def note_end(path, rank, host):
    """Note that ``rank`` on ``host`` ended without a word, and when (nothing where the folder is not here)."""
    if notes_path(path).parent.is_dir():
        with open(notes_path(path), "a") as f:  # one short line in one write: notes of several ranks stay whole
            f.write(json.dumps({"rank": rank, "host": host, "at": time.time()}) + "\n")


def first_ended(path):
    """The note of the rank that ended first, or None where there is none."""
    try:
        notes = [json.loads(line) for line in notes_path(path).read_text().splitlines()]
    except (OSError, ValueError):
        return None
    return min(notes, key=lambda note: note["at"], default=None)


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


# a list of plain values, one a line (a string holds no raw newline, so a comma and a newline part its values)
_FLAT_LIST = re.compile(r"\[\n\s*([^\[\]{}]*?)\n\s*\]")


def json_text(obj):
    """``obj`` as indented JSON with each list of plain values on one line: a run of 1,000 clients keeps a value
    per client per epoch, three times the bytes one a line."""
    return _FLAT_LIST.sub(lambda m: "[" + ", ".join(re.split(r",\n\s*", m[1])) + "]", json.dumps(obj, indent=2))


def write_json_atomic(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically (:func:`atomic_path`), flushed to disk first."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(json_text(obj))
        f.flush()
        os.fsync(f.fileno())


def main():
    said = sys.stdin.buffer.read()  # returns when the run's process has ended
    path, rank = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None
    if rank is None:
        mark_failed_if_running(path)
        return
    if said == b"done":  # the rank ended as planned
        return
    note_end(path, rank, sys.argv[3])
    if rank == 0:
        time.sleep(NOTES_WAIT_S)
        mark_failed_if_running(path, first_ended(path))
        notes_path(path).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
