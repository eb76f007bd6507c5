"""What an import settles in the new file once its rows are in, before it is swapped in.

An export is data, never instructions: its rows are held to what the daemon itself would have
written (daemon/store/importer.py checks every value against the API's limits), and here:
- a project whose folder lies outside the Dev folder is not read because an export says so: it
  is kept as a registered project not yet confirmed (missing, its folder skipped by every scan)
  until the user confirms it with `pm project register PATH`;
- every project, job and quality row is read back through the very functions the API reads
  with, and must come out as its own type: a row that parses but that no method could serve
  (a JSON column of the wrong shape, text where a number belongs) refuses the import, instead
  of failing `projects.list` or `jobs.list` for everyone afterwards.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import msgspec

from daemon.domain.jobs import sql as jobs_db
from daemon.domain.projects import sql as projects_db
from daemon.domain.quality import sql as quality_db
from daemon.platform import untrusted
from daemon.store.connection import quote
from daemon.store.export import ExportError

UNCONFIRMED = (
    "imported from an export, outside the Dev folder: not read until you confirm it with "
    "`pm project register {path}`"
)
_PAGE = 1000


def outside(path: str, roots: Sequence[str], exclude: Sequence[str]) -> bool:
    """Is `path` (as an export gives it) anywhere but below a Dev root (links resolved)?"""
    if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
        return True
    real = os.path.realpath(path)
    if any(untrusted.is_inside(real, folder) for folder in exclude):
        return True
    return not any(untrusted.is_inside(real, root) for root in roots)


def settle_projects(
    conn: sqlite3.Connection, roots: Sequence[str], exclude: Sequence[str], now: str
) -> list[str]:
    """Every project outside the Dev roots (or inside `exclude`, the data folder) becomes a
    registered project not yet confirmed; returns their paths."""
    unconfirmed = []
    for row in projects_db.scan_rows(conn):
        if not outside(row.path, roots, exclude):
            continue
        projects_db.update(
            conn,
            row.id,
            {
                "source": "registered",
                "present": 0,
                "missing_since": now,
                "fingerprint": None,
                "scan_error": UNCONFIRMED.format(path=row.path),
            },
            now,
        )
        projects_db.ignore_path(conn, row.path, now)  # `pm project register` takes it off
        unconfirmed.append(row.path)
    return unconfirmed


def _ids(conn: sqlite3.Connection, table: str, column: str = "id") -> list[int]:
    return [
        int(r[0])
        for r in conn.execute(f"SELECT DISTINCT {quote(column)} FROM {quote(table)} ORDER BY 1")
    ]


def _served(row: Any) -> None:
    """The row as the API would send it: every field of its declared type."""
    msgspec.convert(msgspec.to_builtins(row), type(row))


_Faults = (msgspec.MsgspecError, TypeError, ValueError, RecursionError, sqlite3.Error)


def _check(where: str, table: str, what: str, read: Callable[[], Any]) -> Any:
    """`read()`, each row it gives checked as the API would send it; what it gave."""
    try:
        result = read()
        for row in result if isinstance(result, list) else [result]:
            if row is not None:
                _served(row)
    except _Faults as e:
        raise ExportError(
            f"{where}: table {table!r}, {what}: no method could read it back ({e}); "
            "correct or remove the row"
        ) from e
    return result


def _history(conn: sqlite3.Connection, project_id: int, offset: int) -> list[Any]:
    return quality_db.history(conn, project_id, _PAGE, offset)[0]


def read_back(conn: sqlite3.Connection, where: str) -> None:
    """Every project, job and quality row through the API's own readers."""
    for project_id in _ids(conn, "projects"):
        what = f"the row with id {project_id}"
        _check(where, "projects", what, partial(projects_db.get, conn, project_id))
    for job_id in _ids(conn, "jobs"):
        _check(where, "jobs", f"the row with id {job_id}", partial(jobs_db.get, conn, job_id))
    for project_id in _ids(conn, "quality_metrics", "project_id"):
        what, offset = f"a row of project {project_id}", 0
        while page := _check(
            where, "quality_metrics", what, partial(_history, conn, project_id, offset)
        ):
            offset += len(page)
