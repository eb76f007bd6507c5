"""The database as the rest of the daemon sees it: migrate, write through the writer, read."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

from daemon.db import connection, migrations
from daemon.db.events import Event
from daemon.db.migrations import Migration
from daemon.db.workers import ConnectionWorkers
from daemon.db.writer import WriteFn, Writer, WriterStats

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
        self.writer = Writer(
            path,
            synchronous=synchronous,
            busy_timeout_ms=busy_timeout_ms,
            batch_max=batch_max,
            queue_max=queue_max,
            busy_wait_s=busy_wait_s,
            publish=publish,
        )
        self._readers: ConnectionWorkers | None = None
        self.schema_version = 0

    def migrate(
        self, shipped: list[Migration], on_step: Callable[[Migration], None] | None = None
    ) -> list[Migration]:
        """Bring the schema up to date. Blocking: call it from a thread, before `start`."""
        conn = connection.open_writer(
            self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
        )
        try:
            done = migrations.migrate(conn, shipped, on_step)
            self.schema_version = migrations.schema_version(conn)
        finally:
            conn.close()
        _tighten(self.path)
        return done

    async def start(self) -> None:
        await self.writer.start()
        self._readers = ConnectionWorkers(
            "pm-reader",
            self._reader_count,
            lambda: connection.open_reader(self.path, busy_timeout_ms=self._busy_timeout_ms),
            asyncio.get_running_loop(),
        )
        self._readers.start()

    async def write(self, fn: WriteFn[T]) -> T:
        return await self.writer.submit(fn)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)` on a reader; it sees every write acknowledged before."""
        assert self._readers is not None, "Database.start() first"
        return await self._readers.run(fn, *args)

    def writer_stats(self) -> WriterStats:
        return self.writer.stats()

    async def close(self, timeout: float = 10.0) -> None:
        await self.writer.close(timeout)
        if self._readers is not None:
            self._readers.stop()
            self._readers = None


def _tighten(path: str) -> None:
    """Database files are 0600 even if an older tool created them wider."""
    for suffix in ("", "-wal", "-shm"):
        try:
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            continue
