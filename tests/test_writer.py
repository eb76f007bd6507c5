"""The single writer against a real SQLite file, checked from a second connection."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from daemon.rpc.errors import Busy, Conflict, ShuttingDown, StorageError
from daemon.store import migrations
from daemon.store.batch import Tx
from daemon.store.cancellation import outcome_over_cancel
from daemon.store.database import Database
from daemon.store.events import Event
from daemon.store.events_catalogue import EventKind
from daemon.store.writer import Writer

T = TypeVar("T")

SCHEMA = """
CREATE TABLE parent (id INTEGER PRIMARY KEY);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE item (name TEXT PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0));
"""


def prepare(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn, migrations.load())
    conn.executescript(SCHEMA)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """What a second, independent connection sees as committed."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


ITEM_ADDED = EventKind("item.added", dict[str, Any])
CHILD_ADDED = EventKind("child.added", dict[str, Any])


def insert(name: str, n: int) -> Callable[[Tx], str]:
    def op(tx: Tx) -> str:
        tx.conn.execute("INSERT INTO item (name, n) VALUES (?, ?)", (name, n))
        tx.emit(ITEM_ADDED, {"name": name})
        return name

    return op


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    prepare(path)
    return path


def test_failing_operation_rolls_back_alone(db_path: Path) -> None:
    published: list[Event] = []

    async def scenario() -> list[Any]:
        writer = Writer(str(db_path), publish=published.extend)
        await writer.start()
        # Queued together, so they share one batch: one transaction, one savepoint each.
        results = await asyncio.gather(
            writer.submit(insert("a", 1)),
            writer.submit(insert("bad", -1)),  # CHECK fails
            writer.submit(insert("b", 2)),
            writer.submit(insert("a", 3)),  # duplicate key
            writer.submit(insert("c", 3)),
            return_exceptions=True,
        )
        stats = writer.stats()
        await writer.close()
        assert stats.batches == 1 and stats.batch_size_max == 5
        return list(results)

    results = run(scenario)
    assert results[0] == "a" and results[2] == "b" and results[4] == "c"
    assert isinstance(results[1], Conflict) and "CHECK" in results[1].message
    assert isinstance(results[3], Conflict) and "UNIQUE" in results[3].message
    assert rows(db_path, "SELECT name, n FROM item ORDER BY name") == [("a", 1), ("b", 2), ("c", 3)]
    # Only the committed operations' events exist, numbered without gaps.
    assert rows(db_path, "SELECT seq, type, json_extract(data, '$.name') FROM events") == [
        (1, "item.added", "a"),
        (2, "item.added", "b"),
        (3, "item.added", "c"),
    ]
    assert [e.seq for e in published] == [1, 2, 3]


def test_ack_only_after_commit(db_path: Path) -> None:
    """A batch whose COMMIT fails (a deferred foreign key) acknowledges nothing."""
    published: list[Event] = []

    def orphan(tx: Tx) -> str:
        tx.conn.execute("INSERT INTO child (id, parent_id) VALUES (1, 999)")
        tx.emit(CHILD_ADDED, {"id": 1})
        return "orphan"

    async def scenario() -> list[Any]:
        writer = Writer(str(db_path), publish=published.extend)
        await writer.start()
        results = await asyncio.gather(
            writer.submit(insert("x", 1)), writer.submit(orphan), return_exceptions=True
        )
        after = await writer.submit(insert("y", 1))  # the writer carries on
        await writer.close()
        return [*results, after]

    first, second, after = run(scenario)
    assert isinstance(first, Conflict) and isinstance(second, Conflict)
    assert "FOREIGN KEY" in first.message
    assert after == "y"
    assert rows(db_path, "SELECT name FROM item") == [("y",)]
    assert rows(db_path, "SELECT count(*) FROM child") == [(0,)]
    # The failed batch's event numbers were not burnt or published.
    assert [e.seq for e in published] == [1]
    assert rows(db_path, "SELECT seq, type FROM events") == [(1, "item.added")]


def test_result_is_visible_to_another_connection_when_acknowledged(db_path: Path) -> None:
    seen: list[list[tuple[Any, ...]]] = []

    async def scenario() -> None:
        writer = Writer(str(db_path))
        await writer.start()
        for i in range(20):
            await writer.submit(insert(f"k{i}", i))
            seen.append(rows(db_path, f"SELECT n FROM item WHERE name = 'k{i}'"))
        await writer.close()

    run(scenario)
    assert seen == [[(i,)] for i in range(20)]


def test_busy_when_the_queue_stays_full(db_path: Path) -> None:
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    async def scenario() -> tuple[list[Any], Any]:
        writer = Writer(
            str(db_path), queue_max=2, batch_max=1, busy_wait_s=0.2, busy_timeout_ms=10_000
        )
        await writer.start()
        first = asyncio.ensure_future(writer.submit(insert("first", 1)))
        await asyncio.sleep(0.05)  # the writer has taken it and waits for the lock
        # Two wait in the queue: that is full.
        queued = [asyncio.ensure_future(writer.submit(insert(f"q{i}", i))) for i in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Busy) as refused:
            await writer.submit(insert("refused", 9))
        assert writer.stats().busy_rejections == 1
        blocker.execute("ROLLBACK")  # instant: releasing a lock never waits
        results = await asyncio.gather(first, *queued)
        await writer.close()
        return results, refused.value

    results, error = run(scenario)
    assert results == ["first", "q0", "q1"]
    assert error.data["queue_depth"] == 2 and "Retry" in error.message
    assert rows(db_path, "SELECT name FROM item ORDER BY name") == [("first",), ("q0",), ("q1",)]
    blocker.close()


def test_close_commits_everything_queued(db_path: Path) -> None:
    async def scenario() -> list[Any]:
        writer = Writer(str(db_path), batch_max=7)
        await writer.start()
        pending = [asyncio.ensure_future(writer.submit(insert(f"k{i}", i))) for i in range(500)]
        await asyncio.sleep(0)
        await writer.close()
        with pytest.raises(ShuttingDown):
            await writer.submit(insert("late", 1))
        return await asyncio.gather(*pending)

    assert len(run(scenario)) == 500
    assert rows(db_path, "SELECT count(*) FROM item") == [(500,)]
    # close() checkpointed the WAL into the main file (and the last close removed it).
    wal = db_path.parent / (db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_cancelled_before_its_batch_is_never_written(db_path: Path) -> None:
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def scenario() -> None:
        writer = Writer(str(db_path), busy_timeout_ms=10_000)
        await writer.start()
        first = asyncio.ensure_future(writer.submit(insert("taken", 1)))
        await asyncio.sleep(0.05)  # "taken" is in a batch, waiting for the lock
        second = asyncio.ensure_future(writer.submit(insert("cancelled", 2)))
        await asyncio.sleep(0)
        second.cancel()
        first.cancel()  # too late for this one: it is already in a batch
        blocker.execute("ROLLBACK")
        with pytest.raises(asyncio.CancelledError):
            await second
        # Internal work is cancelled the asyncio way, but only once its write is settled.
        with pytest.raises(asyncio.CancelledError):
            await first
        assert rows(db_path, "SELECT name FROM item") == [("taken",)]
        # A client's request (the dispatcher sets the flag) hears what really happened.
        blocker.execute("BEGIN IMMEDIATE")

        async def as_a_request() -> str:
            outcome_over_cancel.set(True)
            return await writer.submit(insert("told", 3))

        told = asyncio.ensure_future(as_a_request())
        await asyncio.sleep(0.05)
        told.cancel()
        blocker.execute("ROLLBACK")
        assert await told == "told"
        await writer.close()

    run(scenario)
    # A write handed to a batch commits even if its caller stopped waiting; one still
    # queued when cancelled never runs.
    assert rows(db_path, "SELECT name FROM item ORDER BY name") == [("taken",), ("told",)]
    blocker.close()


def test_database_reads_see_acknowledged_writes(tmp_path: Path) -> None:
    path = tmp_path / "d.db"

    async def scenario() -> list[int]:
        db = Database(str(path), readers=2)
        db.migrate(migrations.load())
        await db.start()
        counts = []
        for i in range(50):

            def op(tx: Tx, i: int = i) -> None:
                tx.conn.execute(
                    "INSERT INTO kv (namespace, key, value, created_at, updated_at) "
                    "VALUES ('n', ?, '1', 'now', 'now')",
                    (str(i),),
                )

            await db.write(op)
            counts.append(
                await db.read(lambda c: c.execute("SELECT count(*) FROM kv").fetchone()[0])
            )
        await db.close()
        return counts

    assert run(scenario) == list(range(1, 51))


def test_readers_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "r.db"

    async def scenario() -> None:
        db = Database(str(path), readers=1)
        db.migrate(migrations.load())
        await db.start()
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
            await db.read(lambda c: c.execute("DELETE FROM kv"))
        await db.close()

    run(scenario)


def test_maintenance_runs_between_batches_outside_a_transaction(db_path: Path) -> None:
    async def scenario() -> tuple[Any, list[Any]]:
        writer = Writer(str(db_path))
        await writer.start()
        writes = [asyncio.ensure_future(writer.submit(insert(f"k{i}", i))) for i in range(50)]

        def checkpoint(conn: sqlite3.Connection) -> tuple[bool, Any]:
            return conn.in_transaction, conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

        maintained = asyncio.ensure_future(writer.maintain(checkpoint))
        later = [asyncio.ensure_future(writer.submit(insert(f"m{i}", i))) for i in range(50)]
        results = await asyncio.gather(*writes, *later)
        outcome = await maintained
        with pytest.raises(StorageError, match="unrecognized token"):
            await writer.maintain(lambda conn: conn.execute("PRAGMA no_such_thing = 1x"))
        await writer.close()
        return outcome, results

    (in_transaction, checkpoint_row), results = run(scenario)
    assert in_transaction is False and checkpoint_row[0] == 0  # not busy: it ran alone
    assert len(results) == 100
    assert rows(db_path, "SELECT count(*) FROM item") == [(100,)]


def test_a_batch_shared_by_the_loop_and_the_thread_is_one_transaction(db_path: Path) -> None:
    """The loop runs a batch's light operations itself and hands the rest (from the first
    heavy one, or past its time budget) to the writer's thread, inside the same transaction:
    one commit, one savepoint each, a failure there rolls back alone, events without gaps."""
    ran_on: dict[str, str] = {}

    def noted(name: str, n: int, pause_s: float = 0.0) -> Callable[[Tx], str]:
        def op(tx: Tx) -> str:
            ran_on[name] = threading.current_thread().name
            time.sleep(pause_s)  # a slow operation (the budget is measured between them)
            return insert(name, n)(tx)

        return op

    published: list[Event] = []

    async def scenario() -> tuple[list[Any], Any]:
        writer = Writer(str(db_path), publish=published.extend)
        await writer.start()
        results = await asyncio.gather(
            writer.submit(noted("a", 1)),
            writer.submit(noted("b", 2)),
            writer.submit(noted("heavy", 3), heavy=True),
            writer.submit(noted("bad", -1)),  # CHECK fails, on the thread
            writer.submit(noted("c", 4)),
            return_exceptions=True,
        )
        slow = await asyncio.gather(
            *(writer.submit(noted(f"s{i}", i, pause_s=0.001)) for i in range(20))
        )
        stats = writer.stats()
        await writer.close()
        return [*results, *slow], stats

    results, stats = run(scenario)
    assert results[:3] == ["a", "b", "heavy"] and isinstance(results[3], Conflict)
    assert results[4:] == ["c", *(f"s{i}" for i in range(20))]
    main, thread = threading.main_thread().name, "pm-writer"
    assert (ran_on["a"], ran_on["b"], ran_on["heavy"], ran_on["c"]) == (main, main, thread, thread)
    # 20 operations of 1 ms against a 2 ms budget: the loop ran the first few, the thread
    # the others, all in one batch.
    assert ran_on["s0"] == main and ran_on["s19"] == thread
    assert stats.batches == 2 and stats.batches_on_thread == 2
    assert rows(db_path, "SELECT count(*) FROM item") == [(24,)]
    assert [e.seq for e in published] == list(range(1, 25))
    assert rows(db_path, "SELECT max(seq), count(*) FROM events") == [(24, 24)]


def test_a_batch_s_stages_add_up_to_its_time(db_path: Path) -> None:
    """daemon.status says where a batch's time went: the loop's statements, the crossing to
    the writer's thread, the thread's statements, COMMIT, the crossing back. The stages are
    measured, not estimated: they add up to the batch's whole time."""

    def slow(name: str, pause_s: float) -> Callable[[Tx], str]:
        def op(tx: Tx) -> str:
            time.sleep(pause_s)
            return insert(name, 1)(tx)

        return op

    async def scenario() -> Any:
        writer = Writer(str(db_path))
        await writer.start()
        await asyncio.gather(
            writer.submit(slow("on the loop", 0.003)),
            writer.submit(slow("on the thread", 0.006), heavy=True),
        )
        stats = writer.stats()
        await writer.close()
        return stats

    stats = run(scenario)
    stages = stats.stages
    assert stats.batches == 1
    assert stages.loop_ms_p50 >= 3 and stages.thread_ms_p50 >= 6
    assert stages.commit_ms_p50 == stats.commit_ms_p50 > 0
    assert stages.to_thread_ms_p50 > 0 and stages.to_loop_ms_p50 > 0
    whole = sum(
        (stages.loop_ms_p50, stages.to_thread_ms_p50, stages.thread_ms_p50,
         stages.commit_ms_p50, stages.to_loop_ms_p50)
    )  # fmt: skip
    assert abs(whole - stats.batch_ms_p50) < 0.1
    assert 0 <= stages.queued_ms_p50 < stats.batch_ms_p50


def test_reads_are_answered_on_the_loop_unless_they_are_long(tmp_path: Path) -> None:
    """A short read runs on the loop's thread; one past the budget is interrupted there, run
    on a reader thread instead, and that kind of read goes straight there for a while."""
    path = tmp_path / "r.db"
    threads: list[str] = []

    def short(conn: sqlite3.Connection) -> int:
        threads.append(threading.current_thread().name)
        return int(conn.execute("SELECT count(*) FROM kv").fetchone()[0])

    def long(conn: sqlite3.Connection) -> int:
        threads.append(threading.current_thread().name)
        sql = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
               "WHERE i < 300000) SELECT count(*) FROM n")  # fmt: skip
        return int(conn.execute(sql).fetchone()[0])

    async def scenario() -> tuple[list[int], Any]:
        db = Database(str(path), readers=1)
        db.migrate(migrations.load())
        await db.start()
        got = [await db.read(short), await db.read(long), await db.read(long)]
        stats = db.read_stats()
        await db.close()
        return got, stats

    got, stats = run(scenario)
    assert got == [0, 300000, 300000]
    # daemon.status says so: one answered on the loop, one interrupted there, two on threads
    assert (stats.on_loop, stats.interrupted, stats.on_threads) == (1, 1, 2)
    main = threading.main_thread().name
    # short: here; long: tried here, interrupted, run by the reader; then straight there
    assert threads[0] == main and threads[1] == main
    assert threads[2].startswith("pm-reader") and threads[3].startswith("pm-reader")
    assert len(threads) == 4
