"""Stop means stopped: once the daemon has shut down cleanly, the process exits.

Everything is committed and closed by then, but a thread still stuck in a read (a FIFO, a
network mount that stopped answering) would keep the interpreter alive for ever: Python joins
its non-daemon threads at exit, and asyncio waits for its executor's. `arm` starts a daemon
thread that, if the process is still there some seconds later, ends it with the exit code it
would have had. A normal exit comes first and takes that thread with it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import structlog

log = structlog.get_logger("pm.daemon")

FORCE_EXIT_AFTER_S = 3.0  # ample for a normal interpreter teardown; pm daemon stop waits 5 s


def arm(code: int, after_s: float | None = None) -> None:
    """From now on, the process ends with `code` within `after_s` seconds, whatever is stuck."""
    delay = FORCE_EXIT_AFTER_S if after_s is None else after_s
    threading.Thread(
        target=_exit_later, args=(code, delay), name="pm-exit-guard", daemon=True
    ).start()


def _exit_later(code: int, delay: float) -> None:
    time.sleep(delay)
    stuck = [
        t.name
        for t in threading.enumerate()
        if t is not threading.current_thread() and t.is_alive() and not t.daemon
    ]
    log.warning("exiting without waiting for stuck threads", threads=stuck, after_s=delay)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(code)
