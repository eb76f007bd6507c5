"""The database as the rest of the daemon sees it: migrate, write through the writer, read.

`exclusive(fn)` pauses it: new reads and writes wait (they are not refused), everything
already queued is committed, the writer and readers close, `fn` runs in a thread with the
file closed (a restore swaps it), and a fresh writer and readers open it again.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from daemon.rpc.errors import ShuttingDown
from daemon.rpc.fairness import read_share
from daemon.store import connection, migrations
from daemon.store.batch import WriteFn
from daemon.store.cancellation import settle
from daemon.store.events import Event
from daemon.store.inline_reads import InlineReads, ReadStats, tried_elsewhere
from daemon.store.migrations import Migration
from daemon.store.workers import ConnectionWorkers, WorkersStopped
from daemon.store.writer import Writer, WriterClosed
from daemon.store.writer_stats import WriterStats

T = TypeVar("T")


class Database:
    def __init__(
        self,
        path: str,
        *,
        synchronous: connection.Synchronous = "FULL",
        busy_timeout_ms: int = 5000,
        readers: int = 2,
        batch_max: int = 512,
        queue_max: int = 4096,
        busy_wait_s: float = 2.0,
        publish: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.path = path
        self._synchronous: connection.Synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._reader_count = readers

        def new_writer() -> Writer:
            return Writer(
                path,
                synchronous=synchronous,
                busy_timeout_ms=busy_timeout_ms,
                batch_max=batch_max,
                queue_max=queue_max,
                busy_wait_s=busy_wait_s,
                publish=publish,
            )

        self._new_writer = new_writer
        self.writer = new_writer()
        self._readers: ConnectionWorkers | None = None
        self._inline: InlineReads | None = None  # reads tried on the loop's thread first
        self.schema_version = 0
        self._open = asyncio.Event()  # cleared while `exclusive` has the file closed
        self._open.set()
        self._exclusive = asyncio.Lock()
        self._pausing = False
        self._closed = False
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened

    def migrate(
        self,
        shipped: list[Migration],
        on_step: Callable[[Migration], None] | None = None,
        before: Callable[[list[Migration]], None] | None = None,
    ) -> list[Migration]:
        """Bring the schema up to date. Blocking: call it from a thread, before `start`.
        `before(pending)` runs first when a database with data has migrations pending."""
        conn = connection.open_writer(
            self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
        )
        try:
            todo = migrations.pending(conn, shipped)
            if todo and before is not None and migrations.schema_version(conn) > 0:
                before(todo)
            done = migrations.migrate(conn, shipped, on_step)
            self.schema_version = migrations.schema_version(conn)
        finally:
            conn.close()
        _tighten(self.path)
        return done

    async def start(self) -> None:
        await self.writer.start()
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)
        await asyncio.to_thread(self._start_readers, asyncio.get_running_loop())

    def _start_readers(self, loop: asyncio.AbstractEventLoop) -> None:
        readers = ConnectionWorkers(
            "pm-reader",
            self._reader_count,
            lambda: connection.open_reader(self.path, busy_timeout_ms=self._busy_timeout_ms),
            loop,
        )
        readers.start()
        self._readers = readers
        self._inline = InlineReads(
            connection.open_reader(self.path, busy_timeout_ms=self._busy_timeout_ms)
        )

    async def write(self, fn: WriteFn[T], *, heavy: bool = False) -> T:
        """`Writer.submit`: `fn(tx)` in the next batch, its result once committed. `heavy`
        for a write whose work grows with the data it meets (many rows, a whole project)."""
        result: T = await self._through_writer(fn, raw=False, heavy=heavy)
        return result

    async def maintain(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`Writer.maintain`: `fn(connection)` between two batches, outside any transaction."""
        result: T = await self._through_writer(fn, raw=True, heavy=True)
        return result

    async def _through_writer(self, fn: Any, *, raw: bool, heavy: bool) -> Any:
        while True:
            while not self._open.is_set():  # re-checked: see `read`
                await self._open.wait()
            writer = self.writer
            try:
                return await (writer.maintain(fn) if raw else writer.submit(fn, heavy=heavy))
            except WriterClosed:
                # Closed for `exclusive` before this write ran: it waits for the next writer.
                if self._closed or (not self._pausing and writer is self.writer):
                    raise

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)` on a reader; it sees every write acknowledged before.
        A client's read waits for its connection's share of the readers (daemon.rpc.fairness),
        then is tried on the loop's thread within a budget (daemon.store.inline_reads), and
        goes to a reader thread if it is long."""
        share = read_share.get()
        if share is not None and not share.take():
            await share.wait_turn()
        try:  # (one coroutine, no helper: this is every read's path)
            inline = self._inline
            if inline is not None and self._open.is_set():
                value = inline.try_read(fn, args)
                if not tried_elsewhere(value):
                    return value  # type: ignore[no-any-return]
            while True:
                # Re-checked after every wake-up: another `exclusive` may have paused again
                # between the one that woke this read and the read running.
                while not self._open.is_set():
                    await self._open.wait()
                readers = self._readers
                if readers is None:
                    raise ShuttingDown("the database is closed; the read did not run")
                try:
                    return await readers.run(fn, *args)
                except WorkersStopped as stopped:
                    # Stopped for `exclusive` before this read ran: it waits for new readers.
                    if self._closed:
                        raise ShuttingDown(
                            "the daemon is shutting down; the read did not run"
                        ) from stopped
        finally:
            if share is not None:
                share.give_back()

    def file_state(self) -> Literal["ok", "missing", "replaced"]:
        """Is the file the daemon has open still the one at its path? (Someone may delete or
        replace it under a running daemon; the open connections would go on with the old.)
        While `exclusive` runs the daemon itself is changing the file: "ok"."""
        if self._pausing:
            return "ok"
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "missing"
        return "ok" if (st.st_dev, st.st_ino) == self._identity else "replaced"

    async def exclusive(
        self, fn: Callable[[int], T], last: Callable[[sqlite3.Connection], None] | None = None
    ) -> T:
        """Drain and pause, run `fn(events_seen)` in a thread with the file closed, reopen.

        `events_seen` is the last event seq handed out, so a swapped-in file can continue
        above it. `last(connection)` runs on the writer's connection after its last batch;
        if it fails, `fn` does not run and its error is raised. Whatever happens, a fresh
        writer and readers open the file again (`fn` must leave a usable file behind).
        """
        # Once begun it runs to its end: a caller cancelled half-way must not leave the
        # writer closed or the readers stopped under an open gate.
        return await settle(self._exclusive_run(fn, last))

    async def _exclusive_run(
        self, fn: Callable[[int], T], last: Callable[[sqlite3.Connection], None] | None
    ) -> T:
        async with self._exclusive:
            self._pausing = True
            self._open.clear()
            try:
                closing_error: Exception | None = None
                try:
                    await self.writer.close(last=last)
                except Exception as e:
                    closing_error = e
                seen = self.writer.last_seq
                self._close_inline()
                if self._readers is not None:
                    await asyncio.to_thread(self._readers.stop)
                    self._readers = None
                try:
                    if closing_error is not None:
                        raise closing_error
                    return await asyncio.to_thread(fn, seen)
                finally:
                    self.writer = self._new_writer()
                    await self.start()
                    assert self._readers is not None
                    self.schema_version = await self._readers.run(_version)
            finally:
                self._pausing = False
                self._open.set()

    def _close_inline(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    def writer_stats(self) -> WriterStats:
        return self.writer.stats()

    def read_stats(self) -> ReadStats | None:
        """Where reads ran since the database was last opened (None while it is not)."""
        return self._inline.stats() if self._inline is not None else None

    async def close(self, timeout: float = 10.0) -> None:
        self._closed = True
        self._open.set()  # a paused caller wakes and hears "shutting down"
        await self.writer.close(timeout)
        self._close_inline()
        if self._readers is not None:
            self._readers.stop()
            self._readers = None


def _version(conn: sqlite3.Connection) -> int:
    return migrations.schema_version(conn)


def _tighten(path: str) -> None:
    """Database files are 0600 even if an older tool created them wider."""
    for suffix in ("", "-wal", "-shm"):
        try:
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            continue
