"""db.health: how the database and its writer are doing."""

from __future__ import annotations

import msgspec

from daemon.api.runtime import Runtime
from daemon.db import health as health_db
from daemon.db.connection import Pragmas
from daemon.db.database import Database
from daemon.db.writer import WriterStats
from daemon.rpc.dispatcher import Call
from daemon.rpc.registry import NoParams, rpc_method
from daemon.watcher import WatchStatus


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
    writer: WriterStats
    watcher: WatchStatus


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
    def __init__(self, db: Database, runtime: Runtime) -> None:
        self._db = db
        self._runtime = runtime

    @rpc_method("db.health")
    async def health(self, call: Call, params: NoParams) -> Health:
        """Health figures: WAL mode, foreign keys, schema version, sizes, writer statistics."""
        pragmas = self._db.writer.pragmas
        files = await self._db.read(health_db.figures, self._db.path)
        problems = problems_of(pragmas)
        watcher = self._runtime.watch_status()
        warnings = []
        if watcher.problem:
            warnings.append(
                f"file watching is {watcher.mode}: {watcher.problem}; fix: {watcher.fix}"
            )
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
            writer=self._db.writer_stats(),
            watcher=watcher,
        )
