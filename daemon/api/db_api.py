"""db.health: how the database and its writer are doing."""

from __future__ import annotations

import msgspec

from daemon.db import health as health_db
from daemon.db.connection import Pragmas
from daemon.db.database import Database
from daemon.db.writer import WriterStats
from daemon.rpc.dispatcher import Call
from daemon.rpc.registry import NoParams, rpc_method


class Health(msgspec.Struct, kw_only=True):
    healthy: bool
    problems: list[str]
    path: str
    schema_version: int
    wal_mode: bool
    foreign_keys: bool
    synchronous: str
    files: health_db.FileFigures
    writer: WriterStats


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
    def __init__(self, db: Database) -> None:
        self._db = db

    @rpc_method("db.health")
    async def health(self, call: Call, params: NoParams) -> Health:
        """Health figures: WAL mode, foreign keys, schema version, sizes, writer statistics."""
        pragmas = self._db.writer.pragmas
        files = await self._db.read(health_db.figures, self._db.path)
        problems = problems_of(pragmas)
        return Health(
            healthy=not problems,
            problems=problems,
            path=self._db.path,
            schema_version=self._db.schema_version,
            wal_mode=bool(pragmas and pragmas.journal_mode.lower() == "wal"),
            foreign_keys=bool(pragmas and pragmas.foreign_keys),
            synchronous=pragmas.synchronous if pragmas else "?",
            files=files,
            writer=self._db.writer_stats(),
        )
