"""jobs: the daemon's own runs and the jobs clients record (background_jobs) — the row, its
table, its events and its few queries of its own.

Every constraint on a job's fields is said here once, on the `Job` Struct (and again by the
schema's CHECKs): the params of jobs.record, jobs.update and jobs.list refer to the same
annotated types. The lifecycle rules (which status may follow which) live in the service.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Literal, get_args

import msgspec

from daemon.store import jsontext
from daemon.store.events_catalogue import EventKind
from daemon.store.paging import fetch_page
from daemon.store.table import Page, Row, RowUpdated, Table, Where

SHORT_MAX = 500  # characters of api_type, model_used, session_id
ERROR_MAX = 100_000  # characters of error
METADATA_DEPTH_MAX = 64  # arrays and objects: deeper ones fail to encode deep in a reply
STOPPED_WHILE_RUNNING = "the daemon stopped while it ran"
STOPPED_BEFORE_RUNNING = "the daemon stopped before it ran"

Finished = Literal["completed", "failed", "canceled"]
Status = Literal["queued", "running", Finished]
Source = Literal["daemon", "client"]
FINISHED: frozenset[str] = frozenset(get_args(Finished))

Kind = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, description="the job's type (task_type)")
]
Short = Annotated[str, msgspec.Meta(max_length=SHORT_MAX)]
Text = Annotated[str, msgspec.Meta(description="any length; over 64 KiB it is kept in a file")]
ErrorText = Annotated[str, msgspec.Meta(max_length=ERROR_MAX)]
Attempts = Annotated[int, msgspec.Meta(ge=0)]


class Job(Row, kw_only=True):
    kind: Kind
    source: Source
    status: Status = "queued"
    project_id: int | None = None
    session_id: Short | None = None
    prompt: Text | None = None
    response: Text | None = None
    output_path: str | None = None  # stored: "the response is in a file"; shown: from the id
    api_type: Short | None = None
    model_used: Short | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    error: ErrorText | None = None
    attempts: Attempts = 0
    started_at: str | None = None
    finished_at: str | None = None


JOBS = Table("jobs", Job, orders={"newest": "t.id DESC"}, identity=("kind", "source", "status"))
TEXT = ("prompt", "response")  # named, not copied, in events: they can be large


class JobChange(RowUpdated, kw_only=True):
    """The data of `jobs.updated`: `changed` holds every changed field's new value but the
    large text ones, which `changed_text` names (read the job for them). (JOBS.updated declares
    the kind with the table's identity fields; `changed_text` goes beyond what it declares
    until the table layer lets a table name its own update payload.)"""

    kind: str
    source: str
    status: str
    changed_text: list[str]


class JobFinished(msgspec.Struct, kw_only=True):
    """`jobs.finished`: a job reached completed, failed or canceled (its change is the
    `jobs.updated` or `jobs.created` of the same transaction)."""

    id: int
    uid: str
    kind: str
    source: str
    status: str
    error: str | None
    attempts: int
    started_at: str | None
    finished_at: str | None
    project_id: int | None
    session_id: str | None


FINISHED_EVENT = EventKind("jobs.finished", JobFinished)


def finished_event(job: Job) -> JobFinished:
    return JobFinished(
        id=job.id, uid=job.uid, kind=job.kind, source=job.source, status=job.status,
        error=job.error, attempts=job.attempts, started_at=job.started_at,
        finished_at=job.finished_at, project_id=job.project_id, session_id=job.session_id,
    )  # fmt: skip


def updated_event(job: Job, changes: dict[str, Any]) -> JobChange:
    return JobChange(
        id=job.id, uid=job.uid, version=job.version, kind=job.kind, source=job.source,
        status=job.status, changed={k: v for k, v in changes.items() if k not in TEXT},
        changed_text=[k for k in TEXT if k in changes],
    )  # fmt: skip


# --- reading, whatever the file holds -------------------------------------------------------
# A backup is swapped in as it is: a row there may hold metadata nested deeper than a reply can
# carry (the API and imports refuse it), or values the Struct's constraints refuse. Such a job
# is still listed, with a note in place of its metadata, instead of failing the whole page.
UNREADABLE = (msgspec.MsgspecError, RecursionError, sqlite3.OperationalError)
_metadata = msgspec.json.Decoder(dict[str, Any])


def _nesting(value: Any) -> int:
    """How many dicts and lists deep a decoded value nests (without recursion)."""
    deepest = 0
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item
        stack += [(child, level + 1) for child in children if isinstance(child, dict | list)]
    return deepest


def _note(deep: int) -> dict[str, Any]:
    return {"unreadable": f"the stored metadata nests {deep} levels deep"}


def _readable(job: Job) -> Job:
    deep = _nesting(job.metadata) if job.metadata else 0
    if deep <= METADATA_DEPTH_MAX:
        return job
    return msgspec.structs.replace(job, metadata=_note(deep))


def _plain(conn: sqlite3.Connection, where: Where, limit: int, offset: int) -> list[Job]:
    """Rows read column by column, the metadata measured before it is decoded: the slow way,
    for a page the table layer could not read."""
    sql, args = where.render()
    cols = ", ".join(f"t.{c}" for c in JOBS.columns)
    order = JOBS.orders["newest"]
    cursor = conn.execute(
        f"SELECT {cols} FROM jobs AS t{sql} ORDER BY {order} LIMIT ? OFFSET ?",
        (*args, limit, offset),
    )
    jobs = []
    for values in fetch_page(cursor):
        row = dict(zip(JOBS.columns, values, strict=True))
        text = row["metadata"]
        deep = jsontext.depth(text) if isinstance(text, str) else 0
        try:
            row["metadata"] = _note(deep) if deep > METADATA_DEPTH_MAX else _metadata.decode(text)
        except (msgspec.MsgspecError, TypeError):
            row["metadata"] = {"unreadable": "the stored metadata is not a JSON object"}
        jobs.append(Job(**row))  # as stored: a Struct built by hand checks no constraint
    return jobs


def get(conn: sqlite3.Connection, job_id: int) -> Job | None:
    try:
        job = JOBS.get(conn, job_id)
    except UNREADABLE:
        found = _plain(conn, Where(JOBS).eq("id", job_id), 1, 0)
        return found[0] if found else None
    return None if job is None else _readable(job)


def page(conn: sqlite3.Connection, where: Where, limit: int, offset: int) -> Page[Job]:
    """Newest first, `{items, total}`."""
    try:
        items = [_readable(job) for job in JOBS.rows(conn, where, limit=limit, offset=offset)]
    except UNREADABLE:
        items = _plain(conn, where, limit, offset)
    return Page(items=items, total=JOBS.count(conn, where))


def last_scheduled_start(conn: sqlite3.Connection, kind: str) -> str | None:
    """When the newest run of `kind` that the schedule (not a person) started began."""
    row = conn.execute(
        "SELECT started_at FROM jobs WHERE kind = ? AND source = 'daemon' "
        "AND started_at IS NOT NULL AND json_extract(metadata, '$.trigger') = 'schedule' "
        "ORDER BY id DESC LIMIT 1",
        (kind,),
    ).fetchone()
    return str(row[0]) if row else None


def unfinished_daemon_jobs(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """(id, status) of the daemon's own runs that are queued or running, oldest first."""
    rows = conn.execute(
        "SELECT id, status FROM jobs WHERE source = 'daemon' AND status IN ('queued', 'running') "
        "ORDER BY id"
    ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def project_exists(conn: sqlite3.Connection, project_id: int) -> bool:
    return conn.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is not None


def set_output_path(conn: sqlite3.Connection, job_id: int, path: str) -> None:
    """Part of a job's creation (its id names its file): not a change of its own."""
    conn.execute("UPDATE jobs SET output_path = ? WHERE id = ?", (path, job_id))


def touched(conn: sqlite3.Connection, job_id: int, now: str) -> Job:
    """A change no column shows (the output file's content): a new version all the same."""
    row = conn.execute(
        "UPDATE jobs SET updated_at = ?, version = version + 1 WHERE id = ? " + JOBS.returning,
        (now, job_id),
    ).fetchone()
    return JOBS.decode(row[0])
