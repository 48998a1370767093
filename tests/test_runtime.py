"""Process settings (runtime.py): freed memory stays in the process during training, and goes back once asked."""

import sys

import pytest

from conftest import run

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, tunes glibc")

MEASURE = """
import runtime, torch

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
