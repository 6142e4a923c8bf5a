"""Handing the heap memory a service has freed back to the operating system.

glibc's malloc keeps freed memory for reuse and, on its own, returns to the system only what is
free at the top of its heap. A service that allocates and frees buffers of every size for hours
(request bodies, query results, AMQP frames) ends up with free pages scattered through a heap
that keeps extending, so its RSS creeps up while what it uses stays level. Measured on the order
service after six minutes at 12 checkouts/s: 15.8 MB in use of a 30.6 MB heap, and one
`malloc_trim(0)` gave 8 MB back at once. `malloc_trim(0)` releases every whole free page,
wherever it lies in the heap; the runtime calls it periodically (`MALLOC_TRIM_INTERVAL_SECONDS`).
"""

from __future__ import annotations

import ctypes
from collections.abc import Awaitable, Callable
from pathlib import Path

from messaging.logs import get_logger

log = get_logger(__name__)


def heap_trimmer() -> Callable[[], bool] | None:
    """glibc's `malloc_trim(0)` (True when it gave memory back), or None where the C library
    has no such call (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: bool(trim(0))


def resident_kb() -> int | None:
    """This process's resident set (VmRSS) in kB, where /proc has it."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def trim_job(trim: Callable[[], bool]) -> Callable[[], Awaitable[int]]:
    """A periodic job for the runtime: trim the heap, log (at debug) and return the kB of RSS
    that went. One call took 5 ms on a heap with 37 MB scattered free and half a millisecond
    after that (`tests/messaging/test_memory.py`'s case), so it runs on the event loop."""

    async def job() -> int:
        before = resident_kb()
        released = trim()
        after = resident_kb()
        freed = before - after if before is not None and after is not None else 0
        log.debug("heap trimmed", released=released, rss_kb=after, freed_kb=freed)
        return freed

    return job
