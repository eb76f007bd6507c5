"""daemon/platform/memory.py against the real glibc allocator, in a child process of its own (so the
test's own heap is not what gets measured)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO

CHILD = textwrap.dedent(
    """
    import json
    from daemon.platform import memory

    def rss_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    tuned = memory.tune_allocator()
    # 160 MiB in 64 KiB blocks (below the mmap threshold: they come from the heap), then
    # every block but one in ten freed: the heap keeps its size, full of free holes.
    blocks = [bytearray(64 * 1024) for _ in range(2560)]
    kept = blocks[::10]
    del blocks
    before = rss_mib()
    trimmed = memory.trim()
    after = rss_mib()
    big = [bytearray(1024 * 1024) for _ in range(64)]  # above it: mapped on their own
    with_big = rss_mib()
    del big
    without_big = rss_mib()
    print(json.dumps({"tuned": tuned, "trimmed": trimmed, "before": before, "after": after,
                      "with_big": with_big, "without_big": without_big, "kept": len(kept)}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_trim_returns_freed_heap_memory_and_big_blocks_go_back_at_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["tuned"] is True and got["trimmed"] is True
    assert got["before"] - got["after"] > 100, got  # ~144 MiB of holes handed back
    assert got["with_big"] - got["without_big"] > 56, got  # 64 MiB returned by munmap
