"""A `kv.get` request, part by part: what each layer of the daemon adds to its round trip.

The daemon's own layers are timed in this process, on a database made for the purpose, with
the code the daemon runs: SQLite's statement and its row; `Database.read` around it (the
connection's fair share, the inline read and its budget); the dispatcher (the frame decoded,
the method found, the params decoded and checked, the handler, the reply encoded); the
server's connection (`data_received` of a line: framing, the request's context, the reply
handed to a stand-in transport — the socket's edge). What the socket and running in a
separate process add is read off the round trips `bench rpc` measures in the same run: the
echo server's round trip is the socket's and the client's share, and the daemon's round trip
less that and less its in-process parts is what its code costs beyond them there.
"""

from __future__ import annotations

import shutil
import socket
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
    handle: float  # Dispatcher.handle(frame): the JSON-RPC request and reply, the read
    serve: float  # Connection.data_received(line): all of the daemon's Python for a request


class _Transport:
    """Where the in-process Connection writes its replies: the socket's edge, stood in for
    (a real socket pair only for the peer-credentials check at connection_made)."""

    def __init__(self) -> None:
        self.pair = socket.socketpair(socket.AF_UNIX)
        self.replies = 0

    def write(self, data: bytes) -> None:
        self.replies += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.pair[0] if name == "socket" else default

    def close(self) -> None:
        for end in self.pair:
            end.close()


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
    from daemon.rpc.server import Connection, Limits, Server
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
        # as the server calls it: the first step outside any task
        handle = await _per_call_async(lambda: dispatcher.handle(_FRAME, session, eager=True))
        limits = Limits(max_message_bytes=1 << 20, max_output_buffer_bytes=1 << 25,
                        max_connections=8, max_inflight=128, idle_timeout_s=0)  # fmt: skip
        served = Connection(Server(dispatcher, limits))
        transport = _Transport()
        served.connection_made(transport)  # type: ignore[arg-type]
        line = _FRAME + b"\n"

        def lines() -> None:
            for _ in range(CALLS):
                served.data_received(line)

        serve = _per_call(lines)
        transport.close()
        if transport.replies != CALLS * REPEATS:
            raise RuntimeError(f"{transport.replies} replies to {CALLS * REPEATS} requests")
        return Parts(sql, read, handle, serve)
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
    rest = [d - e - p.serve for d, e, p in zip(daemon_rtt, echo_rtt, parts, strict=True)]
    rows = [
        ("SQLite: the SELECT and its row (kv.read_value)", [p.sql for p in parts]),
        ("Database.read around it (fair share, inline read, its budget)",
         [p.read - p.sql for p in parts]),
        ("dispatcher: frame decoded, method found, params checked, handler, reply encoded",
         [p.handle - p.read for p in parts]),
        ("server: the connection's framing, the request's context, the reply handed to the "
         "transport", [p.serve - p.handle for p in parts]),
        ("the rest: uvloop and system calls beyond echo's, and the daemon's code running cold "
         "after each switch between processes (the round trip less echo's, less the above)",
         rest),
        ("socket and client: the echo server's round trip", echo_rtt),
    ]  # fmt: skip
    for label, values in rows:
        out.add(label, spread(values, _us), f"{median(values) / rtt:.0%}")
    out.add("the daemon's kv.get round trip", spread(daemon_rtt, _us), "100%")
    out.notes.append(
        "A part's share is its median over the round trip's median. The first four parts are "
        "the daemon's own code timed in-process, hot in the CPU's caches; `the rest` is what "
        "the same code costs beyond that in the round trip, where client and daemon take turns "
        "on the core, beyond what a bare uvloop echo server costs."
    )
    return out.render()
