"""Several runs of the suite's scripts, one after the other, in one MPI job:

    mpirun -n N python tests/helpers/runs_in_one_job.py RUNS.json

RUNS.json lists each run's command line from the script on (``["split_learning.py", "--epochs", "1", ...]``), after
the environment it sets for that run, as a shell would take them (``["LINK=1gbit,100ms", "split_learning.py", ...]``).
Every rank runs each script from ``__main__`` on with that command line, as ``mpirun -n N python SCRIPT FLAGS``
would, so the ranks start (import torch) once for all the runs. A run that fails ends the job with its status.
"""

import json
import os
import runpy
import sys
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]

for command in json.loads(Path(sys.argv[1]).read_text()):
    at = next(k for k, item in enumerate(command) if item.endswith(".py"))  # the script, after the settings
    settings, (script, *flags) = command[:at], command[at:]
    sys.argv = [str(ROOT / script), *flags]
    try:
        with mock.patch.dict(os.environ, dict(setting.split("=", 1) for setting in settings)):
            runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as end:
        if end.code not in (None, 0):
            raise
