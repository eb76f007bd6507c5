"""Giving freed memory back to the OS (glibc only; elsewhere these do nothing).

glibc keeps what the daemon frees for reuse, and under a stream of big messages (256 KiB
frames, 1 MiB values) that reserve crept up by ~2.5 MiB per 10,000 fuzzed frames while
Python's own heap stayed flat (bench/RESULTS.md, reliability). Two remedies, both measured:
allocations of 128 KiB and more always get their own mapping, returned to the OS when freed
(glibc otherwise raises that threshold after each big free, and big blocks then fragment
its heaps), and `malloc_trim` every 30 s hands back free pages inside the heaps.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys

import structlog

log = structlog.get_logger("pm.memory")

TRIM_INTERVAL_S = 30.0
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only (not musl)
        libc.malloc_trim  # noqa: B018
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def tune_allocator() -> bool:
    """A fixed mmap threshold; call it once, early. True if glibc took it."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def trim() -> bool:
    """Return free heap pages to the OS (ctypes releases the GIL meanwhile). True if any were."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


async def keep_trimmed(interval_s: float = TRIM_INTERVAL_S) -> None:
    """Trim now and then, in a thread: a trim walks every heap and may take milliseconds."""
    if _LIBC is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(trim)
        except Exception:  # never worth stopping the daemon for
            log.exception("malloc_trim failed")
