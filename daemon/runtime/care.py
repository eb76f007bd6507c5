"""db.check, db.repair, db.reset, db.export, db.import in the running daemon.

Check and export read from connections of their own (a long integrity_check or export does
not take a reader from the clients). Repair, reset and import end in a swap under the paused
writer (BackupService.swap_in), so each is all or nothing and keeps the file it replaced.

An import is data, never instructions: every row is held to the limits the API enforces (the
same constants), every row must read back through the API's own readers (every domain table's
rows through the table), and a project outside the Dev folder is kept only as not yet
confirmed (`import_rules`).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import msgspec
import structlog

from daemon.domain import kv
from daemon.domain import modules as _modules  # noqa: F401 - declares every domain table
from daemon.domain.jobs import service as jobs
from daemon.domain.jobs import sql as jobs_db
from daemon.domain.projects import imports as project_imports
from daemon.platform import private_folders
from daemon.rpc.errors import Forbidden, InvalidParams, NotFound, StorageError
from daemon.runtime import db_events
from daemon.runtime.backups import BackupService
from daemon.runtime.config import Paths
from daemon.runtime.scheduler import Report
from daemon.store import backup, care, connection, export, imported, importer, swap
from daemon.store.care import CheckResult, RepairReport
from daemon.store.clock import utc_now
from daemon.store.database import Database
from daemon.store.export import ExportError, ExportSummary
from daemon.store.import_limits import ColumnLimit, ImportRules
from daemon.store.importer import ImportSummary
from daemon.store.migrations import Migration
from daemon.store.table import tables

log = structlog.get_logger("pm.care")


class ResetDone(msgspec.Struct, kw_only=True):
    backup: str  # everything the database held before
    schema_version: int


class Imported(ImportSummary, frozen=True, kw_only=True):
    backup: str | None  # the database the import replaced


def _quiet(message: str, percentage: int | None = None) -> None:
    pass


def import_rules(paths: Paths, roots: list[str], max_message_bytes: int) -> ImportRules:
    """What an imported row must satisfy: what the API would have let in (its own limits),
    and what the daemon can serve back (daemon/store/imported.py)."""
    recorded = "what jobs.record and jobs.update accept"

    def finish(conn: sqlite3.Connection, where: str) -> None:
        imported.read_back(conn, where, tables())  # every domain table's rows
        project_imports.settle(conn, roots, [paths.data_dir], utc_now())

    return ImportRules(
        value_bytes=max_message_bytes,
        value_owner="no message to the daemon may be larger",
        columns={
            "kv": {"value": ColumnLimit(max_bytes=kv.MAX_VALUE_BYTES, owner="what kv.set accepts")},
            "jobs": {
                "metadata": ColumnLimit(
                    max_bytes=jobs.METADATA_MAX,
                    max_depth=jobs_db.METADATA_DEPTH_MAX,
                    owner=recorded,
                ),
                "response": ColumnLimit(
                    max_bytes=jobs.RESPONSE_INLINE_MAX,
                    owner="a larger response is kept in a file, never inline",
                ),
                "error": ColumnLimit(max_chars=jobs_db.ERROR_MAX, owner=recorded),
                **{
                    column: ColumnLimit(max_chars=jobs_db.SHORT_MAX, owner=recorded)
                    for column in ("api_type", "model_used", "session_id")
                },
            },
        },
        finish=finish,
    )


class CareService:
    def __init__(
        self,
        db: Database,
        paths: Paths,
        backups: BackupService,
        shipped: Callable[[], list[Migration]],
        *,
        roots: list[str],
        max_message_bytes: int,
    ) -> None:
        self._db = db
        self._paths = paths
        self._backups = backups
        self._shipped = shipped
        self._rules = import_rules(paths, roots, max_message_bytes)

    async def check(self) -> CheckResult:
        return await asyncio.to_thread(self._check_file)

    def _check_file(self) -> CheckResult:
        conn = backup.read_only(self._db.path)
        try:
            return care.check(conn)
        finally:
            conn.close()

    async def repair(self, report: Report = _quiet) -> RepairReport:
        """REINDEX (and FTS rebuild) between two batches when the file is sound; with the
        writer paused, a recovery into a new file when it is not."""
        report("checking the database", 0)
        found = await asyncio.to_thread(backup.problems, self._db.path)
        if not found:
            report("rebuilding indexes", 50)
            rebuilt = await self._db.maintain(care.reindex)
            report("done", 100)
            return RepairReport(
                action="none", problems_before=[], problems_after=[], reindexed=True,
                fts_rebuilt=rebuilt, damaged_copy=None, recovery=None,
            )  # fmt: skip
        report("damage found: repairing with the writer paused", 20)
        shipped = self._shipped()
        result = await self._backups.exclusive(
            lambda seen: care.repair_file(
                self._db.path, backups_dir=self._paths.backups_dir,
                damaged_dir=self._paths.damaged_dir, now=datetime.now(UTC), shipped=shipped,
                migrate=True, events_seen=seen,
            )
        )  # fmt: skip
        await self._backups.announce(
            db_events.REPAIRED,
            db_events.Repaired(action=result.action, damaged_copy=result.damaged_copy),
        )
        report("done", 100)
        return result

    async def reset(self) -> ResetDone:
        """An empty database at the current schema; the old one is kept as a backup first."""
        fresh = await asyncio.to_thread(self._fresh_file)
        try:
            swapped = await self._backups.swap_in(
                fresh, "before-reset", db_events.RESET, db_events.Reset()
            )
        finally:
            await asyncio.to_thread(backup.remove_database, fresh)
        assert swapped.safety_copy is not None
        return ResetDone(backup=swapped.safety_copy, schema_version=swapped.schema_version)

    def _fresh_file(self) -> str:
        path = self._scratch_path("empty")
        swap.empty_database(path, self._shipped())
        return path

    def _scratch_path(self, what: str) -> str:
        try:
            private_folders.check(self._paths.db_dir, what=swap.DATABASE, create=False)
        except OSError as e:
            raise StorageError(str(e)) from e
        fd, path = tempfile.mkstemp(
            prefix=f"pm-agent.{what}.", suffix=".db", dir=self._paths.db_dir
        )
        os.close(fd)
        os.unlink(path)  # the builders create it themselves
        return path

    async def export(self, fmt: Literal["json", "csv"]) -> ExportSummary:
        """Into <data>/exports, which keeps the newest `export.KEEP` exports."""
        moment = datetime.now(UTC)
        try:
            return await asyncio.to_thread(self._export_file, fmt, moment)
        except (ExportError, OSError) as e:
            raise StorageError(f"the export failed: {e}") from e

    def _export_file(self, fmt: Literal["json", "csv"], moment: datetime) -> ExportSummary:
        folder = private_folders.check(self._paths.exports_dir, what=export.EXPORTS)
        target = os.path.join(folder, export.own_name(moment, fmt))
        conn = connection.open_reader(self._db.path, busy_timeout_ms=5000)
        try:
            made = (export.export_json if fmt == "json" else export.export_csv)(conn, target)
        finally:
            conn.close()
        try:
            removed = export.prune(folder)
        except OSError as e:  # the export is made; older ones wait for the next
            log.error("could not remove older exports", error=str(e))
        else:
            if removed:
                log.info("older exports removed", removed=removed)
        return made

    async def import_(
        self, source: str, report: Report = _quiet, shown_as: str | None = None
    ) -> Imported:
        """Replace the database with an export: validated and built into a new file first
        (nothing live changes if anything is wrong), then swapped in. `shown_as` names the
        export in messages (the file the user gave, when `source` is a copy of it)."""
        path = self._allowed(source)
        shown = shown_as or source
        report("validating the export", 0)
        scratch = self._scratch_path("import")
        try:
            try:
                summary = await asyncio.to_thread(
                    importer.build_from_export, path, self._shipped(), scratch,
                    rules=self._rules, within=self._roots(), shown_as=shown,
                )  # fmt: skip
            except ExportError as e:
                raise InvalidParams(
                    f"the export cannot be imported: {e}; nothing changed", path=shown
                ) from e
            report("replacing the database", 60)
            swapped = await self._backups.swap_in(
                scratch, "before-import", db_events.IMPORTED, db_events.Imported(source=shown)
            )
        finally:
            await asyncio.to_thread(backup.remove_database, scratch)
        report("done", 100)
        return Imported(**msgspec.structs.asdict(summary), backup=swapped.safety_copy)

    def _roots(self) -> list[str]:
        return [os.path.realpath(p) for p in (self._paths.data_dir, self._paths.dev_root)]

    def _allowed(self, source: str) -> str:
        """The daemon reads imports only from its own data folder or the Dev folder."""
        if not os.path.isabs(source):
            raise InvalidParams(f"path must be absolute: {source!r}")
        if "\0" in source:  # no file has one: os.path would raise, not answer
            raise InvalidParams(f"path holds a NUL byte: {source!r}")
        real = os.path.realpath(source)
        roots = self._roots()
        if not any(os.path.commonpath([real, root]) == root for root in roots):
            raise Forbidden(
                f"{source} is outside the data folder and the Dev folder; `pm db import` "
                "copies a file from elsewhere into <data>/imports first"
            )
        if not os.path.exists(real):
            raise NotFound(f"{source} does not exist")
        return real
