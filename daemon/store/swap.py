"""Putting another file in the live database's place: restore, rollback, reset, import, repair.

Runs only while nothing has the live file open: the daemon's writer and readers are closed
(`Database.exclusive`), or the daemon is not running and its instance lock is held (`pm`
working offline). The steps, each of which can fail without losing anything:

1. the incoming file is checked (`integrity_check`) and must not be from a newer pm-agent;
2. a safety copy of the live file is kept: a verified backup (`…_before-restore.db`) when the
   live file is sound, else a byte copy (with its WAL) in the `damaged/` folder;
3. the incoming file is staged beside the live one and renamed over it (atomic), and the old
   WAL and shared-memory files go (they belong to the old file; the safety copy has them);
4. the new live file is opened, checked again, migrated (when asked), and the events
   sequence is raised so no number clients have already seen is handed out twice.

If 3 or 4 fails, the safety copy is put back and SwapError says what failed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import datetime

import msgspec

from daemon.platform import private_folders
from daemon.store import backup, connection, migrations
from daemon.store import events as events_db
from daemon.store.migrations import Migration, MigrationError

DAMAGED = "damaged databases folder"  # what the folder is called in messages
DATABASE = "database folder"


class SwapError(Exception):
    """The swap did not happen, or was undone; the message says what failed and where the
    data is."""


class Swapped(msgspec.Struct, kw_only=True):
    safety_copy: str | None  # where the previous live file was kept (None: there was none)
    schema_version: int  # of the live file now
    migrated: list[str]  # migrations applied after the swap


def replace_live(
    db_path: str,
    incoming: str,
    *,
    backups_dir: str,
    damaged_dir: str,
    now: datetime,
    shipped: list[Migration],
    migrate: bool,
    label: str = "before-restore",
    events_seen: int = 0,
    safety_copy: str | None = None,
) -> Swapped:
    """Make `incoming` the live database (it is copied; the caller's file stays).
    `safety_copy`: the live file was already copied there (a repair keeps the damaged one)."""
    private_folders.check(os.path.dirname(db_path), what=DATABASE, create=False)
    found = backup.problems(incoming)
    if found:
        raise SwapError(
            f"{os.path.basename(incoming)} is damaged ({found[0]}); nothing was changed"
        )
    _refuse_newer(incoming, shipped)
    high_water = max(events_seen, _events_high_water(db_path))
    safety = safety_copy or keep_safety_copy(db_path, backups_dir, damaged_dir, now, label)
    staged = db_path + ".incoming"
    backup.remove_database(staged)
    try:
        backup.copy_file(incoming, staged)
        os.chmod(staged, 0o600)
        backup.remove_database(db_path)
        os.replace(staged, db_path)
        backup.sync_dir(os.path.dirname(db_path))
        version, applied = _finish(db_path, shipped, migrate=migrate, high_water=high_water)
    except Exception as e:
        backup.remove_database(staged)
        _put_back(safety, db_path)
        where = f"; the previous database was put back (a copy is kept at {safety})"
        if safety is None:
            where = "; there was no previous database"
        raise SwapError(f"{_describe(e)}{where}") from e
    return Swapped(safety_copy=safety, schema_version=version, migrated=applied)


def reinstate(db_path: str, rescued: str) -> None:
    """Put a copy rescued from the open connection where the deleted file was (nothing holds
    the path open). What the old connections left by name (-wal, -shm) belongs to the deleted
    file and must not be applied to this one: it goes first."""
    if os.path.exists(db_path):
        raise SwapError(
            f"a new file appeared at {db_path} while the deleted one was being rescued; "
            f"the rescued copy is kept as {rescued}"
        )
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(db_path + suffix)
    os.replace(rescued, db_path)
    backup.sync_dir(os.path.dirname(db_path))


def empty_database(path: str, shipped: list[Migration]) -> None:
    """A new database file at the current schema and nothing in it (what `db.reset` swaps in)."""
    conn = connection.open_writer(path, synchronous="FULL", busy_timeout_ms=5000)
    try:
        migrations.migrate(conn, shipped)
        conn.execute("PRAGMA journal_mode = DELETE").fetchone()
    finally:
        conn.close()
    os.chmod(path, 0o600)


def keep_safety_copy(
    db_path: str, backups_dir: str, damaged_dir: str, now: datetime, label: str
) -> str | None:
    """A copy of the live file before it is replaced or repaired; None if there is no file."""
    if not os.path.exists(db_path):
        return None
    if not backup.problems(db_path):
        with contextlib.suppress(backup.BackupError):
            return backup.take(db_path, backups_dir, now, label).path
    # Damaged (or its backup would not verify): keep the bytes exactly as they are.
    folder = private_folders.check(damaged_dir, what=DAMAGED)
    dest = os.path.join(folder, backup.free_name(folder, now, label))
    backup.copy_file(db_path, dest)
    if os.path.exists(db_path + "-wal"):
        backup.copy_file(db_path + "-wal", dest + "-wal")
    backup.sync_dir(folder)
    return dest


def _put_back(safety: str | None, db_path: str) -> None:
    backup.remove_database(db_path)
    if safety is None:
        return
    backup.copy_file(safety, db_path)
    if os.path.exists(safety + "-wal"):
        backup.copy_file(safety + "-wal", db_path + "-wal")
    backup.sync_dir(os.path.dirname(db_path))


def _finish(
    db_path: str, shipped: list[Migration], *, migrate: bool, high_water: int
) -> tuple[int, list[str]]:
    found = backup.problems(db_path, quick=True)
    if found:
        raise SwapError(f"the swapped-in file failed its check: {found[0]}")
    conn = connection.open_writer(db_path, synchronous="FULL", busy_timeout_ms=5000)
    try:
        applied = migrations.migrate(conn, shipped) if migrate else []
        conn.execute("BEGIN IMMEDIATE")
        events_db.raise_high_water(conn, high_water)
        conn.execute("COMMIT")
        version = migrations.schema_version(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    return version, [m.filename for m in applied]


def _refuse_newer(path: str, shipped: list[Migration]) -> None:
    version = backup.schema_version_of(path)
    newest = max((m.version for m in shipped), default=0)
    if version is not None and version > newest:
        raise SwapError(
            f"{os.path.basename(path)} is at schema version {version}, newer than this "
            f"pm-agent knows (up to {newest}); upgrade pm-agent to use it. Nothing was changed."
        )


def _events_high_water(db_path: str) -> int:
    """The live file's events sequence, when it can be read (0 otherwise)."""
    if not os.path.exists(db_path):
        return 0
    try:
        conn = backup.read_only(db_path)
    except sqlite3.Error:
        return 0
    try:
        return events_db.last_seq(conn)
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def _describe(error: Exception) -> str:
    if isinstance(error, MigrationError | SwapError):
        return str(error)
    if isinstance(error, sqlite3.Error):
        return f"SQLite: {error}"
    if isinstance(error, OSError):
        return f"{error.strerror or error} ({error.filename})"
    return f"{type(error).__name__}: {error}"
