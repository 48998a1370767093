"""Process-wide settings that make small CPU training steps fast; import this before torch.

Every script imports it first. Each setting was measured on a 2-core machine (see README, "Speed"):

* OpenMP worker threads spin for a while after every parallel region (libgomp's default). With several
  processes on few cores those spinning threads steal the core from the process that has work, and even alone
  they cost time between the many small operations of a LeNet-5 step. A short spin, then sleep, avoids that.
  2,000 spins (tens of microseconds): regular learning ran as fast as with 10,000-30,000 and slower with
  0-1,000 (11.4-12.2 ms per batch against 12.3-13.2 at 0); a 2-rank split-learning batch fell from 14.6 to
  13.0 ms against 10,000, whose spinning threads outlast the hand-over to the other rank.
* glibc hands freed memory back to the kernel and asks for it again on the next batch; the page faults that
  follow cost about a third of a step. Keeping freed memory in the process avoids them.
"""

import ctypes
import os

# Environment settings only take effect if set before torch loads libgomp, hence at import time.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "2000")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30  # keep up to 1 GiB of freed memory; a LeNet-5 step churns a few MB


def _keep_freed_memory():
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return
    libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)
    libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)


_keep_freed_memory()
