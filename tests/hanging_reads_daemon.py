"""Run pm-agentd with a folder whose listing never returns, and short time bounds.

A folder named $PM_TEST_HANG_NAME blocks `os.scandir` for ever, as a network mount that
stopped answering does: the hang is injected at the OS edge (the one call that asks the kernel
for a listing), since a real dead mount needs root to make. The scanner's time bound per
project (and per discovery walk) becomes $PM_TEST_SCAN_BOUND_S, so a test takes seconds.

With PM_TEST_LINGER=1 it stands for a daemon that, once stopped, does not exit (as an older
version waited for its stuck threads): the exit guard is off and the process stays after its
socket and lock are gone. Everything else is the real daemon.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import daemon.runtime.scanner
from daemon.runtime import exit_guard
from daemon.runtime.main import main

HANG_NAME = os.environ.pop("PM_TEST_HANG_NAME", "")
SCAN_BOUND_S = os.environ.pop("PM_TEST_SCAN_BOUND_S", "")  # each project, and each walk
LINGER = os.environ.pop("PM_TEST_LINGER", "") == "1"
_real_scandir = os.scandir
_never = threading.Event()


def scandir(path: Any = ".") -> Any:
    if HANG_NAME and os.path.basename(os.fsdecode(path)) == HANG_NAME:
        _never.wait()  # a listing that never comes back
    return _real_scandir(path)


if __name__ == "__main__":
    os.scandir = scandir
    if SCAN_BOUND_S:
        daemon.runtime.scanner.PROJECT_TIME_BOUND_S = float(SCAN_BOUND_S)
        daemon.runtime.scanner.WALK_TIME_BOUND_S = float(SCAN_BOUND_S)
    if LINGER:
        exit_guard.FORCE_EXIT_AFTER_S = 3600.0
    code = main(sys.argv[1:])
    if LINGER:
        _never.wait()  # the process stays, its socket and lock released
    sys.exit(code)
