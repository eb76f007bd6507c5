"""Backups of a 200 MB database (`--quick`: 20 MB): `db.backup` vs. the sqlite3 shell's
`.backup`, and durable writes while backups run.

One daemon per benchmark (synchronous FULL, watching, rescans and every schedule off), on a
database built once: the daemon creates it (the real schema), is stopped, the file is filled
directly with sqlite3 (kv rows of ~4 KB JSON values, each with the `kv.set` event the daemon
would have written beside it, in ~2 MB transactions) up to the target size, checkpointed and
synced, and the daemon is started again on it. Retention is set to keep 1,000 backups, so the
daemon deletes none: the benchmark deletes them, outside the measured windows.

- Backup time: per run, the baseline `sqlite3 DBFILE ".backup OUT"` (the command-line shell,
  a separate process, on the live file the daemon has open) and our `db.backup` over RPC, in
  alternating order, after one untimed warm-up of each (so both read the file from a warm page
  cache). Ours reports `copy_ms` (the copy and its fsync, timed in the daemon) and `verify_ms`
  (integrity_check); the whole call is its RPC wall time (copy, verify, rename, retention).
  Every output is deleted right after it is measured.
- Writes during backups: a separate client process does sequential durable `kv.set` calls
  (small values, one on the wire at a time) and times each one; per run, an idle window with
  no backup, then `db.backup` calls back to back for a while; that window's backups are
  deleted after it (unlinking a 200 MB file stalls durable writes as well, but that is
  retention's cost, not the backup's). The p99 of each window is taken per run; the slow calls
  are placed in a backup's copy or verify phase from its start, copy_ms and verify_ms.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import common
from bench.backup_db import MB, BackupDaemon, Built, fill, our_backup
from bench.backup_writes import SLOW_S, Latency, latency_run
from bench.common import Table, fmt_ratio, median, percentile, spread
from client.sync import Client
from daemon.store import backup as backup_files

FULL_MB = 200
QUICK_MB = 20
GOAL_COPY_RATIO = 1.5
GOAL_P99_RATIO = 2.0
CALL_TIMEOUT_S = 600.0


# --- backup time ---------------------------------------------------------------------------


def shell_path() -> str:
    found = shutil.which("sqlite3")
    if found is None:
        raise SystemExit(
            "the baseline needs the sqlite3 command-line shell: apt-get install -y sqlite3"
        )
    return found


def shell_version(shell: str) -> str:
    out = subprocess.run(
        [shell, "--version"], capture_output=True, text=True, check=True, env=common.child_env()
    ).stdout
    return " ".join(out.split()[:2])


def shell_startup(shell: str, times: int = 5) -> float:
    """The shell's own start and exit (no database work), median seconds."""
    walls = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run(
            [shell, ":memory:", "SELECT 1;"],
            capture_output=True,
            check=True,
            env=common.child_env(),
        )
        walls.append(time.perf_counter() - started)
    return median(walls)


@dataclass
class Timing:
    shell_s: float  # `sqlite3 DBFILE ".backup OUT"`: wall time of the whole process
    shell_bytes: int
    copy_s: float  # ours: copy + fsync (copy_ms)
    verify_s: float  # ours: integrity_check (verify_ms)
    call_s: float  # ours: the whole db.backup call, RPC wall time
    our_bytes: int
    shell_first: bool


def shell_backup(shell: str, db_path: Path, out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [shell, str(db_path), f".backup '{out}'"],
        capture_output=True,
        text=True,
        env=common.child_env(),
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stderr.strip() or not out.exists():
        raise RuntimeError(f"sqlite3 .backup failed ({done.returncode}): {done.stderr.strip()}")
    size = out.stat().st_size
    backup_files.remove_database(str(out))
    return elapsed, size


def timing_run(daemon: BackupDaemon, client: Client, shell: str, shell_first: bool) -> Timing:
    out = daemon.root / "shell-backup.db"
    if shell_first:
        shell_s, shell_bytes = shell_backup(shell, daemon.db_path, out)
        made, call_s = our_backup(client)
    else:
        made, call_s = our_backup(client)
        shell_s, shell_bytes = shell_backup(shell, daemon.db_path, out)
    return Timing(
        shell_s=shell_s,
        shell_bytes=shell_bytes,
        copy_s=float(made["copy_ms"]) / 1000,
        verify_s=float(made["verify_ms"]) / 1000,
        call_s=call_s,
        our_bytes=int(made["bytes"]),
        shell_first=shell_first,
    )


# --- the benchmark -------------------------------------------------------------------------


def main(runs: int, quick: bool) -> int:
    target = (QUICK_MB if quick else FULL_MB) * MB
    idle_s, during_s = (1.0, 1.0) if quick else (4.0, 4.0)
    shell = shell_path()
    version = shell_version(shell)
    startup = shell_startup(shell)
    print(
        f"baseline: {shell}, SQLite {version} (the daemon's Python sqlite3 module: SQLite "
        f"{sqlite3.sqlite_version}); the shell's start-up and exit alone: {_ms(startup)}",
        flush=True,
    )
    with BackupDaemon() as daemon:
        daemon.stop_checked()
        built = fill(daemon.db_path, target)
        daemon.start()
        print(f"database: {built.describe()}", flush=True)
        with Client(daemon.socket_path, timeout=CALL_TIMEOUT_S).connect() as client:
            warm = timing_run(daemon, client, shell, shell_first=True)  # warm-up, not counted
            print(
                f"warm-up: shell .backup {_ms(warm.shell_s)}, db.backup copy "
                f"{_ms(warm.copy_s)} (whole call {_ms(warm.call_s)})",
                flush=True,
            )
            timings: list[Timing] = []
            for i in range(runs):
                t = timing_run(daemon, client, shell, shell_first=i % 2 == 1)
                timings.append(t)
                print(
                    f"backup {i + 1}/{runs} ({'shell' if t.shell_first else 'ours'} first): "
                    f"shell .backup {_ms(t.shell_s)}; db.backup copy {_ms(t.copy_s)} "
                    f"({t.copy_s / t.shell_s:.2f}x), verify {_ms(t.verify_s)}, "
                    f"whole call {_ms(t.call_s)}",
                    flush=True,
                )
            latencies: list[Latency] = []
            for i in range(runs):
                r = latency_run(daemon, client, i, idle_s, during_s)
                latencies.append(r)
                print(
                    f"writes {i + 1}/{runs}: kv.set p99 idle {_ms(percentile(r.idle, 99))} "
                    f"({len(r.idle):,} calls), during {len(r.made)} backups "
                    f"{_ms(percentile(r.during, 99))} ({len(r.during):,} calls, max "
                    f"{_ms(max(r.during, default=0.0))}; p99 in the copies "
                    f"{_ms(percentile(r.in_copy, 99))}, in the verifies "
                    f"{_ms(percentile(r.in_verify, 99))}); db.health commit_ms_p99 "
                    f"{r.commit_p99_idle_ms:.2f} -> {r.commit_p99_during_ms:.2f} ms",
                    flush=True,
                )
        daemon.stop_checked()
    fsync = common.fsync_latency(str(daemon.root.parent))
    print()
    print(report(built, version, startup, timings, latencies, idle_s, during_s, fsync))
    ok = all(t.shell_bytes > 0 and t.our_bytes > 0 for t in timings) and all(
        r.idle and r.during for r in latencies
    )
    return 0 if ok else 1


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.2f} ms" if seconds < 1 else f"{seconds:,.3f} s"


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _mb(value: float) -> str:
    return f"{value / MB:,.1f} MB"


def report(
    built: Built,
    version: str,
    startup: float,
    timings: list[Timing],
    latencies: list[Latency],
    idle_s: float,
    during_s: float,
    fsync: tuple[float, float],
) -> str:
    table = Table(
        f"backup: a {built.bytes / MB:,.0f} MB database, {len(timings)} runs "
        f"(db.backup vs. sqlite3 .backup; durable kv.set while backups run)",
        ["metric", "baseline", "ours", "ours/baseline", "goal"],
    )

    def add(
        label: str,
        base: list[float],
        ours: list[float],
        fmt: Callable[[float], str],
        goal: str = "",
    ) -> None:
        table.add(
            label,
            spread(base, fmt),
            spread(ours, fmt),
            fmt_ratio(median(ours), median(base)),
            goal,
        )

    shell = [t.shell_s for t in timings]
    copy = [t.copy_s for t in timings]
    copy_ratio = median(copy) / median(shell)
    copy_p99_ratio = percentile(copy, 99) / percentile(shell, 99)
    add(
        "backup copy + fsync: sqlite3 .backup (whole process) vs. db.backup copy_ms",
        shell,
        copy,
        _ms,
        f"<= {GOAL_COPY_RATIO:g}x: {common.met(copy_ratio <= GOAL_COPY_RATIO)}",
    )
    table.add(
        "backup copy + fsync: p99 over runs",
        _ms(percentile(shell, 99)),
        _ms(percentile(copy, 99)),
        f"{copy_p99_ratio:.2f}x",
        f"<= {GOAL_COPY_RATIO:g}x: {common.met(copy_p99_ratio <= GOAL_COPY_RATIO)}",
    )
    table.add(
        "verify: integrity_check of the copy (db.backup verify_ms)",
        "none",
        spread([t.verify_s for t in timings], _ms),
        "",
        "",
    )
    add(
        "whole db.backup call (copy, verify, rename, retention; RPC wall) vs. sqlite3 .backup",
        shell,
        [t.call_s for t in timings],
        _ms,
    )
    add(
        "backup file size",
        [float(t.shell_bytes) for t in timings],
        [float(t.our_bytes) for t in timings],
        _mb,
    )
    idle_p99 = [percentile(r.idle, 99) for r in latencies]
    during_p99 = [percentile(r.during, 99) for r in latencies]
    p99_ratio = median(during_p99) / median(idle_p99)
    worst = max(latencies, key=lambda r: percentile(r.during, 99))
    worst_idle, worst_during = percentile(worst.idle, 99), percentile(worst.during, 99)
    worst_ratio = worst_during / worst_idle
    add(
        "durable kv.set p50: idle (baseline) vs. during back-to-back backups",
        [percentile(r.idle, 50) for r in latencies],
        [percentile(r.during, 50) for r in latencies],
        _ms,
    )
    add(
        "durable kv.set p99: idle (baseline) vs. during back-to-back backups",
        idle_p99,
        during_p99,
        _ms,
        f"<= {GOAL_P99_RATIO:g}x: {common.met(p99_ratio <= GOAL_P99_RATIO)}",
    )
    table.add(
        "durable kv.set p99: the worst run (the highest p99 during backups), its idle p99 beside",
        _ms(worst_idle),
        _ms(worst_during),
        f"{worst_ratio:.2f}x",
        f"(<= {GOAL_P99_RATIO:g}x: {common.met(worst_ratio <= GOAL_P99_RATIO)})",
    )
    add(
        "diagnostic: kv.set p99 idle vs. while a copy (and its fsync) ran",
        idle_p99,
        [percentile(r.in_copy, 99) for r in latencies],
        _ms,
    )
    add(
        "diagnostic: kv.set p99 idle vs. while an integrity_check ran",
        idle_p99,
        [percentile(r.in_verify, 99) for r in latencies],
        _ms,
    )
    add(
        "durable kv.set max",
        [max(r.idle) for r in latencies],
        [max(r.during, default=0.0) for r in latencies],
        _ms,
    )
    slow = {k: sum(r.slow[k] for r in latencies) for k in latencies[0].slow}
    table.add(
        f"kv.set calls over {_ms(SLOW_S)} (all runs): idle vs. during the backups",
        f"{slow['idle']:,} of {sum(len(r.idle) for r in latencies):,}",
        f"{slow['copy'] + slow['verify'] + slow['rest']:,} of "
        f"{sum(len(r.during) for r in latencies):,}: {slow['copy']:,} in a copy, "
        f"{slow['verify']:,} in a verify, {slow['rest']:,} elsewhere "
        f"({sum(len(r.made) for r in latencies):,} backups)",
        "",
        "",
    )
    add(
        "durable kv.set calls per second (one at a time)",
        [r.idle_rate for r in latencies],
        [r.during_rate for r in latencies],
        _rate,
    )
    add(
        "daemon's own writer commit_ms_p99 (db.health, last 1,024 commits) after the window",
        [r.commit_p99_idle_ms / 1000 for r in latencies],
        [r.commit_p99_during_ms / 1000 for r in latencies],
        _ms,
    )
    made = [m for r in latencies for m in r.made]
    per_run = ", ".join(str(len(r.made)) for r in latencies)
    table.notes += [
        f"Database: {built.describe()}; the daemon runs synchronous=FULL with every schedule "
        "off. Medians across runs with the range in brackets; percentiles are nearest-rank "
        f"(the p99 of {len(timings)} runs is the worst one).",
        f'Backup time: baseline `sqlite3 DBFILE ".backup OUT"`, SQLite {version} shell (its '
        f"start-up and exit alone: {_ms(startup)}, included in its figure), on the live file "
        "the daemon holds open, output on the same filesystem; ours is `db.backup` over RPC: "
        "copy_ms is the copy and its fsync, timed in the daemon. One untimed warm-up of each "
        "first (warm page cache for both), then both per run in alternating order; every "
        "output deleted after its run. The shell's .backup copies 100 pages per step and does "
        "not verify; it restarts whenever another connection writes between steps, so it is "
        "timed with no writes going.",
        f"Writes: one client process, one connection, one `kv.set` (small value, new key) at a "
        f"time; per run {idle_s:g} s idle, then db.backup calls back to back for at least "
        f"{during_s:g} s ({per_run} per run; with the writes going a copy took "
        f"{spread([m.copy_s for m in made], _ms)}, a verify "
        f"{spread([m.verify_s for m in made], _ms)}). `during` counts the calls sent between "
        "the first backup's request and the last one's reply; the copy and verify phases are "
        "placed from each call's start and its copy_ms and verify_ms. Daemon CPU during the "
        f"backups: {common.fmt_cpu([r.cpu for r in latencies])}. commit_ms_p99 is the "
        "daemon's writer COMMIT alone, read from db.health at the end of each window. "
        f"fsync after a 4 KiB append on this filesystem: p50 {_ms(fsync[0])}, p99 {_ms(fsync[1])}.",
        f"Goal copy <= {GOAL_COPY_RATIO:g}x the shell: {common.met(copy_ratio <= GOAL_COPY_RATIO)} "
        f"(median {copy_ratio:.2f}x, p99 {copy_p99_ratio:.2f}x). Goal kv.set p99 during "
        f"backups <= {GOAL_P99_RATIO:g}x idle: {common.met(p99_ratio <= GOAL_P99_RATIO)} (median "
        f"of the per-run p99s {_ms(median(during_p99))} vs. {_ms(median(idle_p99))} idle = "
        f"{p99_ratio:.2f}x; the worst run {_ms(worst_during)} vs. its own idle "
        f"{_ms(worst_idle)} = {worst_ratio:.2f}x). Load average after: {_load()} (the machine "
        "is shared: other processes' load shows as spread between runs).",
    ]
    return table.render()
