"""The database's own upkeep, as scheduler job functions (`fn(report) -> result`).

- maintenance: a WAL checkpoint (TRUNCATE) and `PRAGMA optimize`, on the writer's connection
  between two batches (`Writer.maintain`), so nothing else writes meanwhile.
- retention: events older than `event_retention_days`, and the oldest beyond the newest
  `event_retention_max`, deleted in chunks of a few thousand, each its own write operation, so
  other writes interleave and the writer is never held long.

Build them with `maintenance_job(db)` and `retention_job(db, days, max_events)` and register
the results.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec

from daemon.runtime.scheduler import JobFn, Report
from daemon.store.batch import Tx
from daemon.store.clock import iso
from daemon.store.database import Database

RETENTION_CHUNK = 5000


class MaintenanceResult(msgspec.Struct, kw_only=True):
    checkpoint_busy: bool  # a reader kept part of the WAL: the next checkpoint gets it
    wal_pages: int
    checkpointed_pages: int
    optimized: bool


class RetentionResult(msgspec.Struct, kw_only=True):
    cutoff: str | None  # events before this moment were deleted; null: retention is off
    deleted_events: int
    deleted_over_count: int = 0  # the oldest beyond event_retention_max


def _maintain(conn: sqlite3.Connection) -> MaintenanceResult:
    busy, wal_pages, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.execute("PRAGMA optimize").fetchall()
    return MaintenanceResult(
        checkpoint_busy=bool(busy),
        wal_pages=max(int(wal_pages), 0),
        checkpointed_pages=max(int(done), 0),
        optimized=True,
    )


def maintenance_job(db: Database) -> JobFn:
    async def maintenance(report: Report) -> MaintenanceResult:
        report("checkpointing the WAL and optimizing", 0)
        result = await db.maintain(_maintain)
        report("done", 100)
        return result

    return maintenance


def _delete_chunk(cutoff: str) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        # The oldest rows by seq (the primary key) only: bounded work whatever the table
        # holds, and no index on ts needed. Events are written in time order, so once a chunk
        # holds a recent event everything older is gone.
        cursor = tx.conn.execute(
            "DELETE FROM events WHERE seq IN ("
            " SELECT seq FROM (SELECT seq, ts FROM events ORDER BY seq LIMIT ?) WHERE ts < ?)",
            (RETENTION_CHUNK, cutoff),
        )
        return cursor.rowcount

    return op


def _delete_below(seq: int) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        cursor = tx.conn.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? "
            "ORDER BY seq LIMIT ?)",
            (seq, RETENTION_CHUNK),
        )
        return cursor.rowcount

    return op


def retention_job(db: Database, days: float, max_events: int = 0) -> JobFn:
    async def retention(report: Report) -> RetentionResult:
        result = RetentionResult(cutoff=None, deleted_events=0)
        if days > 0:
            result.cutoff = iso(datetime.now(UTC) - timedelta(days=days))
            while True:
                removed = await db.write(_delete_chunk(result.cutoff), heavy=True)
                result.deleted_events += removed
                report(f"{result.deleted_events} events deleted", None)
                if removed < RETENTION_CHUNK:
                    break
        if max_events > 0:
            # Sequence numbers only grow: everything at or below last - max goes (gaps left
            # by earlier deletions mean a little fewer than max may stay, never more).
            below = db.writer.last_seq - max_events
            while below > 0:
                removed = await db.write(_delete_below(below), heavy=True)
                result.deleted_over_count += removed
                report(f"{result.deleted_over_count} events over the cap deleted", None)
                if removed < RETENTION_CHUNK:
                    break
        return result

    return retention
