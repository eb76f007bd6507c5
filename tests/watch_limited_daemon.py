"""Run pm-agentd with the OS refusing inotify watches beyond $PM_TEST_WATCH_LIMIT.

The refusal is injected at the OS edge — the one class that asks the kernel for watches — and
raises exactly what watchfiles raises when max_user_watches is exhausted. Everything else is
the real daemon. (Lowering the real sysctl would change the whole machine, not just this test.)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from watchfiles._rust_notify import RustNotify

import daemon.runtime.watcher
from daemon.runtime.main import main

LIMIT = int(os.environ.pop("PM_TEST_WATCH_LIMIT"))


class LimitedRustNotify:
    """RustNotify, except that the OS has only LIMIT watches left for inotify."""

    def __init__(self, paths: list[str], debug: bool, polling: bool, *args: Any) -> None:
        if not polling and len(paths) > LIMIT:
            refused = paths[LIMIT]
            raise OSError(
                f'OS file watch limit reached. about ["{refused}"] '
                f'(Error {{ kind: MaxFilesWatch, paths: ["{refused}"] }})'
            )
        self._real = RustNotify(paths, debug, polling, *args)

    def watch(self, *args: Any) -> Any:
        return self._real.watch(*args)

    def close(self) -> None:
        self._real.close()


if __name__ == "__main__":
    daemon.runtime.watcher.RustNotify = LimitedRustNotify  # type: ignore[attr-defined, assignment]
    sys.exit(main(sys.argv[1:]))
