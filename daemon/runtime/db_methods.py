"""db.*: health, check, repair, reset, export, import, backup, backups, verify, restore —
the database as a whole, on the running daemon (its parts reached through the Daemon)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams, StorageError
from daemon.rpc.registry import Methods, NoParams, Params, ProgressParams
from daemon.runtime.backups import BackupMade, Restored, Verified
from daemon.runtime.care import Imported, ResetDone
from daemon.runtime.watcher import WatchStatus
from daemon.store import health as health_db
from daemon.store.backup import BackupFile
from daemon.store.care import CheckResult, RepairReport
from daemon.store.connection import Pragmas
from daemon.store.export import ExportSummary
from daemon.store.writer_stats import WriterStats

if TYPE_CHECKING:
    from daemon.runtime.lifecycle import Daemon

BACKUP_WARN_AFTER_S = 2 * 86400  # a daily backup missed twice
LOW_DISK_BYTES = 100 * 1024 * 1024


class Health(msgspec.Struct, kw_only=True):
    healthy: bool
    problems: list[str]  # about the database: any makes it unhealthy
    warnings: list[str]  # the daemon works, but less well than it could (e.g. file watching)
    path: str
    schema_version: int
    wal_mode: bool
    foreign_keys: bool
    synchronous: str
    files: health_db.FileFigures
    last_backup: BackupFile | None  # the newest good one
    last_backup_error: str | None  # why the last attempt failed, if it did
    writer: WriterStats
    watcher: WatchStatus


class ResetParams(Params, frozen=True):
    confirm: bool = False


class ExportParams(Params, frozen=True):
    format: Literal["json", "csv"] = "json"


class ImportParams(ProgressParams, frozen=True, kw_only=True):
    path: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=4096,
            description="an export (.json file or CSV folder) inside the data or Dev folder",
        ),
    ]
    shown_as: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=4096,
                description="how messages name the export: the file the user gave, when "
                "`path` is a copy of it in <data>/imports",
            ),
        ]
        | None
    ) = None


def problems_of(pragmas: Pragmas | None) -> list[str]:
    if pragmas is None:
        return ["the writer has not opened the database"]
    found = []
    if pragmas.journal_mode.lower() != "wal":
        found.append(f"journal_mode is {pragmas.journal_mode}, not wal")
    if not pragmas.foreign_keys:
        found.append("foreign keys are not enforced")
    return found


methods = Methods()


@methods("db.health")
async def health(d: Daemon, call: Call, params: NoParams) -> Health:
    """Health figures: WAL mode, foreign keys, schema version, sizes, the last backup,
    writer and watcher statistics. `healthy` is about the database; `warnings` name what
    works less well than it could, each with its fix."""
    pragmas = d.db.writer.pragmas
    files = await d.db.read(health_db.figures, d.db.path)
    problems = problems_of(pragmas)
    watcher = d.watcher.status()
    warnings = []
    if watcher.problem:
        warnings.append(f"file watching is {watcher.mode}: {watcher.problem}; fix: {watcher.fix}")
    warnings += d.database_warnings()
    free = _free_bytes(d.db.path)
    if free is not None and free < LOW_DISK_BYTES:
        warnings.append(
            f"only {free // (1024 * 1024)} MiB free where the database is; writes fail "
            "with disk_full when it runs out: free space on that disk"
        )
    try:
        last = await d.backups.newest_good()
    except StorageError as e:  # the backups folder is not one of ours (a link, say)
        last = None
        warnings.append(e.message)
    if last is None:
        warnings.append("there is no backup yet; fix: pm backup now")
    elif _age_s(last.created_at) > BACKUP_WARN_AFTER_S:
        warnings.append(f"the last backup is from {last.created_at}; fix: pm backup now")
    if d.backups.last_failure:
        warnings.append(f"the last backup failed: {d.backups.last_failure}")
    return Health(
        healthy=not problems,
        problems=problems,
        warnings=warnings,
        path=d.db.path,
        schema_version=d.db.schema_version,
        wal_mode=bool(pragmas and pragmas.journal_mode.lower() == "wal"),
        foreign_keys=bool(pragmas and pragmas.foreign_keys),
        synchronous=pragmas.synchronous if pragmas else "?",
        files=files,
        last_backup=last,
        last_backup_error=d.backups.last_failure,
        writer=d.db.writer_stats(),
        watcher=watcher,
    )


@methods("db.check")
async def check(d: Daemon, call: Call, params: NoParams) -> CheckResult:
    """integrity_check and foreign_key_check, with the findings (up to 100 of each)."""
    return await d.care.check()


@methods("db.repair")
async def repair(d: Daemon, call: Call, params: ProgressParams) -> RepairReport:
    """Repair, with `$/progress`: a sound file gets REINDEX and its full-text indexes
    rebuilt; a damaged one is kept in `damaged/`, then REINDEX, or when table pages are
    unreadable, everything readable is recovered into a new file that replaces it (the
    report says how many rows of each table were recovered and lost)."""
    return await d.care.repair(call.progress)


@methods("db.reset")
async def reset(d: Daemon, call: Call, params: ResetParams) -> ResetDone:
    """Delete every record: an empty database at the current schema. Needs `confirm:
    true`; the database it replaces is kept as a `…_before-reset.db` backup first."""
    if not params.confirm:
        raise InvalidParams(
            "db.reset deletes every record; pass confirm: true to go ahead "
            "(a backup of everything is taken first)"
        )
    return await d.care.reset()


@methods("db.export")
async def export(d: Daemon, call: Call, params: ExportParams) -> ExportSummary:
    """Every table to `<data>/exports/`: one JSON file, or a folder of CSV files (one per
    table, with manifest.json). Read from one snapshot while writes go on. The folder
    keeps the newest three exports; older ones are removed."""
    return await d.care.export(params.format)


@methods("db.import")
async def import_(d: Daemon, call: Call, params: ImportParams) -> Imported:
    """Replace the database with an export (JSON file or CSV folder), with `$/progress`.

    The export is validated and built into a new file first (an older schema is
    migrated); nothing changes if anything is wrong. Its rows are data: each is held to
    the limits the API enforces, and a project outside the Dev folder is kept only as not
    yet confirmed (not read until `projects.register`). The database it replaces is kept
    as a `…_before-import.db` backup. All or nothing."""
    return await d.care.import_(params.path, call.progress, params.shown_as)


BackupName = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=255, description="a backup's file name, as db.backups lists it"
    ),
]


class BackupNameParams(Params, frozen=True):
    name: BackupName


class RestoreParams(ProgressParams, frozen=True, kw_only=True):
    name: BackupName


class BackupList(msgspec.Struct, kw_only=True):
    folder: str
    items: list[BackupFile]  # newest first; failed ones have ok = false and a problem


@methods("db.backup")
async def backup(d: Daemon, call: Call, params: ProgressParams) -> BackupMade:
    """Back the database up now, with `$/progress`; answers once the copy is verified.

    The copy reads one snapshot from a connection of its own: writes go on meanwhile.
    Retention then removes what it no longer keeps (listed in `removed`): safety copies
    (`…_before-*.db`) are counted apart from regular backups, and the backup last restored
    is never removed.
    """
    return await d.backups.backup(call.progress)


@methods("db.backups")
async def backups(d: Daemon, call: Call, params: NoParams) -> BackupList:
    """Every backup, newest first, with its size, label and schema version; those that
    failed their check when they were made are listed with `ok: false`."""
    return BackupList(folder=d.backups.folder, items=await d.backups.list())


@methods("db.verify")
async def verify(d: Daemon, call: Call, params: BackupNameParams) -> Verified:
    """Run `integrity_check` on one backup now. A damaged one is set aside in `failed/`
    (`moved_to`): listed as damaged from then on, never restored or counted by retention."""
    return await d.backups.verify(params.name)


@methods("db.restore")
async def restore(d: Daemon, call: Call, params: RestoreParams) -> Restored:
    """Make a backup the live database, with `$/progress`.

    Writes and reads wait (they are not refused) while everything already queued is
    committed, the current file is kept as a `…_before-restore.db` backup, the backup is
    swapped in, checked and migrated. On any failure the current file is put back and the
    error says what failed. Subscribers get a `db.restored` event.
    """
    return await d.backups.restore(params.name, call.progress)


def _age_s(iso: str) -> float:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (datetime.now(UTC) - moment).total_seconds()


def _free_bytes(db_path: str) -> int | None:
    try:
        st = os.statvfs(os.path.dirname(db_path))
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
