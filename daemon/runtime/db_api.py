"""db.health, db.check, db.repair, db.reset, db.export, db.import."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams, StorageError
from daemon.rpc.registry import NoParams, Params, ProgressParams, rpc_method
from daemon.runtime.backups import BackupService
from daemon.runtime.care import CareService, Imported, ResetDone
from daemon.runtime.runtime_protocol import Runtime
from daemon.runtime.watcher import WatchStatus
from daemon.store import health as health_db
from daemon.store.backup import BackupFile
from daemon.store.care import CheckResult, RepairReport
from daemon.store.connection import Pragmas
from daemon.store.database import Database
from daemon.store.export import ExportSummary
from daemon.store.writer import WriterStats

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


class DbApi:
    def __init__(
        self, db: Database, runtime: Runtime, backups: BackupService, care: CareService
    ) -> None:
        self._db = db
        self._runtime = runtime
        self._backups = backups
        self._care = care

    @rpc_method("db.health")
    async def health(self, call: Call, params: NoParams) -> Health:
        """Health figures: WAL mode, foreign keys, schema version, sizes, the last backup,
        writer and watcher statistics. `healthy` is about the database; `warnings` name what
        works less well than it could, each with its fix."""
        pragmas = self._db.writer.pragmas
        files = await self._db.read(health_db.figures, self._db.path)
        problems = problems_of(pragmas)
        watcher = self._runtime.watch_status()
        warnings = []
        if watcher.problem:
            warnings.append(
                f"file watching is {watcher.mode}: {watcher.problem}; fix: {watcher.fix}"
            )
        warnings += self._runtime.database_warnings()
        free = _free_bytes(self._db.path)
        if free is not None and free < LOW_DISK_BYTES:
            warnings.append(
                f"only {free // (1024 * 1024)} MiB free where the database is; writes fail "
                "with disk_full when it runs out: free space on that disk"
            )
        try:
            last = await self._backups.newest_good()
        except StorageError as e:  # the backups folder is not one of ours (a link, say)
            last = None
            warnings.append(e.message)
        if last is None:
            warnings.append("there is no backup yet; fix: pm backup now")
        elif _age_s(last.created_at) > BACKUP_WARN_AFTER_S:
            warnings.append(f"the last backup is from {last.created_at}; fix: pm backup now")
        if self._backups.last_failure:
            warnings.append(f"the last backup failed: {self._backups.last_failure}")
        return Health(
            healthy=not problems,
            problems=problems,
            warnings=warnings,
            path=self._db.path,
            schema_version=self._db.schema_version,
            wal_mode=bool(pragmas and pragmas.journal_mode.lower() == "wal"),
            foreign_keys=bool(pragmas and pragmas.foreign_keys),
            synchronous=pragmas.synchronous if pragmas else "?",
            files=files,
            last_backup=last,
            last_backup_error=self._backups.last_failure,
            writer=self._db.writer_stats(),
            watcher=watcher,
        )

    @rpc_method("db.check")
    async def check(self, call: Call, params: NoParams) -> CheckResult:
        """integrity_check and foreign_key_check, with the findings (up to 100 of each)."""
        return await self._care.check()

    @rpc_method("db.repair")
    async def repair(self, call: Call, params: ProgressParams) -> RepairReport:
        """Repair, with `$/progress`: a sound file gets REINDEX and its full-text indexes
        rebuilt; a damaged one is kept in `damaged/`, then REINDEX, or when table pages are
        unreadable, everything readable is recovered into a new file that replaces it (the
        report says how many rows of each table were recovered and lost)."""
        return await self._care.repair(call.progress)

    @rpc_method("db.reset")
    async def reset(self, call: Call, params: ResetParams) -> ResetDone:
        """Delete every record: an empty database at the current schema. Needs `confirm:
        true`; the database it replaces is kept as a `…_before-reset.db` backup first."""
        if not params.confirm:
            raise InvalidParams(
                "db.reset deletes every record; pass confirm: true to go ahead "
                "(a backup of everything is taken first)"
            )
        return await self._care.reset()

    @rpc_method("db.export")
    async def export(self, call: Call, params: ExportParams) -> ExportSummary:
        """Every table to `<data>/exports/`: one JSON file, or a folder of CSV files (one per
        table, with manifest.json). Read from one snapshot while writes go on. The folder
        keeps the newest three exports; older ones are removed."""
        return await self._care.export(params.format)

    @rpc_method("db.import")
    async def import_(self, call: Call, params: ImportParams) -> Imported:
        """Replace the database with an export (JSON file or CSV folder), with `$/progress`.

        The export is validated and built into a new file first (an older schema is
        migrated); nothing changes if anything is wrong. Its rows are data: each is held to
        the limits the API enforces, and a project outside the Dev folder is kept only as not
        yet confirmed (not read until `projects.register`). The database it replaces is kept
        as a `…_before-import.db` backup. All or nothing."""
        return await self._care.import_(params.path, call.progress, params.shown_as)


def _age_s(iso: str) -> float:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (datetime.now(UTC) - moment).total_seconds()


def _free_bytes(db_path: str) -> int | None:
    try:
        st = os.statvfs(os.path.dirname(db_path))
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
