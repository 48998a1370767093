"""Several runs of the suite's scripts, one after the other, in one MPI job:

    mpirun -n N python tests/helpers/runs_in_one_job.py RUNS.json

RUNS.json lists each run's command line from the script on (``["split_learning.py", "--epochs", "1", ...]``).
Every rank runs each script from ``__main__`` on with that command line, as ``mpirun -n N python SCRIPT FLAGS``
would, so the ranks start (import torch) once for all the runs. A run that fails ends the job with its status.
"""

import json
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

for command in json.loads(Path(sys.argv[1]).read_text()):
    sys.argv = [str(ROOT / command[0]), *command[1:]]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as end:
        if end.code not in (None, 0):
            raise
