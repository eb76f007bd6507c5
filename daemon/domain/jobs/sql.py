"""SQL for jobs: the daemon's own runs and the jobs clients record (background_jobs).

Rows go out as `Job` structs with `metadata` decoded. The lifecycle rules (which status may
follow which) live in the service; this module only reads and writes what it is told, and
refuses a column it does not know.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from daemon.store import jsontext, rows
from daemon.store.paging import fetch_page

Status = Literal["queued", "running", "completed", "failed", "canceled"]
Source = Literal["daemon", "client"]

STATUSES: tuple[Status, ...] = ("queued", "running", "completed", "failed", "canceled")
FINISHED: frozenset[str] = frozenset({"completed", "failed", "canceled"})

METADATA_DEPTH_MAX = 64  # arrays and objects: deeper ones fail to encode deep in a reply
STOPPED_WHILE_RUNNING = "the daemon stopped while it ran"
STOPPED_BEFORE_RUNNING = "the daemon stopped before it ran"


class Job(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    source: str
    status: str
    project_id: int | None
    session_id: str | None
    prompt: str | None
    response: str | None
    output_path: str | None  # stored: "the response is in a file"; shown: derived from the id
    api_type: str | None
    model_used: str | None
    metadata: dict[str, Any]
    error: str | None
    attempts: int
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None


_COLUMNS = tuple(Job.__struct_fields__)
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM jobs"
# What insert and update may set (id, created_at and updated_at are the module's own).
WRITABLE: frozenset[str] = frozenset(_COLUMNS) - {"id", "created_at", "updated_at"}

_metadata = msgspec.json.Decoder(dict[str, Any])
_encode = msgspec.json.Encoder().encode


def encode_metadata(metadata: Mapping[str, Any]) -> str:
    return _encode(metadata).decode()


def _job(row: Sequence[Any]) -> Job:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["metadata"] = _readable_metadata(values["metadata"])
    return Job(**values)


def _readable_metadata(text: str) -> dict[str, Any]:
    """The stored metadata, or, when it nests deeper than any reply can carry (a row from a
    restored backup, say: imports and the API refuse it), a note saying so instead."""
    if text.count("{") + text.count("[") > METADATA_DEPTH_MAX:  # else it cannot nest deeper
        deep = jsontext.depth(text)
        if deep > METADATA_DEPTH_MAX:
            return {"unreadable": f"the stored metadata nests {deep} levels deep"}
    return _metadata.decode(text)


def _encode_value(column: str, value: Any) -> Any:
    return encode_metadata(value) if column == "metadata" else value


# --- reading -------------------------------------------------------------------------------
def get(conn: sqlite3.Connection, job_id: int) -> Job | None:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
    return _job(row) if row else None


def _filters(
    status: Sequence[str],
    kind: str | None,
    source: str | None,
    project_id: int | None,
    session_id: str | None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if status:
        status = sorted(set(status))  # one statement shape per set of statuses, not per list
        clauses.append(f"status IN ({', '.join('?' for _ in status)})")
        args += status
    for column, value in (
        ("kind", kind),
        ("source", source),
        ("project_id", project_id),
        ("session_id", session_id),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def list_jobs(
    conn: sqlite3.Connection,
    *,
    status: Sequence[str] = (),
    kind: str | None = None,
    source: str | None = None,
    project_id: int | None = None,
    session_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Job]:
    """Newest first."""
    where, args = _filters(status, kind, source, project_id, session_id)
    rows = fetch_page(
        conn.execute(f"{_SELECT}{where} ORDER BY id DESC LIMIT ? OFFSET ?", (*args, limit, offset))
    )
    return [_job(r) for r in rows]


def count_jobs(
    conn: sqlite3.Connection,
    *,
    status: Sequence[str] = (),
    kind: str | None = None,
    source: str | None = None,
    project_id: int | None = None,
    session_id: str | None = None,
) -> int:
    where, args = _filters(status, kind, source, project_id, session_id)
    return int(conn.execute(f"SELECT count(*) FROM jobs{where}", args).fetchone()[0])


def last_scheduled_start(conn: sqlite3.Connection, kind: str) -> str | None:
    """When the newest run of `kind` that the schedule (not a person) started began."""
    row = conn.execute(
        "SELECT started_at FROM jobs WHERE kind = ? AND source = 'daemon' "
        "AND started_at IS NOT NULL AND json_extract(metadata, '$.trigger') = 'schedule' "
        "ORDER BY id DESC LIMIT 1",
        (kind,),
    ).fetchone()
    return str(row[0]) if row else None


def project_exists(conn: sqlite3.Connection, project_id: int) -> bool:
    return conn.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is not None


# --- writing (called inside the writer's transaction) ---------------------------------------
def insert(conn: sqlite3.Connection, values: Mapping[str, Any], now: str) -> int:
    return rows.insert(conn, "jobs", values, now, allowed=WRITABLE, encode=_encode_value)


def update(conn: sqlite3.Connection, job_id: int, values: Mapping[str, Any], now: str) -> None:
    """Set `values` (whitelisted columns) and `updated_at`."""
    rows.update(conn, "jobs", job_id, values, now, allowed=WRITABLE, encode=_encode_value)


class Interrupted(msgspec.Struct, frozen=True):
    id: int
    kind: str
    status: str


def interrupt_daemon_jobs(conn: sqlite3.Connection, now: str) -> list[Interrupted]:
    """At start-up: the daemon's runs a previous process left unfinished. Running ones
    failed ("the daemon stopped while it ran"); queued ones are canceled (nobody will run
    them). Client jobs are left alone: their clients may still be working on them."""
    done: list[Interrupted] = []
    for old, new, error in (
        ("running", "failed", STOPPED_WHILE_RUNNING),
        ("queued", "canceled", STOPPED_BEFORE_RUNNING),
    ):
        rows = conn.execute(
            "UPDATE jobs SET status = ?, error = ?, finished_at = ?, updated_at = ? "
            "WHERE source = 'daemon' AND status = ? RETURNING id, kind",
            (new, error, now, now, old),
        ).fetchall()
        done += [Interrupted(int(r[0]), str(r[1]), new) for r in rows]
    return sorted(done, key=lambda i: i.id)
