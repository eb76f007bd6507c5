"""A full disk: the data folder on a small tmpfs, filled until SQLite says full; what writes,
reads, checkpoints, backups and restarts do then, and once space returns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Table
from bench.crash_shared import (
    NAMESPACE,
    Check,
    Subject,
    _kib,
    check_files,
    wal_bytes,
)
from client.aio import AsyncClient
from client.errors import RemoteError


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
