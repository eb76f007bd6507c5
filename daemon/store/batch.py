"""One batch of writes: one transaction, one SAVEPOINT per operation, its events at the end.

The writer runs a batch's operations on whichever thread holds the write connection at the
moment (the event loop's for short ones, its own thread for the rest) and always commits on
its thread; this module is what both run, and what `bench writes` runs alone to measure the
ceiling the writer could reach without a socket.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import msgspec

from daemon.rpc.errors import RpcError
from daemon.store import events as events_db
from daemon.store.errors import translate
from daemon.store.events import Event
from daemon.store.events_catalogue import EventKind

T = TypeVar("T")
P = TypeVar("P")


class Tx:
    """What an operation sees inside its savepoint: the connection, the batch's time, `emit`."""

    __slots__ = ("conn", "events", "now")

    def __init__(self, conn: sqlite3.Connection, now: str) -> None:
        self.conn = conn
        self.now = now
        self.events: list[tuple[EventKind[Any], Any]] = []

    def emit(self, kind: EventKind[P], data: P | msgspec.Raw) -> None:
        """Record a change event of a declared kind, its data of the kind's payload type (or
        already encoded as such); it is stored and published only if this commits."""
        self.events.append((kind, data))


WriteFn = Callable[[Tx], T]
Outcome = tuple[bool, Any]  # (True, result) or (False, the exception)


class Aborted(Exception):
    """SQLite rolled back the whole transaction (disk full, I/O error): every op must fail."""


class Batch(Generic[T]):
    """The operations of one transaction and what became of them so far.

    `run` may be called more than once (the event loop runs the first operations, the
    writer's thread the rest): `done` says how far it got. Outcomes and events are only
    meaningful once `commit` returned without raising."""

    __slots__ = (
        "commit_ms", "committing", "done", "events", "events_stored", "fns", "handed", "now",
        "on_thread", "outcomes", "seq", "started",
    )  # fmt: skip

    def __init__(self, fns: Sequence[WriteFn[T]], now: str, seq: int) -> None:
        self.fns = fns
        self.now = now
        self.seq = seq  # the last event number handed out so far
        self.started = time.perf_counter()
        self.done = 0
        self.outcomes: list[Outcome] = []
        self.events: list[Event] = []
        self.events_stored = False
        self.commit_ms = 0.0
        # perf_counter() when the loop handed it to the writer's thread, when the thread
        # began on it, when COMMIT began: its stages (daemon.store.writer_stats)
        self.handed = self.on_thread = self.committing = 0.0

    def run(
        self,
        conn: sqlite3.Connection,
        encoder: msgspec.json.Encoder,
        *,
        until: float | None = None,
        end: int | None = None,
    ) -> None:
        """Run the operations not yet run, each in its savepoint, up to index `end`; stop
        early, between two operations, once `time.perf_counter()` passes `until`. Raises
        Aborted."""
        fns, outcomes, events = self.fns, self.outcomes, self.events
        now = self.now
        stop = len(fns) if end is None else end
        while self.done < stop:
            if until is not None and time.perf_counter() > until:
                return
            ok, value, emitted = run_one(conn, fns[self.done], now)
            self.done += 1
            outcomes.append((ok, value))
            for kind, data in emitted:
                self.seq += 1
                encoded = data if isinstance(data, msgspec.Raw) else encoder.encode(data)
                events.append(Event(self.seq, now, kind.name, kind.topic, msgspec.Raw(encoded)))

    def store_events(self, conn: sqlite3.Connection) -> None:
        """Write the events of the operations that succeeded (once all have run)."""
        if not self.events_stored:
            events_db.insert_many(conn, self.events)
            self.events_stored = True

    def commit(self, conn: sqlite3.Connection) -> None:
        """Store the events if not done yet, then COMMIT (on the writer's thread: COMMIT
        waits for the disk)."""
        self.store_events(conn)
        self.committing = time.perf_counter()
        conn.execute("COMMIT")
        self.commit_ms = (time.perf_counter() - self.committing) * 1000

    @property
    def finished(self) -> bool:
        return self.done == len(self.fns)


def run_one(
    conn: sqlite3.Connection, fn: WriteFn[Any], now: str
) -> tuple[bool, Any, list[tuple[EventKind[Any], Any]]]:
    """One operation in its savepoint: its outcome and the events it emitted."""
    tx = Tx(conn, now)
    conn.execute("SAVEPOINT op")
    try:
        value = fn(tx)
        conn.execute("RELEASE op")
    except Exception as e:
        if not conn.in_transaction:
            raise Aborted() from e
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return False, e, []
    return True, value, tx.events


def roll_back(conn: sqlite3.Connection) -> None:
    """End a failed transaction; rolling back can fail too, and the file stays intact."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def cause(error: Exception) -> BaseException:
    """What a whole failed batch is reported as: SQLite's error, not the wrapper."""
    if isinstance(error, Aborted) and error.__cause__ is not None:
        return error.__cause__
    return error


def begun_here(conn: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE where waiting is not allowed (the writer's connection has busy_timeout 0
    on the event loop): False if it did not begin (another program holds the lock, or any
    other error); the writer then begins on its thread, which waits busy_timeout and reports
    what SQLite says."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error:
        return False
    return True


def client_error(error: BaseException) -> BaseException:
    """What a caller hears of an operation's failure: SQLite's errors as the API's kinds."""
    if isinstance(error, RpcError | sqlite3.Error):
        return translate(error)
    return error  # a bug in an operation: the dispatcher logs it and answers "internal"
