"""The single writer: one connection, one bounded queue, group commit.

Callers put operations on an asyncio.Queue. The writer takes everything waiting (up to
`batch_max`), runs it on its own thread inside one `BEGIN IMMEDIATE … COMMIT`, each operation
in its own SAVEPOINT so a failing one rolls back alone. A caller's future resolves only after
COMMIT returned: an acknowledged write is a committed write. Change events are written in the
same transaction and handed to `publish` after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from daemon.clock import utc_now
from daemon.db import connection
from daemon.db import events as events_db
from daemon.db.errors import translate
from daemon.db.events import Event
from daemon.db.workers import ConnectionWorkers
from daemon.errors import Busy, RpcError, ShuttingDown
from daemon.stats import Window

T = TypeVar("T")


class Tx:
    """What an operation sees inside its savepoint: the connection, the batch's time, `emit`."""

    __slots__ = ("conn", "events", "now")

    def __init__(self, conn: sqlite3.Connection, now: str) -> None:
        self.conn = conn
        self.now = now
        self.events: list[tuple[str, Any]] = []

    def emit(self, type_: str, data: Any) -> None:
        """Record a change event (`topic.what`); it is stored and published only if this commits."""
        self.events.append((type_, data))


WriteFn = Callable[[Tx], T]


class _Op(Generic[T]):
    __slots__ = ("fn", "future", "taken")

    def __init__(self, fn: WriteFn[T], future: asyncio.Future[T]) -> None:
        self.fn = fn
        self.future = future
        self.taken = False  # handed to a batch: from here on it commits or fails, never vanishes


class _Aborted(Exception):
    """SQLite rolled back the whole transaction (disk full, I/O error): every op must fail."""


_WAKE: Any = object()


class WriterStats(msgspec.Struct, kw_only=True):
    batches: int
    writes: int
    failed_writes: int
    busy_rejections: int
    queue_depth: int
    queue_max: int
    queue_depth_peak: int
    batch_size_p50: float
    batch_size_p99: float
    batch_size_max: float
    commit_ms_p50: float
    commit_ms_p99: float
    batch_ms_p50: float
    batch_ms_p99: float


class Writer:
    def __init__(
        self,
        db_path: str,
        *,
        synchronous: connection.Synchronous = "FULL",
        busy_timeout_ms: int = 5000,
        batch_max: int = 512,
        queue_max: int = 4096,
        busy_wait_s: float = 2.0,
        publish: Callable[[list[Event]], None] | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._db_path = db_path
        self._synchronous: connection.Synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._batch_max = batch_max
        self._busy_wait_s = busy_wait_s
        self._publish = publish
        self._clock = clock
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_max)
        self._encoder = msgspec.json.Encoder()
        self._workers: ConnectionWorkers | None = None
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self.pragmas: connection.Pragmas | None = None
        self._closing = False
        self._abandon = False
        self._waiting_puts = 0
        # figures
        self._batches = self._writes = self._failed = self._busy = self._peak = 0
        self._batch_sizes = Window()
        self._commit_ms = Window()
        self._batch_ms = Window()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = ConnectionWorkers(
            "pm-writer",
            1,
            lambda: connection.open_writer(
                self._db_path,
                synchronous=self._synchronous,
                busy_timeout_ms=self._busy_timeout_ms,
            ),
            loop,
        )
        self._workers.start()
        self._seq = await self._workers.run(events_db.last_seq)
        self.pragmas = await self._workers.run(connection.pragmas)
        self._task = loop.create_task(self._run(), name="pm-writer")

    @property
    def last_seq(self) -> int:
        return self._seq

    async def submit(self, fn: WriteFn[T]) -> T:
        """Run `fn(tx)` in the next batch; returns its result once the batch has committed."""
        if self._closing or self._task is None:
            raise ShuttingDown("the daemon is shutting down; the write was not accepted")
        op: _Op[T] = _Op(fn, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(op)
        except asyncio.QueueFull:
            await self._wait_for_room(op)
        depth = self._queue.qsize()
        self._peak = max(self._peak, depth)
        try:
            return await asyncio.shield(op.future)
        except asyncio.CancelledError:
            if not op.taken:
                op.future.cancel()  # still queued: the writer will skip it
                raise
            # Already inside a batch: it commits or fails whatever the caller wants now, so
            # report what really happened rather than a cancellation that did not.
            return await op.future

    async def _wait_for_room(self, op: _Op[Any]) -> None:
        self._waiting_puts += 1
        try:
            await asyncio.wait_for(self._queue.put(op), self._busy_wait_s)
        except TimeoutError:
            self._busy += 1
            raise Busy(
                f"the write queue stayed full ({self._queue.maxsize} writes waiting) for "
                f"{self._busy_wait_s:g} s; nothing was written. Retry shortly.",
                queue_depth=self._queue.qsize(),
            ) from None
        finally:
            self._waiting_puts -= 1

    async def close(self, timeout: float = 10.0) -> None:
        """Stop taking writes, commit everything already queued, checkpoint, close."""
        if self._task is None or self._workers is None:
            return
        self._closing = True
        # A full queue means the writer is busy and notices `_closing` after this batch.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_WAKE)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            # Queued writes that never started fail with a clear error; the batch in progress
            # (bounded by busy_timeout) still finishes so nobody is left waiting.
            self._abandon = True
            if not self._queue.full():
                self._queue.put_nowait(_WAKE)
            await self._task
        self._fail_queued()
        # sqlite3.Error: a reader elsewhere holds the WAL; the next start checkpoints it.
        with contextlib.suppress(sqlite3.Error):
            await self._workers.run(_checkpoint)
        self._workers.stop()
        self._task = None

    def _fail_queued(self) -> None:
        while not self._queue.empty():
            op = self._queue.get_nowait()
            if op is not _WAKE and not op.future.done():
                op.future.set_exception(
                    ShuttingDown("the daemon stopped before this write could run; not written")
                )

    def _should_exit(self) -> bool:
        return self._closing and self._queue.empty() and self._waiting_puts == 0

    async def _run(self) -> None:
        assert self._workers is not None
        queue = self._queue
        while True:
            op = await queue.get()
            batch = [] if op is _WAKE else [op]
            while len(batch) < self._batch_max and not queue.empty():
                more = queue.get_nowait()
                if more is not _WAKE:
                    batch.append(more)
            if self._abandon:
                self._fail_batch(batch)
                self._fail_queued()
                return
            live = [o for o in batch if not o.future.cancelled()]
            if live:
                for o in live:
                    o.taken = True
                outcomes, events = await self._workers.run(self._run_batch, live)
                self._deliver(live, outcomes, events)
            if self._should_exit():
                return

    def _fail_batch(self, batch: list[_Op[Any]]) -> None:
        for o in batch:
            if not o.future.done():
                o.future.set_exception(ShuttingDown("the daemon stopped before this write ran"))

    def _deliver(
        self, ops: list[_Op[Any]], outcomes: list[tuple[bool, Any]], events: list[Event]
    ) -> None:
        for op, (ok, value) in zip(ops, outcomes, strict=True):
            if op.future.done():
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(_client_error(value))
        if events and self._publish is not None:
            self._publish(events)

    def _run_batch(
        self, conn: sqlite3.Connection, ops: list[_Op[Any]]
    ) -> tuple[list[tuple[bool, Any]], list[Event]]:
        """On the writer thread: one transaction, one savepoint per operation."""
        started = time.perf_counter()
        now = self._clock()
        seq = self._seq
        outcomes: list[tuple[bool, Any]] = []
        published: list[Event] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                seq, ok, value, new_events = self._run_one(conn, op, now, seq)
                outcomes.append((ok, value))
                published.extend(new_events)
            commit_started = time.perf_counter()
            conn.execute("COMMIT")
        except Exception as e:
            if conn.in_transaction:
                # Rolling back a failed transaction can fail too; the file stays intact.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            cause = e.__cause__ if isinstance(e, _Aborted) else e
            self._failed += len(ops)
            return [(False, cause)] * len(ops), []
        finished = time.perf_counter()
        self._seq = seq
        self._batches += 1
        self._writes += len(ops)
        self._failed += sum(1 for ok, _ in outcomes if not ok)
        self._batch_sizes.add(len(ops))
        self._commit_ms.add((finished - commit_started) * 1000)
        self._batch_ms.add((finished - started) * 1000)
        return outcomes, published

    def _run_one(
        self, conn: sqlite3.Connection, op: _Op[Any], now: str, seq: int
    ) -> tuple[int, bool, Any, list[Event]]:
        """One operation in its savepoint; returns the next free seq, outcome and its events."""
        tx = Tx(conn, now)
        conn.execute("SAVEPOINT op")
        try:
            value = op.fn(tx)
            new_events = []
            next_seq = seq
            for type_, data in tx.events:
                next_seq += 1
                event = Event(
                    next_seq,
                    now,
                    type_,
                    type_.partition(".")[0],
                    msgspec.Raw(self._encoder.encode(data)),
                )
                events_db.insert(conn, event)
                new_events.append(event)
            conn.execute("RELEASE op")
        except Exception as e:
            if not conn.in_transaction:
                raise _Aborted() from e
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            return seq, False, e, []
        return next_seq, True, value, new_events

    def stats(self) -> WriterStats:
        return WriterStats(
            batches=self._batches,
            writes=self._writes,
            failed_writes=self._failed,
            busy_rejections=self._busy,
            queue_depth=self._queue.qsize(),
            queue_max=self._queue.maxsize,
            queue_depth_peak=self._peak,
            batch_size_p50=self._batch_sizes.p(50),
            batch_size_p99=self._batch_sizes.p(99),
            batch_size_max=self._batch_sizes.max(),
            commit_ms_p50=round(self._commit_ms.p(50), 3),
            commit_ms_p99=round(self._commit_ms.p(99), 3),
            batch_ms_p50=round(self._batch_ms.p(50), 3),
            batch_ms_p99=round(self._batch_ms.p(99), 3),
        )


def _client_error(error: BaseException) -> BaseException:
    if isinstance(error, RpcError | sqlite3.Error):
        return translate(error)
    return error  # a bug in an operation: the dispatcher logs it and answers "internal"


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
