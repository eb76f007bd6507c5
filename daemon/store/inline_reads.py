"""Short reads on the event loop's own thread, with a time budget.

A primary-key read takes ~15 µs in SQLite; handing it to a reader thread and its result back
costs more than that (two cross-thread wake-ups and GIL hand-overs, ~60-200 µs on a small
VM). So a read is first tried here, on a connection of the loop's own, and SQLite's progress
handler interrupts it once it has run for BUDGET_S: it is then run again on a reader thread
(daemon.store.workers), and that kind of read (its code object) goes straight there for the
next SKIP_AFTER_INTERRUPT times, so a long read costs the loop one budget now and then, not
each time. Interrupting a read rolls nothing back (SQLite rolls back only writes on an
interrupt, and this connection is read-only); the read's function may have caught the
error, so the interruption is known from the handler, not from what the function raised.
The connection never waits for a lock (busy_timeout 0): a read that meets one is run again
on a reader thread, where waiting blocks nobody.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import msgspec

BUDGET_S = 0.0005
SKIP_AFTER_INTERRUPT = 64
_CHECK_EVERY = 400  # SQLite virtual-machine steps between two looks at the clock
_TRY_ELSEWHERE = object()


class ReadStats(msgspec.Struct, kw_only=True):
    """Where reads ran: on the loop's own connection, or on reader threads (long ones, and
    the kind of a read interrupted lately)."""

    on_loop: int
    on_threads: int
    interrupted: int  # reads the budget stopped on the loop (each then ran on a thread)


class InlineReads:
    def __init__(self, conn: sqlite3.Connection, budget_s: float = BUDGET_S) -> None:
        self._conn = conn
        self._budget_s = budget_s
        self._deadline = math.inf
        self._interrupted = False
        self._skip: dict[object, int] = {}
        self.inline = self.elsewhere = self.interrupted = 0
        conn.execute("PRAGMA busy_timeout = 0")
        self._load_schema()
        conn.set_progress_handler(self._over_budget, _CHECK_EVERY)

    def _load_schema(self) -> None:
        """Parse the schema now, outside any budget: a first read pays ~1 ms for it, and an
        interrupted load starts again from nothing (every read would be sent elsewhere)."""
        self._conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()

    def _over_budget(self) -> int:
        if time.perf_counter() > self._deadline:
            self._interrupted = True
            return 1
        return 0

    def try_read(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """`fn(connection, *args)` here, or `TRY_ELSEWHERE` if it must run on a reader."""
        kind = getattr(fn, "__code__", fn)
        left = self._skip.get(kind)
        if left:
            self._skip[kind] = left - 1
            self.elsewhere += 1
            return _TRY_ELSEWHERE
        self._interrupted = False
        self._deadline = time.perf_counter() + self._budget_s
        try:
            value = fn(self._conn, *args)
        except sqlite3.OperationalError as e:
            if self._interrupted or _is_lock(e):
                return self._elsewhere(kind)
            raise
        except Exception:
            if self._interrupted:
                return self._elsewhere(kind)
            raise
        finally:
            self._deadline = math.inf
        if self._interrupted:  # interrupted, and the function made something of it
            return self._elsewhere(kind)
        self.inline += 1
        return value

    def _elsewhere(self, kind: object) -> object:
        self._skip[kind] = SKIP_AFTER_INTERRUPT
        if self._interrupted:  # perhaps in a schema another connection changed: load it
            self.interrupted += 1
            self._conn.set_progress_handler(None, 0)
            # sqlite3.Error: the read on a reader thread meets it too and says what it is
            with contextlib.suppress(sqlite3.Error):
                self._load_schema()
            self._conn.set_progress_handler(self._over_budget, _CHECK_EVERY)
        self.elsewhere += 1
        return _TRY_ELSEWHERE

    def stats(self) -> ReadStats:
        return ReadStats(
            on_loop=self.inline, on_threads=self.elsewhere, interrupted=self.interrupted
        )

    def close(self) -> None:
        self._conn.close()


def tried_elsewhere(value: Any) -> bool:
    return value is _TRY_ELSEWHERE


def _is_lock(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return "locked" in text or "busy" in text
