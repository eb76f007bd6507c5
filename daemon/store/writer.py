"""The single writer: one connection, one bounded queue, group commit.

Callers put operations on a bounded asyncio.Queue. A pump on the event loop moves what is
queued (up to `batch_max` at a time) to the writer thread, which owns the one write connection
and runs everything waiting inside one `BEGIN IMMEDIATE … COMMIT`, each operation in its own
SAVEPOINT so a failing one rolls back alone. A caller's future resolves only after COMMIT
returned: an acknowledged write is a committed write. Change events are written in the same
transaction and handed to `publish` after the commit.

The thread starts the next batch as soon as one commits, with whatever the pump staged
meanwhile: no round trip through the event loop between batches (a wake-up of the other
thread costs ~65 µs on a small VM, a quarter of a batch).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from daemon.rpc.errors import Busy, RpcError, ShuttingDown
from daemon.store import connection
from daemon.store import events as events_db
from daemon.store.cancellation import outcome_over_cancel
from daemon.store.clock import utc_now
from daemon.store.errors import translate
from daemon.store.events import Event
from daemon.store.events_catalogue import EventKind
from daemon.store.stats import Window

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


class _Op(Generic[T]):
    __slots__ = ("fn", "future", "raw", "taken")

    def __init__(self, fn: Any, future: asyncio.Future[T], *, raw: bool = False) -> None:
        self.fn = fn  # fn(tx) in a batch; fn(connection) alone when raw
        self.future = future
        self.raw = raw  # maintenance: runs between batches, outside any transaction
        self.taken = False  # handed to a batch: from here on it commits or fails, never vanishes


class _Aborted(Exception):
    """SQLite rolled back the whole transaction (disk full, I/O error): every op must fail."""


class WriterClosed(ShuttingDown):
    """This writer was closed before the operation ran: nothing of it was written."""


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        # Handed from the pump to the thread; deque appends and pops are atomic.
        self._staged: collections.deque[_Op[Any]] = collections.deque()
        self._wake = threading.Event()  # something was staged, or the thread should stop
        self._room: asyncio.Event | None = None  # a batch finished: staging may go on
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread_stop = False
        self._pump_waiting = False
        self._seq = 0
        self.pragmas: connection.Pragmas | None = None
        self._closing = False
        self._abandon = False
        self._waiting_puts = 0
        self._last: Callable[[sqlite3.Connection], None] | None = None
        self._last_error: Exception | None = None
        # figures
        self._batches = self._writes = self._failed = self._busy = self._peak = 0
        self._batch_sizes = Window()
        self._commit_ms = Window()
        self._batch_ms = Window()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Event()
        self._thread = threading.Thread(target=self._thread_main, name="pm-writer", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._opened.wait)
        if self._open_error is not None:
            self._thread.join()
            self._thread = None
            raise self._open_error
        self._pump_task = self._loop.create_task(self._pump(), name="pm-writer-pump")

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def queue_depth(self) -> int:
        """Writes waiting: in the queue, plus those staged for the writer's next batch."""
        return self._queue.qsize() + len(self._staged)

    async def submit(self, fn: WriteFn[T]) -> T:
        """Run `fn(tx)` in the next batch; returns its result once the batch has committed."""
        result: T = await self._submit(fn, raw=False)
        return result

    async def maintain(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the writer's thread between two batches, outside any
        transaction (a WAL checkpoint, PRAGMA optimize, VACUUM INTO). It waits its turn in the
        queue like a write, so nothing else writes meanwhile."""
        result: T = await self._submit(fn, raw=True)
        return result

    async def _submit(self, fn: Any, *, raw: bool) -> Any:
        if self._closing or self._pump_task is None:
            raise WriterClosed("the daemon is shutting down; the write was not accepted")
        loop = asyncio.get_running_loop()
        op: _Op[Any] = _Op(fn, loop.create_future(), raw=raw)
        try:
            self._queue.put_nowait(op)
        except asyncio.QueueFull:
            await self._wait_for_room(op)
        self._peak = max(self._peak, self.queue_depth)
        future = op.future
        try:
            return await future
        except asyncio.CancelledError:
            if not op.taken:
                raise  # still queued: its future is cancelled, the pump skips it
            # Already staged for a batch: it commits or fails whatever the caller wants now.
            if not (future.done() and not future.cancelled()):
                op.future = loop.create_future()  # the writer answers this one instead
                future = op.future
                await asyncio.shield(future)
            if outcome_over_cancel.get():
                return future.result()  # a client hears what really happened
            raise  # internal work: the outcome is settled, the cancellation goes on

    async def _wait_for_room(self, op: _Op[Any]) -> None:
        self._waiting_puts += 1
        try:
            await asyncio.wait_for(self._queue.put(op), self._busy_wait_s)
        except TimeoutError:
            self._busy += 1
            raise Busy(
                f"the write queue stayed full ({self._queue.maxsize} writes waiting) for "
                f"{self._busy_wait_s:g} s; nothing was written. Retry shortly.",
                queue_depth=self.queue_depth,
            ) from None
        finally:
            self._waiting_puts -= 1

    async def close(
        self, timeout: float = 10.0, last: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        """Stop taking writes, commit everything already queued, checkpoint, close.
        `last(connection)` runs on the writer's thread after the last batch, before the
        connection closes (the rescue of a file deleted under the daemon copies it then);
        what it raises is raised here once the writer is closed."""
        if self._pump_task is None or self._thread is None:
            return
        self._last = last
        self._closing = True
        # A full queue means the pump is busy and notices `_closing` soon anyway.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_WAKE)
        try:
            await asyncio.wait_for(asyncio.shield(self._pump_task), timeout)
        except TimeoutError:
            # Writes still queued never started: they fail with a clear error. What is
            # staged (bounded by busy_timeout per batch) still commits, so nobody is left
            # waiting and nothing handed to the writer vanishes.
            self._abandon = True
            if self._room is not None:
                self._room.set()
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_WAKE)
            await self._pump_task
        self._thread_stop = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
        await asyncio.sleep(0)  # let the last deliveries the thread posted run
        self._fail_queued()
        self._pump_task = None
        self._thread = None
        if self._last_error is not None:
            raise self._last_error

    def _fail_queued(self) -> None:
        while not self._queue.empty():
            op = self._queue.get_nowait()
            if op is not _WAKE and not op.future.done():
                op.future.set_exception(
                    WriterClosed("the daemon stopped before this write could run; not written")
                )

    def _should_exit(self) -> bool:
        return self._closing and self._queue.empty() and self._waiting_puts == 0

    # --- the loop's side: move queued operations to the thread ---------------------------
    async def _pump(self) -> None:
        queue = self._queue
        room = self._room
        assert room is not None
        while not self._abandon:
            if len(self._staged) >= self._batch_max:
                room.clear()
                self._pump_waiting = True
                await room.wait()
                self._pump_waiting = False
                continue
            op = await queue.get()
            self._stage(op)
            while not queue.empty() and len(self._staged) < self._batch_max:
                self._stage(queue.get_nowait())
            self._wake.set()
            if self._should_exit():
                return
        self._fail_queued()

    def _stage(self, op: _Op[Any]) -> None:
        if op is _WAKE or op.future.cancelled():
            return
        op.taken = True
        self._staged.append(op)

    def _deliver(
        self, ops: list[_Op[Any]], outcomes: list[tuple[bool, Any]], events: list[Event]
    ) -> None:
        """On the loop, after a batch: resolve its futures, then publish its events."""
        for op, (ok, value) in zip(ops, outcomes, strict=True):
            if op.future.done():
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(_client_error(value))
        self._make_room()
        if events and self._publish is not None:
            self._publish(events)

    # --- the thread's side: the connection and the batches --------------------------------
    def _thread_main(self) -> None:
        try:
            conn = connection.open_writer(
                self._db_path,
                synchronous=self._synchronous,
                busy_timeout_ms=self._busy_timeout_ms,
            )
            self._seq = events_db.last_seq(conn)
            self.pragmas = connection.pragmas(conn)
        except BaseException as e:
            self._open_error = e
            self._opened.set()
            return
        self._opened.set()
        try:
            self._serve(conn)
            if self._last is not None:
                try:
                    self._last(conn)
                except Exception as e:
                    self._last_error = e
            # sqlite3.Error: a reader elsewhere holds the WAL; the next start checkpoints it.
            with contextlib.suppress(sqlite3.Error):
                _checkpoint(conn)
        finally:
            conn.close()

    def _serve(self, conn: sqlite3.Connection) -> None:
        staged = self._staged
        while True:
            self._wake.wait()
            self._wake.clear()
            while staged:
                if staged[0].raw:
                    op = staged.popleft()
                    self._post([op], [self._run_raw(conn, op)], [])
                    continue
                batch: list[_Op[Any]] = []
                while staged and len(batch) < self._batch_max and not staged[0].raw:
                    batch.append(staged.popleft())
                if self._pump_waiting:
                    self._call_on_loop(self._make_room)  # staging was full: it may go on
                outcomes, events = self._run_batch(conn, batch)
                self._post(batch, outcomes, events)
            if self._thread_stop and not staged:
                return

    @staticmethod
    def _run_raw(conn: sqlite3.Connection, op: _Op[Any]) -> tuple[bool, Any]:
        try:
            return True, op.fn(conn)
        except Exception as e:
            return False, e
        finally:
            if conn.in_transaction:  # a maintenance step must not leave one open
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    def _post(
        self, ops: list[_Op[Any]], outcomes: list[tuple[bool, Any]], events: list[Event]
    ) -> None:
        self._call_on_loop(self._deliver, ops, outcomes, events)

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, *args)

    def _make_room(self) -> None:
        if self._room is not None:
            self._room.set()

    def _run_batch(
        self, conn: sqlite3.Connection, ops: list[_Op[Any]]
    ) -> tuple[list[tuple[bool, Any]], list[Event]]:
        """On the writer thread: one transaction, one savepoint per operation.

        The events of the operations that succeeded are written at the end of the same
        transaction, all in a few statements: an operation that rolled back left none.
        """
        started = time.perf_counter()
        now = self._clock()
        seq = self._seq
        outcomes: list[tuple[bool, Any]] = []
        published: list[Event] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                ok, value, emitted = self._run_one(conn, op, now)
                outcomes.append((ok, value))
                for kind, data in emitted:
                    seq += 1
                    encoded = data if isinstance(data, msgspec.Raw) else self._encoder.encode(data)
                    published.append(Event(seq, now, kind.name, kind.topic, msgspec.Raw(encoded)))
            events_db.insert_many(conn, published)
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
        self, conn: sqlite3.Connection, op: _Op[Any], now: str
    ) -> tuple[bool, Any, list[tuple[EventKind[Any], Any]]]:
        """One operation in its savepoint: its outcome and the events it emitted."""
        tx = Tx(conn, now)
        conn.execute("SAVEPOINT op")
        try:
            value = op.fn(tx)
            conn.execute("RELEASE op")
        except Exception as e:
            if not conn.in_transaction:
                raise _Aborted() from e
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            return False, e, []
        return True, value, tx.events

    def stats(self) -> WriterStats:
        return WriterStats(
            batches=self._batches,
            writes=self._writes,
            failed_writes=self._failed,
            busy_rejections=self._busy,
            queue_depth=self.queue_depth,
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
