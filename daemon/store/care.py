"""Checking and repairing the database file (the SQL side of db.check and db.repair).

Repair goes from the gentlest step up and stops at the first that leaves a sound file:
1. nothing wrong: REINDEX and rebuild the full-text indexes anyway (cheap, and what a user
   asking for a repair expects);
2. only indexes wrong: a byte copy of the file is kept in `damaged/`, then REINDEX;
3. table pages unreadable: everything readable is recovered into a new file (daemon.store.salvage)
   that is swapped in; the report says what was lost, and the damaged file stays in `damaged/`.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from datetime import datetime
from typing import Literal

import msgspec

from daemon.store import backup, connection, salvage, swap
from daemon.store.migrations import Migration


class ForeignKeyFault(msgspec.Struct, kw_only=True):
    table: str
    rowid: int | None
    parent: str
    constraint: int  # the foreign key's index in the table (PRAGMA foreign_key_list)


class CheckResult(msgspec.Struct, kw_only=True):
    ok: bool
    integrity: list[str]  # integrity_check's findings; [] when sound
    foreign_keys: list[ForeignKeyFault]  # rows pointing at a parent that is not there
    truncated: bool  # more findings than `limit` were there


class RepairReport(msgspec.Struct, kw_only=True):
    action: Literal["none", "reindexed", "recovered"]
    problems_before: list[str]
    problems_after: list[str]
    reindexed: bool
    fts_rebuilt: list[str]
    damaged_copy: str | None  # the damaged file as it was, when there was damage
    recovery: salvage.Recovery | None  # rows recovered and lost, when a new file was built


def check(conn: sqlite3.Connection, limit: int = 100) -> CheckResult:
    """integrity_check and foreign_key_check, with up to `limit` findings of each."""
    integrity = [str(r[0]) for r in conn.execute(f"PRAGMA integrity_check({int(limit)})")]
    if integrity == ["ok"]:
        integrity = []
    faults: list[ForeignKeyFault] = []
    truncated = len(integrity) >= limit
    for table, rowid, parent, fkid in conn.execute("PRAGMA foreign_key_check"):
        if len(faults) >= limit:
            truncated = True
            break
        faults.append(ForeignKeyFault(table=table, rowid=rowid, parent=parent, constraint=fkid))
    return CheckResult(
        ok=not integrity and not faults,
        integrity=integrity,
        foreign_keys=faults,
        truncated=truncated,
    )


def fts_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts%' ORDER BY name"
    ).fetchall()
    return [str(r[0]) for r in rows]


def reindex(conn: sqlite3.Connection) -> list[str]:
    """REINDEX everything and rebuild every full-text index; returns the FTS tables rebuilt.
    Runs outside a transaction on a read-write connection."""
    conn.execute("REINDEX")
    rebuilt = fts_tables(conn)
    for name in rebuilt:
        quoted = connection.quote(name)
        conn.execute(f"INSERT INTO {quoted}({quoted}) VALUES ('rebuild')")
    return rebuilt


def repair_file(
    db_path: str,
    *,
    backups_dir: str,
    damaged_dir: str,
    now: datetime,
    shipped: list[Migration],
    migrate: bool,
    events_seen: int = 0,
) -> RepairReport:
    """Repair the live file; nothing may hold it open (see daemon.store.swap)."""
    before = backup.problems(db_path)
    if before and before[0].startswith(("SQLite cannot open", "integrity_check stopped")):
        before_kind = "unreadable"
    else:
        before_kind = "damaged" if before else "sound"
    if before_kind == "sound":
        rebuilt = _reindex_file(db_path)
        return RepairReport(
            action="none", problems_before=[], problems_after=backup.problems(db_path),
            reindexed=True, fts_rebuilt=rebuilt, damaged_copy=None, recovery=None,
        )  # fmt: skip
    damaged_copy = swap.keep_safety_copy(db_path, backups_dir, damaged_dir, now, "damaged")
    if before_kind == "damaged":
        try:
            rebuilt = _reindex_file(db_path)
        except sqlite3.Error:
            rebuilt = []
        else:
            after = backup.problems(db_path)
            if not after:
                return RepairReport(
                    action="reindexed", problems_before=before, problems_after=[],
                    reindexed=True, fts_rebuilt=rebuilt, damaged_copy=damaged_copy,
                    recovery=None,
                )  # fmt: skip
    source = damaged_copy or db_path
    folder = os.path.dirname(db_path)
    fd, rebuilt_path = tempfile.mkstemp(prefix="pm-agent.recovered.", suffix=".db", dir=folder)
    os.close(fd)
    os.unlink(rebuilt_path)  # salvage creates it
    try:
        recovery = salvage.recover(source, rebuilt_path, shipped)
        swapped = swap.replace_live(
            db_path, rebuilt_path, backups_dir=backups_dir, damaged_dir=damaged_dir, now=now,
            shipped=shipped, migrate=migrate, label="damaged", events_seen=events_seen,
            safety_copy=damaged_copy,
        )  # fmt: skip
    finally:
        backup.remove_database(rebuilt_path)
    return RepairReport(
        action="recovered", problems_before=before, problems_after=backup.problems(db_path),
        reindexed=False, fts_rebuilt=[], damaged_copy=damaged_copy or swapped.safety_copy,
        recovery=recovery,
    )  # fmt: skip


def _reindex_file(db_path: str) -> list[str]:
    conn = connection.open_writer(db_path, synchronous="FULL", busy_timeout_ms=5000)
    try:
        return reindex(conn)
    finally:
        conn.close()
