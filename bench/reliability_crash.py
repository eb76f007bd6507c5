"""Reliability under crashes: SIGKILL under load, SIGTERM under load, a full disk.

Three scenarios against a real `python -m daemon`, each with the figure the issue asks for:

- **kill**: clients write (durable `kv.set`, every key new, each sent once) while the daemon
  is killed with SIGKILL at a random moment, restarted, and the clients reconnect and go on.
  After each kill the files left behind are checked before the restart: `integrity_check`,
  every acknowledged key there with its value, nothing there twice (one `kv.set` event per
  key), nothing there that was never sent. Writes in flight at the kill (sent, never
  answered) may or may not be there; they are counted apart.
- **term**: clients write, several requests in flight each, when SIGTERM comes. Every request
  must get a result or a `shutting_down` error (a connection closing with a request
  unanswered is silence: it must not happen), every acknowledged write must be there, and the
  daemon must exit 0 within `stop_timeout_s`.
- **disk full**: the data folder on a small tmpfs, filled until SQLite says the disk is full.
  Writes fail `disk_full` (-32007), reads go on, a checkpoint and a backup on the full disk
  fail cleanly, and once space returns writes succeed again without a restart.

The engines take any daemon handle with `socket_path`, `db_path`, `process`, `start()` and
`stop()` (bench.common.Daemon here; tests/helpers.DaemonProcess in the tests, which run the
short versions). `python -m bench.reliability_crash [--quick]` runs this alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench import common
from bench.common import Table, median, percentile
from client.aio import AsyncClient
from client.errors import ClientError, ProtocolError, RemoteError, Unreachable

NAMESPACE = "crash"
KILL_CYCLES, KILL_CLIENTS = 50, 64
TERM_CYCLES, TERM_CLIENTS, TERM_DEPTH = 20, (64, 16), 2
STOP_TIMEOUT_S = 10.0  # the daemon's default stop_timeout_s


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
                "WHERE type = 'kv.set' AND json_extract(data, '$.namespace') = ? GROUP BY 1",
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


# --- 1. SIGKILL under load --------------------------------------------------------------------
@dataclass
class KillCycle:
    acked_before: int  # acknowledged since the previous restart
    in_flight: int  # sent and unanswered at the instant of the kill
    wal_bytes: int  # the WAL left behind: what the restart has to recover
    restart_s: float  # from the restart to ready
    check: Check


@dataclass
class KillRun:
    clients: int
    cycles: list[KillCycle]
    ledger: Ledger
    final: Check  # after the last restart and a graceful stop
    seconds: float

    @property
    def lost(self) -> int:
        return len({k for c in self.cycles for k in c.check.missing} | set(self.final.missing))

    @property
    def refused_yet_written(self) -> int:
        """Answered with an error (`starting`: not run), yet there."""
        return sum(1 for k in self.ledger.refused if k in self.final.present)

    @property
    def ok(self) -> bool:
        checks = all(c.check.ok for c in self.cycles) and self.final.ok
        return checks and self.refused_yet_written == 0


async def _kill_client(path: str, index: int, ledger: Ledger, stop: asyncio.Event) -> None:
    client: AsyncClient | None = None
    n = 0
    try:
        while not stop.is_set():
            if client is None:
                client = await connect(path, stop)
                if client is None:
                    return
            n += 1
            outcome = await write_one(client, f"k{index}-{n}", n, ledger)
            if outcome in ("cut", "not_sent"):
                await client.close()
                client = None
            elif outcome != "acked":
                await asyncio.sleep(0.01)  # starting, busy: what a real client does
    finally:
        if client is not None:
            await client.close()


def _kill(subject: Subject) -> None:
    process = subject.process
    assert process is not None
    process.kill()
    process.wait(30)
    subject.stop()  # reaps nothing more; closes the log


async def kill_cycles(
    subject: Subject,
    *,
    clients: int,
    cycles: int,
    max_delay_s: float,
    rng: random.Random,
    on_cycle: Callable[[int, KillCycle], None] | None = None,
) -> KillRun:
    """`subject` started; each cycle waits for writes to flow, kills at a random moment,
    checks the files, restarts. Ends with a graceful stop and a last check."""
    ignore_orphaned_futures()
    ledger = Ledger()
    stop = asyncio.Event()
    started = time.monotonic()
    tasks = [
        asyncio.ensure_future(_kill_client(subject.socket_path, i, ledger, stop))
        for i in range(clients)
    ]
    done: list[KillCycle] = []
    try:
        for number in range(cycles):
            base = len(ledger.acked)
            await flowing(ledger, clients)
            await asyncio.sleep(rng.uniform(0.0, max_delay_s))
            in_flight = len(ledger.pending)
            await asyncio.to_thread(_kill, subject)
            acked_before = len(ledger.acked) - base
            wal = wal_bytes(subject.db_path)
            sent, acked = dict(ledger.sent), set(ledger.acked)
            check = await asyncio.to_thread(check_files, subject.db_path, sent, acked)
            restart = time.monotonic()
            await asyncio.to_thread(subject.start)
            cycle = KillCycle(acked_before, in_flight, wal, time.monotonic() - restart, check)
            done.append(cycle)
            if on_cycle is not None:
                on_cycle(number, cycle)
        await flowing(ledger, clients)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    code = await asyncio.to_thread(subject.stop)
    if code != 0:
        raise RuntimeError(f"the daemon exited with {code} at the final stop")
    final = check_files(subject.db_path, ledger.sent, ledger.acked)
    return KillRun(clients, done, ledger, final, time.monotonic() - started)


# --- 2. SIGTERM under load --------------------------------------------------------------------
@dataclass
class TermCycle:
    ledger: Ledger
    exit_code: int
    exit_s: float  # from SIGTERM to the process gone
    check: Check
    hung: int = 0  # clients still waiting 10 s after the daemon exited

    @property
    def unanswered(self) -> int:
        return len(self.ledger.cut)

    @property
    def unanswered_unread(self) -> int:
        """Delivered to the daemon's socket, never read: the connection was reset."""
        return len(self.ledger.reset)

    @property
    def shutting_down(self) -> int:
        return sum(1 for kind in self.ledger.refused.values() if kind == "shutting_down")

    @property
    def other_errors(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for kind in self.ledger.refused.values():
            if kind != "shutting_down":
                found[kind] = found.get(kind, 0) + 1
        return found

    @property
    def refused_yet_written(self) -> int:
        """Answered shutting_down (nothing written), yet the row is there."""
        return sum(1 for k in self.ledger.refused if k in self.check.present)


async def _term_lane(client: AsyncClient, prefix: str, ledger: Ledger, over: asyncio.Event) -> None:
    n = 0
    while not over.is_set():
        n += 1
        if await write_one(client, f"{prefix}-{n}", n, ledger) != "acked":
            over.set()  # shutting_down or closed: this client stops, like a real one


async def _term_client(client: AsyncClient, prefix: str, ledger: Ledger, depth: int) -> None:
    over = asyncio.Event()
    try:
        await asyncio.gather(
            *(_term_lane(client, f"{prefix}.{i}", ledger, over) for i in range(depth))
        )
    finally:
        await client.close()


async def term_cycle(
    subject: Subject,
    cycle: int,
    *,
    clients: int,
    depth: int,
    max_delay_s: float,
    stop_timeout_s: float,
    rng: random.Random,
) -> TermCycle:
    """`subject` started: clients write, SIGTERM at a random moment, every outcome counted."""
    ignore_orphaned_futures()
    ledger = Ledger(namespace=f"{NAMESPACE}-term-{cycle}")
    never = asyncio.Event()
    connected = [await connect(subject.socket_path, never) for _ in range(clients)]
    tasks = [
        asyncio.ensure_future(_term_client(c, f"t{cycle}.{i}", ledger, depth))
        for i, c in enumerate(connected)
        if c is not None
    ]
    await flowing(ledger, clients)
    await asyncio.sleep(rng.uniform(0.0, max_delay_s))
    process = subject.process
    assert process is not None
    signalled = time.monotonic()
    process.terminate()
    try:
        code = await asyncio.to_thread(process.wait, stop_timeout_s + 20)
    except subprocess.TimeoutExpired:
        process.kill()
        code = -9
    exit_s = time.monotonic() - signalled
    await asyncio.to_thread(subject.stop)
    _, late = await asyncio.wait(tasks, timeout=10)
    for task in late:  # a client still waiting for an answer once the daemon is gone
        task.cancel()
    check = check_files(subject.db_path, ledger.sent, ledger.acked, ledger.namespace)
    return TermCycle(ledger, code, exit_s, check, hung=len(late))


# --- 5. a full disk ---------------------------------------------------------------------------
class TmpfsUnavailable(Exception):
    """A small tmpfs cannot be mounted here (not root, or the mount was refused)."""


@contextlib.contextmanager
def tmpfs(folder: Path, size_mb: int) -> Iterator[Path]:
    """`folder` (created) is a tmpfs of `size_mb` MiB for the duration; unmounted after."""
    if os.geteuid() != 0:
        raise TmpfsUnavailable("mounting a tmpfs needs root")
    if shutil.which("mount") is None:
        raise TmpfsUnavailable("no mount command")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}M,mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise TmpfsUnavailable(f"mount -t tmpfs refused: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def ensure_stopped(subject: Subject) -> None:
    """Stopped before its folder is unmounted: SIGTERM, a kill if it does not go."""
    process = subject.process
    if process is None or process.poll() is not None:
        return
    try:
        subject.stop(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def fill(path: Path, size: int) -> None:
    """A file of `size` bytes whose pages are really allocated."""
    with open(path, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, size)


@dataclass
class DiskFull:
    acked: dict[str, Any] = field(default_factory=dict)  # key -> the value written
    first_error: dict[str, Any] = field(default_factory=dict)  # code, kind, message
    after_full: dict[str, int] = field(default_factory=dict)  # outcome -> count, once full
    wal_full: int = 0
    db_full: int = 0
    reads_ok: bool = False
    health: dict[str, Any] = field(default_factory=dict)
    check_full: dict[str, Any] = field(default_factory=dict)
    maintenance_full: str = ""  # jobs.run maintenance on the full disk
    checkpoint_full: dict[str, Any] = field(default_factory=dict)  # ... with room for its job
    backup_full: dict[str, Any] = field(default_factory=dict)
    backups_left: list[str] = field(default_factory=list)
    resumed: bool = False  # a write succeeded once space returned, same daemon process
    checkpoint_after: dict[str, Any] = field(default_factory=dict)
    wal_after: int = -1
    full_stop_code: int = -1  # SIGTERM on a full disk
    full_restart_reads_ok: bool = False  # started again on the full disk: reads answer
    exit_code: int = -1
    final: Check | None = None


def _error(e: RemoteError) -> dict[str, Any]:
    return {"code": e.code, "kind": e.kind, "message": e.message}


async def _job(client: AsyncClient, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """Run a daemon job now and wait until it ended or failed (a failed attempt goes back to
    `queued` with its error, for a retry later): its row, or the error jobs.run got."""
    try:
        job: dict[str, Any] = await client.call("jobs.run", {"kind": kind})
    except RemoteError as e:
        return {"status": "not run", **_error(e)}
    return await _until_ended(client, job, timeout)


async def _until_ended(client: AsyncClient, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (
        job["status"] == "running" or (job["status"] == "queued" and not job.get("error"))
    ):
        await asyncio.sleep(0.02)
        job = await client.call("jobs.get", {"id": job["id"]})
    return job


async def _fill_until_full(client: AsyncClient, report: DiskFull, value_bytes: int) -> None:
    big = "x" * value_bytes
    for i in range(10_000):
        key = f"big-{i}"
        try:
            await client.call("kv.set", {"namespace": NAMESPACE, "key": key, "value": big})
        except RemoteError as e:
            report.first_error = _error(e)
            return
        report.acked[key] = big
    raise RuntimeError("the disk never filled up")


async def _still_full(client: AsyncClient, report: DiskFull, attempts: int) -> None:
    """More writes on the full disk, big and small: each is acked or refused disk_full."""
    for i in range(attempts):
        value = "y" * (50_000 if i % 2 else 10)
        key = f"more-{i}"
        try:
            await client.call("kv.set", {"namespace": NAMESPACE, "key": key, "value": value})
        except RemoteError as e:
            report.after_full[e.kind] = report.after_full.get(e.kind, 0) + 1
        else:
            report.acked[key] = value
            report.after_full["acked"] = report.after_full.get("acked", 0) + 1


async def _reads(client: AsyncClient, report: DiskFull) -> bool:
    first = await client.call("kv.get", {"namespace": NAMESPACE, "key": "small-0"})
    listed = await client.call("kv.list", {"namespace": NAMESPACE, "limit": 1})
    status = await client.call("daemon.status")
    return bool(
        first["value"] == "s" * 10
        and listed["total"] == len(report.acked)
        and status["state"] == "ready"
    )


async def _backup_on_full_disk(client: AsyncClient, report: DiskFull, data_dir: Path) -> None:
    backups = data_dir / "backups"
    before = set(os.listdir(backups)) if backups.exists() else set()
    try:
        report.backup_full = {"ok": await client.call("db.backup")}
    except RemoteError as e:
        report.backup_full = _error(e)
    after = set(os.listdir(backups)) if backups.exists() else set()
    failed = backups / "failed"
    report.backups_left = sorted(after - before) + (
        [f"failed/{n}" for n in os.listdir(failed)] if failed.exists() else []
    )


async def _checkpoint_on_full_disk(client: AsyncClient, report: DiskFull, filler: Path) -> None:
    job = await _job(client, "maintenance")
    report.maintenance_full = job.get("kind", "") if job["status"] == "not run" else job["status"]
    # Room for the job's own rows, not for the checkpoint (the file would have to grow by
    # the whole WAL): what does a checkpoint do on a full disk, and is its failure recorded?
    os.truncate(filler, max(0, os.stat(filler).st_size - 256 * 1024))
    # A failed run is recorded within milliseconds; one still `running` after 3 s is stuck.
    report.checkpoint_full = await _job(client, "maintenance", timeout=3.0)


async def _restart_on_full_disk(
    subject: Subject, report: DiskFull, data_dir: Path, filler: Path
) -> None:
    """Full again: a graceful stop, a start on the full disk, reads, then space and a write."""
    fill(filler, free_bytes(data_dir))
    report.full_stop_code = await asyncio.to_thread(subject.stop)
    await asyncio.to_thread(subject.start)
    client = await AsyncClient.connect(subject.socket_path)
    try:
        report.full_restart_reads_ok = await _reads(client, report)
        os.unlink(filler)
        value = "after restart"
        await client.call("kv.set", {"namespace": NAMESPACE, "key": "restarted", "value": value})
        report.acked["restarted"] = value
    finally:
        await client.close()


async def disk_full_scenario(subject: Subject, data_dir: Path, filler: Path) -> DiskFull:
    """`subject` started with its data folder on a small tmpfs (`data_dir`); `filler` beside
    the database takes all but 1 MiB, then 64 KiB values fill the rest."""
    report = DiskFull()
    process = subject.process
    assert process is not None
    client = await AsyncClient.connect(subject.socket_path)
    try:
        for i in range(20):
            value = "s" * 10
            await client.call(
                "kv.set", {"namespace": NAMESPACE, "key": f"small-{i}", "value": value}
            )
            report.acked[f"small-{i}"] = value
        fill(filler, max(0, free_bytes(data_dir) - (1 << 20)))
        await _fill_until_full(client, report, 64 * 1024)
        await _still_full(client, report, 10)
        report.wal_full = wal_bytes(subject.db_path)
        report.db_full = os.stat(subject.db_path).st_size
        report.reads_ok = await _reads(client, report)
        report.health = await client.call("db.health")
        report.check_full = await client.call("db.check")
        await _backup_on_full_disk(client, report, data_dir)
        await _checkpoint_on_full_disk(client, report, filler)
        os.unlink(filler)
        big = "z" * 64 * 1024
        await client.call("kv.set", {"namespace": NAMESPACE, "key": "resumed", "value": big})
        report.acked["resumed"] = big
        report.resumed = process.poll() is None  # the same process: no restart
        if report.checkpoint_full.get("status") == "running":
            # Its failure could not be written on the full disk: once space is back, the
            # scheduler writes it (retrying after 1 s, 5 s, 30 s…).
            report.checkpoint_full = await _until_ended(client, report.checkpoint_full, 10.0)
        report.checkpoint_after = await _job(client, "maintenance")
        report.wal_after = wal_bytes(subject.db_path)
    finally:
        await client.close()
    await _restart_on_full_disk(subject, report, data_dir, filler)
    report.exit_code = await asyncio.to_thread(subject.stop)
    report.final = check_files(subject.db_path, report.acked, set(report.acked))
    return report


# --- the benchmark ----------------------------------------------------------------------------
def _pct(values: list[float], p: float, fmt: Callable[[float], str]) -> str:
    return fmt(percentile(values, p)) if values else "n/a"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _kib(n: float) -> str:
    return f"{n / 1024:,.0f} KiB"


def kill_table(run: KillRun, max_delay_s: float) -> Table:
    cycles = run.cycles
    ledger = run.ledger
    present = run.final.present
    written = len(ledger.cut & present)
    refused: dict[str, int] = {}
    for kind in ledger.refused.values():
        refused[kind] = refused.get(kind, 0) + 1
    table = Table(
        f"kill: SIGKILL under load, {len(cycles)} cycles x {run.clients} clients "
        f"(durable kv.set, each key sent once; kill 0-{max_delay_s:g} s after writes flow)",
        ["metric", "goal", "measured"],
    )
    table.add("writes acknowledged (all cycles)", "", f"{len(ledger.acked):,}")
    table.add("acknowledged writes lost", "0", str(run.lost))
    bad = sum(1 for c in cycles if c.check.integrity != ["ok"]) + (run.final.integrity != ["ok"])
    table.add("integrity_check not ok (after each kill, and at the end)", "0", str(bad))
    for name, what in (
        ("twice", "keys there twice (more than one kv.set event)"),
        ("wrong", "keys there with another value than sent"),
        ("phantom", "keys there that were never sent"),
        ("unlogged", "rows without their event or events without their row"),
    ):
        found = {k for c in cycles for k in getattr(c.check, name)} | set(getattr(run.final, name))
        table.add(what, "0", str(len(found)))
    table.add("answered with an error, yet written", "0", str(run.refused_yet_written))
    table.add(
        "in flight at a kill (sent, never answered)",
        "may or may not be there",
        f"{len(ledger.cut):,}: {written:,} written, {len(ledger.cut) - written:,} not",
    )
    in_flight = [float(c.in_flight) for c in cycles]
    table.add(
        "requests pending at the instant of each kill",
        "",
        f"p50 {median(in_flight):g}, min {min(in_flight):g}, max {max(in_flight):g}",
    )
    acked = [float(c.acked_before) for c in cycles]
    table.add(
        "writes acknowledged between restart and kill",
        "",
        f"p50 {median(acked):,.0f}, min {min(acked):,.0f}, max {max(acked):,.0f}",
    )
    wal = [float(c.wal_bytes) for c in cycles]
    table.add("WAL left by the kill", "", f"p50 {_kib(median(wal))}, max {_kib(max(wal))}")
    restart = [c.restart_s for c in cycles]
    table.add(
        "restart to ready (WAL recovery, quick_check)",
        "",
        f"p50 {_pct(restart, 50, _s)}, p99 {_pct(restart, 99, _s)}",
    )
    table.add(
        "answered with an error (`starting` until ready; the client waits 10 ms, new key)",
        "",
        ", ".join(f"{k}: {n}" for k, n in sorted(refused.items())) or "none",
    )
    table.notes.append(
        f"Files checked read-only after each kill, before the restart; {run.seconds:.0f} s in "
        "all. Cycles with a problem: "
        + (
            ", ".join(
                f"{i + 1}: {describe(c.check)}" for i, c in enumerate(cycles) if not c.check.ok
            )
            or "none"
        )
        + f"; final check after a graceful stop: {describe(run.final)}."
    )
    return table


def _term_rows(runs: list[TermCycle], stop_timeout_s: float) -> list[tuple[str, str, str]]:
    """(metric, goal, measured) for one group of SIGTERM cycles."""
    n = len(runs)
    acked = sum(len(r.ledger.acked) for r in runs)
    lost = sum(len(r.check.missing) for r in runs)
    others: dict[str, int] = {}
    for r in runs:
        for kind, count in r.other_errors.items():
            others[kind] = others.get(kind, 0) + count
    exits = [r.exit_s for r in runs]
    return [
        ("acknowledged writes kept", "all", f"{acked - lost:,} of {acked:,}"),
        ("answered shutting_down", "", f"{sum(r.shutting_down for r in runs):,}"),
        ("answered shutting_down, yet written", "0", str(sum(r.refused_yet_written for r in runs))),
        ("answered another error", "0", ", ".join(f"{k}: {c}" for k, c in others.items()) or "0"),
        (
            "unanswered: the connection closed with the request pending",
            "0",
            f"{sum(r.unanswered for r in runs):,} (in {sum(1 for r in runs if r.unanswered)} of "
            f"{n} cycles)",
        ),
        (
            "... on a reset connection (the daemon closed with requests received, unread)",
            "0",
            f"{sum(r.unanswered_unread for r in runs):,}",
        ),
        ("clients still waiting after the exit", "0", str(sum(r.hung for r in runs))),
        (
            "not sent (the connection had already closed)",
            "",
            str(sum(r.ledger.not_sent for r in runs)),
        ),
        (
            "exit time after SIGTERM",
            f"< {stop_timeout_s:g} s",
            f"p50 {_pct(exits, 50, _s)}, p99 {_pct(exits, 99, _s)}, max {_s(max(exits))}",
        ),
        ("exit code 0", "all", f"{sum(r.exit_code == 0 for r in runs)}/{n}"),
        (
            "integrity_check ok after exit",
            "all",
            f"{sum(r.check.integrity == ['ok'] for r in runs)}/{n}",
        ),
    ]


def term_table(groups: dict[int, list[TermCycle]], depth: int, stop_timeout_s: float) -> Table:
    """One column per number of clients."""
    cycles = len(next(iter(groups.values())))
    table = Table(
        f"term: SIGTERM under load, {cycles} cycles per column, {depth} requests in flight per "
        f"client (durable kv.set), stop_timeout_s = {stop_timeout_s:g}",
        ["metric", "goal", *(f"{clients} clients" for clients in groups)],
    )
    columns = [_term_rows(runs, stop_timeout_s) for runs in groups.values()]
    for i, (metric, goal, _) in enumerate(columns[0]):
        table.add(metric, goal, *(column[i][2] for column in columns))
    table.notes.append(
        "Each client stops at its first error or closed connection, as a real one would. "
        "Unanswered requests come in bursts and vary a lot from run to run: most cycles have "
        "none, some have dozens (connections the daemon closed just after answering their "
        "last request, while the client was sending the next)."
    )
    return table


def disk_table(reports: list[DiskFull], size_mb: int) -> Table:
    n = len(reports)
    first = reports[0]

    def count(pred: Callable[[DiskFull], bool]) -> str:
        return f"{sum(1 for r in reports if pred(r))}/{n}"

    table = Table(
        f"disk full: the data folder on a {size_mb} MiB tmpfs, a filler file beside the "
        f"database, then 64 KiB kv.set values until SQLite says full ({n} runs)",
        ["metric", "goal", "measured"],
    )
    table.add(
        "first failing write",
        "disk_full, -32007",
        count(
            lambda r: (
                r.first_error.get("kind") == "disk_full" and r.first_error.get("code") == -32007
            )
        )
        + f" ({first.first_error.get('kind')} {first.first_error.get('code')}: "
        f"{first.first_error.get('message', '')[:60]}…)",
    )
    table.add(
        "10 more writes on the full disk",
        "acked or disk_full",
        ", ".join(f"{k}: {v}" for k, v in first.after_full.items()),
    )
    table.add(
        "reads answer on the full disk (kv.get, kv.list, status)",
        f"{n}/{n}",
        count(lambda r: r.reads_ok),
    )
    table.add(
        "db.check on the full disk",
        "ok",
        count(lambda r: bool(r.check_full.get("ok"))),
    )
    table.add(
        "WAL / database file when full",
        "",
        f"{_kib(first.wal_full)} / {_kib(first.db_full)}",
    )
    table.add(
        "db.backup on the full disk",
        "storage or disk_full error, no file left",
        f"{first.backup_full.get('kind', 'succeeded')}: "
        f"{str(first.backup_full.get('message', ''))[:70]}…; left in backups/: "
        f"{first.backups_left or 'nothing'}",
    )
    table.add(
        "jobs.run maintenance (checkpoint) on the full disk",
        "a clear error",
        first.maintenance_full,
    )
    cp = first.checkpoint_full
    table.add(
        "checkpoint with room for its job row only",
        "fails disk_full, recorded",
        f"job {cp.get('status')}; error: {str(cp.get('error') or cp.get('message'))[:60]}",
    )
    table.add(
        "write after deleting the filler, same daemon process",
        f"{n}/{n}",
        count(lambda r: r.resumed),
    )
    table.add(
        "checkpoint once space returned; WAL after it",
        "completed, a few pages",
        f"{first.checkpoint_after.get('status')}, {_kib(first.wal_after)}",
    )
    table.add(
        "SIGTERM on a full disk; start again on it; reads",
        f"exit 0, {n}/{n}",
        f"exit {first.full_stop_code}, "
        + count(lambda r: r.full_stop_code == 0 and r.full_restart_reads_ok),
    )
    table.add(
        "after a graceful stop: acknowledged kept, integrity ok, exit 0",
        f"{n}/{n}",
        count(lambda r: r.final is not None and r.final.ok and r.exit_code == 0),
    )
    return table


def _kill_bench(quick: bool, rng: random.Random) -> tuple[Table, bool]:
    cycles, clients, delay = (5, 16, 0.3) if quick else (KILL_CYCLES, KILL_CLIENTS, 1.0)

    def progress(i: int, c: KillCycle) -> None:
        print(
            f"kill {i + 1}/{cycles}: {c.acked_before} acked, {c.in_flight} in flight, "
            f"WAL {_kib(c.wal_bytes)}, restart {_s(c.restart_s)}: {describe(c.check)}",
            flush=True,
        )

    with common.Daemon() as daemon:
        run = asyncio.run(
            kill_cycles(
                daemon,
                clients=clients,
                cycles=cycles,
                max_delay_s=delay,
                rng=rng,
                on_cycle=progress,
            )
        )
    return kill_table(run, delay), run.ok and run.lost == 0


def term_ok(r: TermCycle) -> bool:
    return bool(
        r.check.ok
        and r.unanswered == 0
        and r.hung == 0
        and not r.other_errors
        and r.refused_yet_written == 0
        and r.exit_code == 0
        and r.exit_s < STOP_TIMEOUT_S
    )


def _term_bench(quick: bool, rng: random.Random) -> tuple[Table, bool]:
    cycles, delay = (3, 0.3) if quick else (TERM_CYCLES, 1.0)
    groups: dict[int, list[TermCycle]] = {}
    for clients in TERM_CLIENTS:
        runs = groups[clients] = []
        with common.Daemon() as daemon:
            for i in range(cycles):
                if i:
                    daemon.start()
                r = asyncio.run(
                    term_cycle(
                        daemon,
                        i,
                        clients=clients,
                        depth=TERM_DEPTH,
                        max_delay_s=delay,
                        stop_timeout_s=STOP_TIMEOUT_S,
                        rng=rng,
                    )
                )
                runs.append(r)
                print(
                    f"term {clients} clients {i + 1}/{cycles}: {len(r.ledger.acked)} acked, "
                    f"{r.shutting_down} shutting_down, {r.unanswered} unanswered "
                    f"({r.unanswered_unread} on a reset), exit {r.exit_code} in "
                    f"{_s(r.exit_s)}: {describe(r.check)}",
                    flush=True,
                )
    ok = all(term_ok(r) for runs in groups.values() for r in runs)
    return term_table(groups, TERM_DEPTH, STOP_TIMEOUT_S), ok


DISK_MB = 16


def disk_run() -> DiskFull:
    daemon = common.Daemon()
    try:
        with tmpfs(daemon.root / "data", DISK_MB) as data:
            daemon.start()
            try:
                return asyncio.run(disk_full_scenario(daemon, data, data / "db" / "filler"))
            finally:
                ensure_stopped(daemon)
    finally:
        daemon.cleanup()


def checkpoint_recorded(r: DiskFull) -> bool:
    """The checkpoint that failed on the full disk is recorded as such: failed, or queued for
    a retry, with the error (not left `running`)."""
    job = r.checkpoint_full
    return job.get("status") in ("failed", "queued") and "full" in str(job.get("error"))


def disk_ok(r: DiskFull) -> bool:
    return bool(
        r.first_error.get("kind") == "disk_full"
        and r.first_error.get("code") == -32007
        and set(r.after_full) <= {"acked", "disk_full"}
        and r.reads_ok
        and r.check_full.get("ok")
        and r.backup_full.get("kind") in ("storage", "disk_full")
        and not r.backups_left
        and checkpoint_recorded(r)
        and r.resumed
        and r.full_stop_code == 0
        and r.full_restart_reads_ok
        and r.final is not None
        and r.final.ok
        and r.exit_code == 0
    )


def _disk_bench(runs: int) -> tuple[Table | str, bool]:
    reports: list[DiskFull] = []
    for i in range(runs):
        try:
            r = disk_run()
        except TmpfsUnavailable as e:
            return f"### disk full: skipped ({e})\n", True
        reports.append(r)
        print(f"disk full {i + 1}/{runs}: {'ok' if disk_ok(r) else 'NOT ok'}", flush=True)
    return disk_table(reports, DISK_MB), all(disk_ok(r) for r in reports)


def run_all(runs: int, quick: bool, seed: int | None = None) -> tuple[list[str], bool]:
    seed = seed if seed is not None else random.randrange(1 << 32)
    print(f"random seed {seed}", flush=True)
    rng = random.Random(seed)
    kill, kill_ok = _kill_bench(quick, rng)
    term, term_ok = _term_bench(quick, rng)
    disk, disk_passed = _disk_bench(1 if quick else runs)
    rendered = [t if isinstance(t, str) else t.render() for t in (kill, term, disk)]
    return rendered, kill_ok and term_ok and disk_passed


def sections(quick: bool) -> list[str]:
    """The three tables, rendered (for `python -m bench reliability`)."""
    return run_all(1, quick)[0]


def main(runs: int, quick: bool) -> int:
    """`runs` repeats the disk-full scenario; the kill and term scenarios are their own
    repetitions (50 and 20 cycles; --quick: 5 and 3)."""
    rendered, ok = run_all(runs, quick)
    print()
    for text in rendered:
        print(text)
    print("all goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.reliability_crash", description=__doc__)
    p.add_argument("--runs", type=int, default=1, help="disk-full repetitions (default 1)")
    p.add_argument("--quick", action="store_true", help="a short smoke version")
    args = p.parse_args()
    print(f"# bench reliability_crash{' --quick' if args.quick else ''}")
    print(f"machine: {common.describe_machine()}")
    print(f"code: {common.code_version()}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average before: {load}")
    sys.exit(main(args.runs, args.quick))
