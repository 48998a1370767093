"""A stand-in for a method's script, for the benchmark helpers' tests: writes a results file whose one epoch
took as many seconds as its first argument says (or fails, for "fail")."""

import json
import sys
from pathlib import Path

seconds = sys.argv[1]
if seconds == "fail":
    sys.exit("something went wrong")

def flag(name):
    return sys.argv[sys.argv.index(name) + 1]


result = {"epochs": [{"train_time_s": float(seconds)}]}
(Path(flag("--results-dir")) / f"{flag('--run-name')}.json").write_text(json.dumps(result))
