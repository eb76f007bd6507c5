"""What the crash scenarios share: the daemon handle they drive, clients that write and keep
a ledger of what they heard, the read-only check of the files left behind, formatting."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.common import percentile
from client.aio import AsyncClient
from client.errors import ClientError, ProtocolError, RemoteError, Unreachable

NAMESPACE = "crash"


class Subject(Protocol):
    """A daemon this module can start, kill and restart (bench.common.Daemon, DaemonProcess)."""

    @property
    def socket_path(self) -> str: ...

    @property
    def db_path(self) -> Path: ...

    @property
    def process(self) -> subprocess.Popen[bytes] | None: ...

    def start(self) -> object: ...

    def stop(self, timeout: float = ...) -> int: ...


# --- what clients sent and heard ------------------------------------------------------------
@dataclass
class Ledger:
    namespace: str = NAMESPACE
    sent: dict[str, Any] = field(default_factory=dict)  # key -> the value written
    pending: set[str] = field(default_factory=set)  # sent, no answer yet
    acked: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)  # key -> the error kind answered
    cut: set[str] = field(default_factory=set)  # the connection closed before an answer
    reset: set[str] = field(default_factory=set)  # ... and it was a reset: the daemon closed
    # its end with bytes it had received still unread (for a Unix socket, Linux then resets)
    not_sent: int = 0  # the connection was already closed: the request never left


async def write_one(client: AsyncClient, key: str, value: int, ledger: Ledger) -> str:
    """One durable kv.set; its outcome: acked, the error kind, "cut" or "not_sent"."""
    if _reader_gone(client):
        ledger.not_sent += 1
        return "not_sent"
    ledger.sent[key] = value
    ledger.pending.add(key)
    try:
        await client.call("kv.set", {"namespace": ledger.namespace, "key": key, "value": value})
    except RemoteError as e:
        ledger.refused[key] = e.kind
        return e.kind
    except Unreachable:
        del ledger.sent[key]
        ledger.not_sent += 1
        return "not_sent"
    except (ProtocolError, OSError) as e:
        ledger.cut.add(key)
        if isinstance(e, ConnectionResetError) or "ConnectionResetError" in str(e):
            ledger.reset.add(key)
        return "cut"
    finally:
        ledger.pending.discard(key)
    ledger.acked.add(key)
    return "acked"


def _reader_gone(client: AsyncClient) -> bool:
    """The client's reader saw the connection end. client.aio would still send on the
    half-closed socket, and its call would then wait forever: nothing is left to answer it."""
    task = client._task  # private, but the only way to see it (a bug in client.aio)
    return task is None or task.done()


async def connect(path: str, stop: asyncio.Event) -> AsyncClient | None:
    """Connect, retrying with a short backoff while nothing answers (the daemon is down)."""
    delay = 0.005
    while not stop.is_set():
        try:
            return await AsyncClient.connect(path, handshake=False)
        except (ClientError, OSError):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
    return None


async def flowing(ledger: Ledger, more: int, timeout: float = 60.0) -> None:
    """Wait (polling) until `more` further writes were acknowledged."""
    target = len(ledger.acked) + more
    deadline = time.monotonic() + timeout
    while len(ledger.acked) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no writes acknowledged for {timeout:g} s")
        await asyncio.sleep(0.005)


def ignore_orphaned_futures() -> None:
    """client.aio keeps the future of a request it then fails to send (the connection had just
    closed); the connection's end later fails that future and nobody awaits it. The write is
    counted as not sent here: asyncio need not log it as an unretrieved exception."""
    loop = asyncio.get_running_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        orphan = str(context.get("message", "")).startswith("Future exception was never")
        if not (orphan and isinstance(context.get("exception"), ProtocolError)):
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


# --- checking the files -----------------------------------------------------------------------
@dataclass
class Check:
    integrity: list[str]
    rows: int
    missing: list[str]  # acknowledged, not there
    wrong: list[str]  # there with another value than the one sent
    phantom: list[str]  # there, never sent
    twice: list[str]  # more than one kv.set event for one key
    unlogged: list[str]  # a row without its event, or an event without its row
    present: set[str]

    @property
    def ok(self) -> bool:
        bad = self.missing or self.wrong or self.phantom or self.twice or self.unlogged
        return self.integrity == ["ok"] and not bad


def check_files(
    db_path: Path | str, sent: dict[str, Any], acked: set[str], namespace: str = NAMESPACE
) -> Check:
    """What the files on disk hold, read-only (no checkpoint, no change to what a restart
    will find), against what the clients sent and heard acknowledged."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        integrity = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(20)")]
        rows = {
            str(k): json.loads(v)
            for k, v in conn.execute("SELECT key, value FROM kv WHERE namespace = ?", (namespace,))
        }
        logged = dict(
            conn.execute(
                "SELECT json_extract(data, '$.key'), count(*) FROM events "
                "WHERE type IN ('kv.created', 'kv.updated') "
                "AND json_extract(data, '$.namespace') = ? GROUP BY 1",
                (namespace,),
            ).fetchall()
        )
    finally:
        conn.close()
    present = set(rows)
    return Check(
        integrity=integrity,
        rows=len(rows),
        missing=sorted(acked - present),
        wrong=sorted(k for k in acked & present if rows[k] != sent.get(k)),
        phantom=sorted(present - set(sent)),
        twice=sorted(k for k, n in logged.items() if n > 1),
        unlogged=sorted(present.symmetric_difference(logged)),
        present=present,
    )


def describe(check: Check) -> str:
    parts = [f"integrity {check.integrity[:3]}"] if check.integrity != ["ok"] else []
    for name in ("missing", "wrong", "phantom", "twice", "unlogged"):
        found: list[str] = getattr(check, name)
        if found:
            parts.append(f"{len(found)} {name} (e.g. {found[:3]})")
    return "; ".join(parts) or "ok"


def wal_bytes(db_path: Path | str) -> int:
    try:
        return os.path.getsize(f"{db_path}-wal")
    except OSError:
        return 0


# --- formatting, for the tables ---------------------------------------------------------------
def _pct(values: list[float], p: float, fmt: Callable[[float], str]) -> str:
    return fmt(percentile(values, p)) if values else "n/a"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _kib(n: float) -> str:
    return f"{n / 1024:,.0f} KiB"
