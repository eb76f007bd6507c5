"""Database.exclusive under the traffic that meets it in the daemon: reads and writes waiting
at the gate, several pauses back to back, and callers cancelled half-way. Nothing may be
left waiting for ever, and every write acknowledged must be in the file afterwards."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.rpc.fairness import ReadShare, read_share
from daemon.store import migrations
from daemon.store.batch import Tx
from daemon.store.database import Database
from daemon.store.workers import ConnectionWorkers, WorkersStopped

DEADLINE_S = 20.0  # far above any honest wait here; a hang fails instead of blocking CI


def insert(key: str) -> Callable[[Tx], str]:
    def op(tx: Tx) -> str:
        tx.conn.execute(
            "INSERT INTO kv (namespace, key, value, created_at, updated_at) "
            "VALUES ('pause', ?, '1', 'now', 'now')",
            (key,),
        )
        return key

    return op


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM kv").fetchone()[0])


def slow_count(conn: sqlite3.Connection, seconds: float) -> int:
    """A long query: the readers take this long to stop. (Long in SQLite, so it is sent to a
    reader thread, as any read over the loop's budget is: daemon.store.inline_reads.)"""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
            "SELECT count(*) FROM n"
        ).fetchone()
    return count(conn)


async def opened(path: Path) -> Database:
    db = Database(str(path), readers=2)
    db.migrate(migrations.load())
    await db.start()
    return db


def keys_in(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {k for (k,) in conn.execute("SELECT key FROM kv WHERE namespace = 'pause'")}
    finally:
        conn.close()


def test_back_to_back_pauses_leave_no_read_or_write_waiting(tmp_path: Path) -> None:
    path = tmp_path / "p.db"

    async def scenario() -> set[str]:
        db = await opened(path)
        acknowledged: set[str] = set()
        for round_ in range(20):
            pauses = [
                asyncio.ensure_future(db.exclusive(lambda seen: time.sleep(0.001)))
                for _ in range(3)
            ]
            await asyncio.sleep(0)  # the first pause has closed the gate
            reads = [asyncio.ensure_future(db.read(count)) for _ in range(30)]
            writes = [asyncio.ensure_future(db.write(insert(f"{round_}-{i}"))) for i in range(30)]
            everything = asyncio.gather(*pauses, *reads, *writes)
            await asyncio.wait_for(everything, DEADLINE_S)
            acknowledged.update(w.result() for w in writes)
        await db.close()
        return acknowledged

    acknowledged = asyncio.run(scenario())
    assert len(acknowledged) == 20 * 30
    assert keys_in(path) == acknowledged


@pytest.mark.parametrize("cancel_after_s", [0.0, 0.05, 0.3])
def test_a_pause_cancelled_half_way_still_reopens_the_database(
    tmp_path: Path, cancel_after_s: float
) -> None:
    """The caller goes away while the writer closes, while the readers stop (a slow read
    keeps them busy 0.2 s), or while the file work runs (0.2 s): the pause finishes anyway
    and reads and writes go on."""
    path = tmp_path / "c.db"
    file_work_ran = threading.Event()

    def file_work(seen: int) -> None:
        time.sleep(0.2)
        file_work_ran.set()

    async def scenario() -> tuple[int, list[str]]:
        db = await opened(path)
        await db.write(insert("before"))
        slow = asyncio.ensure_future(db.read(slow_count, 0.2))
        await asyncio.sleep(0.01)  # the slow read is on a reader thread
        pause = asyncio.ensure_future(db.exclusive(file_work))
        await asyncio.sleep(cancel_after_s)
        pause.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pause
        after = [db.write(insert(f"after-{i}")) for i in range(5)]
        written = await asyncio.wait_for(asyncio.gather(*after), DEADLINE_S)
        seen = await asyncio.wait_for(db.read(count), DEADLINE_S)
        assert await slow == 1
        await db.close()
        return seen, written

    seen, written = asyncio.run(scenario())
    assert file_work_ran.is_set(), "the file work of a begun pause runs to its end"
    assert seen == 6
    assert keys_in(path) == {"before", *written}


def test_workers_fail_a_job_queued_after_they_stopped(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sqlite3.connect(path).close()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        workers = ConnectionWorkers("test-reader", 2, lambda: sqlite3.connect(path), loop)
        workers.start()
        first = workers.run(lambda conn: conn.execute("SELECT 1").fetchone()[0])
        await asyncio.to_thread(workers.stop)
        assert await first == 1, "a job queued before the stop still runs"
        with pytest.raises(WorkersStopped):
            await asyncio.wait_for(workers.run(lambda conn: 1), DEADLINE_S)

    asyncio.run(scenario())


def test_a_pause_is_not_mistaken_for_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    states: list[str] = []

    async def scenario() -> None:
        db = await opened(path)
        loop = asyncio.get_running_loop()

        def swap(seen: int) -> None:
            other = tmp_path / "other.db"
            conn = sqlite3.connect(path)
            conn.execute(f"VACUUM INTO '{other}'")
            conn.close()
            other.replace(path)  # a new inode at the path, as a restore makes
            states.append(asyncio.run_coroutine_threadsafe(state(), loop).result())

        async def state() -> str:
            return db.file_state()

        await db.exclusive(swap)
        states.append(db.file_state())
        await db.close()

    asyncio.run(scenario())
    assert states == ["ok", "ok"]


def test_a_read_whose_caller_stopped_waiting_is_not_run(tmp_path: Path) -> None:
    """A client that hangs up leaves its reads queued behind a slow one: they are skipped,
    not run for nobody (a non-reader asking for big values would otherwise keep the reader
    threads busy long after it was cut off)."""
    path = tmp_path / "s.db"
    ran: list[int] = []

    def noted(conn: sqlite3.Connection, i: int) -> int:
        # Long in SQLite, so the reader threads run it (the loop tries it first, within its
        # budget, for a caller still waiting): what ran there is noted.
        if threading.current_thread() is not threading.main_thread():
            ran.append(i)
        return slow_count(conn, 0.01)

    async def scenario() -> None:
        db = Database(str(path), readers=1)
        db.migrate(migrations.load())
        await db.start()
        slow = asyncio.ensure_future(db.read(slow_count, 0.2))
        await asyncio.sleep(0.01)  # on the one reader thread
        abandoned = [asyncio.ensure_future(db.read(noted, i)) for i in range(20)]
        await asyncio.sleep(0.01)
        for task in abandoned:
            task.cancel()
        kept = await asyncio.wait_for(db.read(noted, 99), DEADLINE_S)
        assert kept == 0 and await slow == 0
        await db.close()

    asyncio.run(scenario())
    assert ran == [99]


def test_a_clients_reads_take_its_share_and_wait_while_it_does_not_read(
    tmp_path: Path,
) -> None:
    """daemon.rpc.fairness.ReadShare as Database.read uses it: at most `slots` of one client's
    reads at a time on the shared readers, and none started while its replies go unread."""
    path = tmp_path / "f.db"
    running = 0
    most = 0
    lock = threading.Lock()

    def counted(conn: sqlite3.Connection) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return slow_count(conn, 0.05)
        finally:
            with lock:
                running -= 1

    async def scenario() -> None:
        db = Database(str(path), readers=4)
        db.migrate(migrations.load())
        await db.start()
        share = ReadShare(slots=2)

        async def as_client() -> list[int]:
            read_share.set(share)  # what the dispatcher does for a request's task
            return list(await asyncio.gather(*(db.read(counted) for _ in range(8))))

        assert await asyncio.wait_for(asyncio.create_task(as_client()), DEADLINE_S) == [0] * 8
        share.pause()
        held = asyncio.create_task(as_client())
        await asyncio.sleep(0.3)
        assert not held.done(), "no read starts while the client takes no replies"
        assert await db.read(count) == 0, "the daemon's own reads are not held"
        share.resume()
        assert await asyncio.wait_for(held, DEADLINE_S) == [0] * 8
        await db.close()

    asyncio.run(scenario())
    assert most == 2
