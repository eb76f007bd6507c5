"""The single writer: one connection, one bounded queue, group commit.

Callers queue operations; everything waiting when a batch starts (up to `batch_max`) runs
inside one `BEGIN IMMEDIATE … COMMIT`, each operation in its own SAVEPOINT so a failing one
rolls back alone (daemon.store.batch). A caller's future resolves only after COMMIT returned:
an acknowledged write is a committed write. Change events are written in the same
transaction and handed to `publish` after the commit.

Where a batch runs is what makes the writer fast. Handing each statement to another thread
costs a cross-core wake-up and a GIL hand-over per SQLite call (measured: a batch of 32 took
2.4-2.9 ms that way against ~0.7 ms alone, bench/RESULTS.md "The hand-off tax"), so the event
loop runs a batch's operations itself, for at most INLINE_BUDGET_S, and hands only the rest,
the operations marked heavy and the COMMIT (it waits for fsync, without the GIL) to the
writer's thread: two hand-offs per batch instead of several per operation. While the thread
commits, the loop serves other clients and collects the next batch. A write to another
process's lock (BEGIN IMMEDIATE is refused at once on the loop) waits on the thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

import msgspec

from daemon.rpc.errors import Busy, ShuttingDown
from daemon.store import connection
from daemon.store import events as events_db
from daemon.store.batch import (
    Batch,
    Outcome,
    Tx,
    WriteFn,
    begun_here,
    cause,
    client_error,
    roll_back,
)  # fmt: skip
from daemon.store.cancellation import outcome_over_cancel, wait_set
from daemon.store.clock import utc_now
from daemon.store.events import Event
from daemon.store.stats import Window
from daemon.store.writer_stats import Stages, WriterStats

__all__ = ["Tx", "WriteFn", "Writer", "WriterClosed", "heavy_write"]

T = TypeVar("T")

# How long the event loop runs a batch's operations before the thread takes the rest. An
# operation is not interrupted (interrupting a write rolls back its whole transaction), so
# the loop may be held this long plus one operation.
INLINE_BUDGET_S = 0.002
# Set for a request whose message is larger than this many bytes (by the dispatcher): its
# writes run on the writer's thread, since the work of most writes grows with their input
# (full-text indexing a long document takes ~100 ns a byte).
HEAVY_REQUEST_BYTES = 16 * 1024
heavy_write: ContextVar[bool] = ContextVar("heavy_write", default=False)


class _Op(Generic[T]):
    __slots__ = ("fn", "future", "heavy", "queued", "raw", "taken")

    def __init__(
        self, fn: Any, future: asyncio.Future[T], *, raw: bool = False, heavy: bool = False
    ) -> None:
        self.fn = fn  # fn(tx) in a batch; fn(connection) alone when raw
        self.future = future
        self.raw = raw  # maintenance: runs between batches, outside any transaction
        self.heavy = heavy  # runs on the writer's thread, not the loop
        self.taken = False  # handed to a batch: from here on it commits or fails, never vanishes
        self.queued = time.perf_counter()


class WriterClosed(ShuttingDown):
    """This writer was closed before the operation ran: nothing of it was written."""


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
        self._queue_max = queue_max
        self._busy_wait_s = busy_wait_s
        self._publish = publish
        self._clock = clock
        self._encoder = msgspec.json.Encoder()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._conn: sqlite3.Connection | None = None  # used by one thread at a time
        self._pending: collections.deque[_Op[Any]] = collections.deque()
        self._running = False  # a batch or maintenance step holds the connection
        self._kicked = False  # a call to `_next` is scheduled
        self._changed: asyncio.Event | None = None  # a batch ended or the queue shrank
        self._seq = 0
        self.pragmas: connection.Pragmas | None = None
        self._started = False
        self._closing = False
        self._abandon = False
        self._waiting_puts = 0
        # figures
        self._batches = self._on_thread = self._writes = self._failed = 0
        self._busy = self._peak = 0
        self._batch_sizes = Window()
        self._stages = Stages()
        self._batch_ms = Window()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._thread = threading.Thread(target=self._serve, name="pm-writer", daemon=True)
        self._thread.start()
        opened: asyncio.Future[None] = self._loop.create_future()
        self._jobs.put((self._open, (opened,)))
        try:
            await opened
        except BaseException:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
            raise
        self._started = True

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def queue_depth(self) -> int:
        """Writes waiting for a batch."""
        return len(self._pending)

    async def submit(self, fn: WriteFn[T], *, heavy: bool = False) -> T:
        """Run `fn(tx)` in the next batch; returns its result once the batch has committed.
        `heavy`: it may take long (many rows), so it runs on the writer's thread."""
        result: T = await self._submit(fn, raw=False, heavy=heavy or heavy_write.get())
        return result

    async def maintain(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the writer's thread between two batches, outside any
        transaction (a WAL checkpoint, PRAGMA optimize, VACUUM INTO). It waits its turn in the
        queue like a write, so nothing else writes meanwhile."""
        result: T = await self._submit(fn, raw=True, heavy=True)
        return result

    async def _submit(self, fn: Any, *, raw: bool, heavy: bool) -> Any:
        if self._closing or not self._started:
            raise WriterClosed("the daemon is shutting down; the write was not accepted")
        loop = self._loop  # set by start (asking asyncio costs a getpid() system call)
        assert loop is not None
        op: _Op[Any] = _Op(fn, loop.create_future(), raw=raw, heavy=heavy)
        if len(self._pending) >= self._queue_max:
            await self._wait_for_room()
        self._pending.append(op)
        self._peak = max(self._peak, len(self._pending))
        self._kick()
        future = op.future
        try:
            return await future
        except asyncio.CancelledError:
            if not op.taken:
                raise  # still queued: its future is cancelled, `_take` skips it
            # Already in a batch: it commits or fails whatever the caller wants now.
            if not (future.done() and not future.cancelled()):
                op.future = loop.create_future()  # the writer answers this one instead
                future = op.future
                await asyncio.shield(future)
            if outcome_over_cancel.get():
                return future.result()  # a client hears what really happened
            raise  # internal work: the outcome is settled, the cancellation goes on

    async def _wait_for_room(self) -> None:
        assert self._loop is not None and self._changed is not None
        deadline = self._loop.time() + self._busy_wait_s
        self._waiting_puts += 1
        try:
            while len(self._pending) >= self._queue_max:
                if self._abandon:
                    raise WriterClosed("the daemon stopped before this write could run")
                left = deadline - self._loop.time()
                if left <= 0:
                    self._busy += 1
                    raise Busy(
                        f"the write queue stayed full ({self._queue_max} writes waiting) for "
                        f"{self._busy_wait_s:g} s; nothing was written. Retry shortly.",
                        queue_depth=self.queue_depth,
                    )
                self._changed.clear()
                await wait_set(self._changed, left)
        finally:
            self._waiting_puts -= 1

    async def close(
        self, timeout: float = 10.0, last: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        """Stop taking writes, commit everything already queued, checkpoint, close.
        `last(connection)` runs on the writer's thread after the last batch, before the
        connection closes (the rescue of a file deleted under the daemon copies it then);
        what it raises is raised here once the writer is closed."""
        if not self._started or self._thread is None or self._loop is None:
            return
        self._closing = True
        try:
            await asyncio.wait_for(self._settled(lambda: not self._pending), timeout)
        except TimeoutError:
            # Writes still queued never started: they fail with a clear error. The batch
            # running (bounded by busy_timeout) still commits, so nothing taken vanishes.
            self._abandon = True
            self._fail_queued()
            await self._settled(lambda: True)
        closed: asyncio.Future[None] = self._loop.create_future()
        self._jobs.put((self._close_connection, (closed, last)))
        self._jobs.put(None)
        try:
            await closed
        finally:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
            self._started = False
            self._fail_queued()

    async def _settled(self, done: Callable[[], bool]) -> None:
        """Wait until no batch runs, nobody waits for room, and `done()`."""
        assert self._changed is not None
        while self._running or self._waiting_puts or not done():
            self._changed.clear()
            await self._changed.wait()

    def _fail_queued(self) -> None:
        while self._pending:
            op = self._pending.popleft()
            if not op.future.done():
                op.future.set_exception(
                    WriterClosed("the daemon stopped before this write could run; not written")
                )
        self._note_change()

    # --- the loop's side: batches start here ------------------------------------------------
    def _kick(self) -> None:
        if not self._running and not self._kicked:
            assert self._loop is not None
            self._kicked = True
            # call_soon: whatever else arrives in this turn of the loop joins the batch
            self._loop.call_soon(self._next)

    def _next(self) -> None:
        self._kicked = False
        if self._running or self._abandon:
            return
        ops = self._take()
        if not ops:
            return
        self._running = True
        if ops[0].raw:
            self._jobs.put((self._run_raw, (ops[0],)))
            return
        batch: Batch[Any] = Batch([op.fn for op in ops], self._clock(), self._seq)
        light = next((i for i, op in enumerate(ops) if op.heavy), len(ops))
        conn = self._conn
        assert conn is not None
        if light == 0 or not begun_here(conn):
            self._on_thread += 1
            batch.handed = time.perf_counter()
            self._jobs.put((self._finish_on_thread, (ops, batch, True)))
            return
        try:
            batch.run(conn, self._encoder, until=batch.started + INLINE_BUDGET_S, end=light)
            if batch.finished:
                batch.store_events(conn)
        except Exception as e:  # the transaction is gone (disk full, I/O error)
            roll_back(conn)
            self._delivered(ops, batch, cause(e))
            return
        if not batch.finished:
            self._on_thread += 1
        batch.handed = time.perf_counter()
        self._jobs.put((self._finish_on_thread, (ops, batch, False)))

    def _take(self) -> list[_Op[Any]]:
        """The next batch: queued writes up to `batch_max`, or one maintenance step alone."""
        pending = self._pending
        ops: list[_Op[Any]] = []
        while pending and len(ops) < self._batch_max:
            if pending[0].future.cancelled():  # cancelled while queued: never runs
                pending.popleft()
                continue
            if pending[0].raw and ops:
                break
            op = pending.popleft()
            op.taken = True
            ops.append(op)
            if op.raw:
                break
        self._note_change()
        return ops

    def _delivered(
        self, ops: list[_Op[Any]], batch: Batch[Any] | None, error: BaseException | None
    ) -> None:
        """On the loop, after a batch: resolve its futures, publish its events, go on."""
        self._running = False
        outcomes: list[Outcome]
        events: list[Event] = []
        if error is not None or batch is None:
            self._failed += len(ops)
            outcomes = [(False, error)] * len(ops)
        else:
            outcomes, events = batch.outcomes, batch.events
            self._seq = batch.seq
            self._batches += 1
            self._writes += len(ops)
            self._failed += sum(1 for ok, _ in outcomes if not ok)
            self._batch_sizes.add(len(ops))
            delivered = time.perf_counter()
            self._stages.add(batch, ops[0].queued, delivered)
            self._batch_ms.add((delivered - batch.started) * 1000)
        for op, (ok, value) in zip(ops, outcomes, strict=True):
            if op.future.done():
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(client_error(value))
        if events and self._publish is not None:
            self._publish(events)
        self._note_change()
        if self._pending:
            self._kick()  # after the replies just scheduled: they go out first

    def _raw_done(self, op: _Op[Any], outcome: Outcome) -> None:
        self._running = False
        ok, value = outcome
        if not op.future.done():
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(client_error(value))
        self._note_change()
        if self._pending:
            self._kick()

    def _note_change(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # --- the thread's side: open, the rest of a batch, COMMIT, maintenance, close -----------
    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args = job
            fn(*args)

    def _open(self, opened: asyncio.Future[None]) -> None:
        try:
            conn = connection.open_writer(
                self._db_path,
                synchronous=self._synchronous,
                busy_timeout_ms=self._busy_timeout_ms,
            )
            self._seq = events_db.last_seq(conn)
            self.pragmas = connection.pragmas(conn)
            # The loop must never wait for a lock: it is told "busy" at once and hands the
            # batch here, where `_patient` waits (tests/test_writer.py holds the lock).
            conn.execute("PRAGMA busy_timeout = 0")
            self._conn = conn
        except BaseException as e:
            self._call_on_loop(_settle_future, opened, False, e)
            return
        self._call_on_loop(_settle_future, opened, True, None)

    @contextlib.contextmanager
    def _patient(self, conn: sqlite3.Connection) -> Any:
        """The configured busy_timeout, for work on this thread (0 again after)."""
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA busy_timeout = 0")

    def _finish_on_thread(self, ops: list[_Op[Any]], batch: Batch[Any], begin: bool) -> None:
        batch.on_thread = time.perf_counter()
        conn = self._conn
        assert conn is not None
        error: BaseException | None = None
        try:
            if begin:
                with self._patient(conn):
                    conn.execute("BEGIN IMMEDIATE")
            batch.run(conn, self._encoder)
            batch.commit(conn)
        except Exception as e:
            roll_back(conn)
            error = cause(e)
        self._call_on_loop(self._delivered, ops, batch, error)

    def _run_raw(self, op: _Op[Any]) -> None:
        conn = self._conn
        assert conn is not None
        outcome: Outcome
        try:
            with self._patient(conn):
                outcome = (True, op.fn(conn))
        except Exception as e:
            outcome = (False, e)
        finally:
            roll_back(conn)  # a maintenance step must not leave a transaction open
        self._call_on_loop(self._raw_done, op, outcome)

    def _close_connection(
        self,
        closed: asyncio.Future[None],
        last: Callable[[sqlite3.Connection], None] | None,
    ) -> None:
        conn = self._conn
        assert conn is not None
        error: BaseException | None = None
        try:
            with self._patient(conn):
                if last is not None:
                    try:
                        last(conn)
                    except Exception as e:
                        error = e
                # sqlite3.Error: a reader elsewhere holds the WAL; the next start checkpoints.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.close()
            self._conn = None
        self._call_on_loop(_settle_future, closed, error is None, error)

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, *args)

    def stats(self) -> WriterStats:
        return WriterStats(
            batches=self._batches,
            batches_on_thread=self._on_thread,
            writes=self._writes,
            failed_writes=self._failed,
            busy_rejections=self._busy,
            queue_depth=self.queue_depth,
            queue_max=self._queue_max,
            queue_depth_peak=self._peak,
            batch_size_p50=self._batch_sizes.p(50),
            batch_size_p99=self._batch_sizes.p(99),
            batch_size_max=self._batch_sizes.max(),
            commit_ms_p50=round(self._stages.commit.p(50), 3),
            commit_ms_p99=round(self._stages.commit.p(99), 3),
            batch_ms_p50=round(self._batch_ms.p(50), 3),
            batch_ms_p99=round(self._batch_ms.p(99), 3),
            stages=self._stages.summary(),
        )


def _settle_future(future: asyncio.Future[None], ok: bool, error: BaseException | None) -> None:
    if future.done():
        return
    if ok:
        future.set_result(None)
    else:
        assert error is not None
        future.set_exception(error)
