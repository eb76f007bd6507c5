"""A `kv.get` request, part by part: what each layer of the daemon adds to its round trip.

The daemon's own layers are timed in this process, on a database made for the purpose, with
the code the daemon runs (no socket): SQLite's statement and its row; `Database.read` around
it (the connection's fair share, the inline read and its budget); the dispatcher (the frame
decoded, the method found, the params decoded and checked, the handler, the reply encoded).
What the socket, uvloop and the server's per-connection work add is read off the round trips
`bench rpc` measures in the same run: the echo server's round trip is the socket's and the
client's share; the daemon's round trip less that and less the dispatcher is the server's.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from bench.common import Table, median, spread

CALLS = 2_000
REPEATS = 7
_FRAME = b'{"jsonrpc":"2.0","id":1,"method":"kv.get","params":{"namespace":"bench","key":"hot"}}'


@dataclass
class Parts:
    """Seconds per call, each the median of REPEATS rounds of CALLS calls."""

    sql: float  # read_value on a read-only connection
    read: float  # Database.read(read_value): the SQL and the read path around it
    handle: float  # Dispatcher.handle(frame): everything the daemon does but the socket


def _per_call(run: Callable[[], None]) -> float:
    rounds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        rounds.append((time.perf_counter() - started) / CALLS)
    return statistics.median(rounds)


async def _per_call_async(call: Callable[[], Awaitable[Any]]) -> float:
    rounds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(CALLS):
            await call()
        rounds.append((time.perf_counter() - started) / CALLS)
    return statistics.median(rounds)


async def _measure(path: Path) -> Parts:
    from daemon.domain import kv
    from daemon.domain.app import App
    from daemon.domain.events.bus import EventBus
    from daemon.rpc.dispatcher import Dispatcher, Session
    from daemon.rpc.registry import Registry
    from daemon.store import connection
    from daemon.store.clock import utc_now
    from daemon.store.database import Database

    db = Database(str(path))
    await db.start()
    try:
        await db.write(lambda tx: kv.put(tx, "bench", "hot", msgspec.Raw(b'{"n":1}'), None))
        registry = Registry()
        kv.methods.bind(registry, App(db, EventBus(), data_dir=""))
        dispatcher = Dispatcher(registry, lambda: "ready", 10)
        session = Session()  # kv.get sends no notifications: its `notify` is never called
        reply, _ = await dispatcher.handle(_FRAME, session)
        if reply is None or b'"n":1' not in reply:
            raise RuntimeError(f"kv.get did not answer as expected: {reply!r}")
        conn = connection.open_reader(str(path), busy_timeout_ms=5000)  # as the daemon's
        now = utc_now()

        def reads() -> None:
            for _ in range(CALLS):
                kv.read_value(conn, "bench", "hot", now)

        sql = _per_call(reads)
        conn.close()
        read = await _per_call_async(lambda: db.read(kv.read_value, "bench", "hot", utc_now()))
        handle = await _per_call_async(lambda: dispatcher.handle(_FRAME, session))
        return Parts(sql, read, handle)
    finally:
        await db.close()


def measure() -> Parts:
    """The daemon's layers for one kv.get, on uvloop as in the daemon, in a fresh database."""
    from daemon.store import migrations

    folder = Path(tempfile.mkdtemp(prefix="pm-bench-parts-"))
    try:
        path = folder / "parts.db"
        conn = sqlite3.connect(path, isolation_level=None)
        migrations.migrate(conn, migrations.load())
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
        return uvloop.run(_measure(path))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def table(parts: list[Parts], daemon_rtt: list[float], echo_rtt: list[float], where: str) -> str:
    """The parts beside the round trips (`where`: the placement both were measured in)."""
    out = Table(
        f"rpc: a kv.get round trip, part by part ({len(parts)} runs; the daemon's layers "
        f"in-process, medians of {REPEATS} x {CALLS:,} calls; round trips p50, {where})",
        ["part", "time per request", "share of the round trip"],
    )
    rtt = median(daemon_rtt)
    server = [d - e - p.handle for d, e, p in zip(daemon_rtt, echo_rtt, parts, strict=True)]
    rows = [
        ("SQLite: the SELECT and its row (kv.read_value)", [p.sql for p in parts]),
        ("Database.read around it (fair share, inline read, its budget)",
         [p.read - p.sql for p in parts]),
        ("dispatcher: frame decoded, method found, params checked, handler, reply encoded",
         [p.handle - p.read for p in parts]),
        ("server: the connection's framing, the request's context, the reply's write, "
         "uvloop's callbacks (the round trip less echo's, less the dispatcher)", server),
        ("socket and client: the echo server's round trip", echo_rtt),
    ]  # fmt: skip
    for label, values in rows:
        out.add(label, spread(values, _us), f"{median(values) / rtt:.0%}")
    out.add("the daemon's kv.get round trip", spread(daemon_rtt, _us), "100%")
    out.notes.append(
        "A part's share is its median over the round trip's median. The dispatcher's part is "
        "every byte of JSON-RPC the daemon handles; the server's is what the daemon adds per "
        "request beyond it and beyond what a bare uvloop echo server costs."
    )
    return out.render()
