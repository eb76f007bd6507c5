"""Run pm-agentd and write down every file or folder it opens or lists below a given folder.

Python's audit hooks (PEP 578) see each `open`, `os.scandir` and `os.listdir` the process
makes, at the edge where it asks the OS: a test sets $PM_TEST_AUDIT_PREFIX to a folder the
daemon must never read and $PM_TEST_AUDIT_LOG to a file, and finds there every path under the
prefix that was opened or listed. Everything else is the real daemon.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from daemon.runtime.main import main

PREFIX = os.environ.pop("PM_TEST_AUDIT_PREFIX")
LOG = os.environ.pop("PM_TEST_AUDIT_LOG")
_EVENTS = frozenset({"open", "os.scandir", "os.listdir"})


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if isinstance(path, str) and (path == PREFIX or path.startswith(PREFIX + os.sep)):
        with open(LOG, "a", encoding="utf-8") as log:  # (LOG is outside PREFIX)
            log.write(f"{event} {path}\n")


if __name__ == "__main__":
    sys.addaudithook(_hook)
    sys.exit(main(sys.argv[1:]))
