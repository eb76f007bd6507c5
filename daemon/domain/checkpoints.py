"""checkpoints: a named snapshot of a project's plans, phases, tasks and dependencies, with the
git commit it was taken at (Nexus' checkpoints: name, reason, state, git_commit), and restore.

Its own rules:
- `checkpoints.save` copies every column of every row of the project's work (archived plans
  too) into `state`, and the project's branch and HEAD as the scanner last read them;
- `checkpoints.restore` first saves the current state as a `safety` checkpoint, then puts the
  snapshot back in one transaction: rows it holds get every field back (rows deleted since are
  inserted again with their ids), rows made since are deleted. What hangs off a deleted row
  goes with it, as when it is deleted by hand. Derived fields (blocked, positions…) come back
  as they were, consistent with the rows restored. One `checkpoints.restored` event says what
  changed; the git working tree is not touched (the commit is there to check out by hand).
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Literal

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Crud, Id
from daemon.domain.projects.ref import PROJECT, ProjectRef, project_id
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.connection import quote
from daemon.store.events_catalogue import EventKind
from daemon.store.table import Row, Table

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Reason = Annotated[str, msgspec.Meta(max_length=2000)]
AgentName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# Positions are moved out of the way (+ this) before the snapshot's are put back, so no
# unique (phase, position) is ever held by two rows half-way through.
_POSITION_SHIFT = 1_000_000_000


class Checkpoint(Row, kw_only=True):
    project_id: int
    name: Name
    reason: Reason | None = None
    kind: Literal["manual", "safety"] = "manual"
    state: dict[str, Any] = msgspec.field(default_factory=dict)
    git_commit: Annotated[str, msgspec.Meta(min_length=4, max_length=64)] | None = None
    git_branch: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    agent: AgentName | None = None


class CheckpointSummary(msgspec.Struct, kw_only=True):
    """A checkpoint without its state (what a list shows)."""

    id: int
    uid: str
    created_at: str
    project_id: int
    name: str
    reason: str | None
    kind: str
    git_commit: str | None
    git_branch: str | None
    agent: str | None
    counts: dict[str, int]


CHECKPOINTS = Table(
    "checkpoints", Checkpoint, orders={"recent": "t.id DESC", "id": "t.id"},
    identity=("project_id", "name"),
)  # fmt: skip


class Restored(msgspec.Struct, kw_only=True):
    """`checkpoints.restored`: what the restore changed, by table."""

    id: int
    uid: str
    project_id: int
    safety_checkpoint: int
    restored: dict[str, list[int]]  # ids given back their snapshot fields (or re-inserted)
    deleted: dict[str, list[int]]  # ids made after the checkpoint, deleted


RESTORED = EventKind("checkpoints.restored", Restored)

# The project's work, parents first; each: (table, SQL selecting its ids for a project).
_WORK: tuple[tuple[str, str], ...] = (
    ("plans", "SELECT id FROM plans WHERE project_id = :p"),
    ("phases", "SELECT id FROM phases WHERE plan_id IN "
               "(SELECT id FROM plans WHERE project_id = :p)"),
    ("tasks", "SELECT id FROM tasks WHERE project_id = :p OR plan_id IN "
              "(SELECT id FROM plans WHERE project_id = :p)"),
    ("dependencies", "SELECT id FROM dependencies WHERE "
     "(from_type = 'plan' AND from_id IN (SELECT id FROM plans WHERE project_id = :p)) OR "
     "(from_type = 'task' AND from_id IN (SELECT id FROM tasks WHERE project_id = :p)) OR "
     "(from_type = 'phase' AND from_id IN (SELECT ph.id FROM phases AS ph JOIN plans AS pl "
     "ON pl.id = ph.plan_id WHERE pl.project_id = :p))"),
)  # fmt: skip


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The table's columns as the schema has them (never a client's string; quoted all the
    same where they make SQL: a restored file's schema is read, not trusted)."""
    return [str(c[1]) for c in conn.execute(f"PRAGMA table_info({table})")]


def _text(name: str) -> str:
    """A column name as an SQL string literal (a JSON key)."""
    return "'" + name.replace("'", "''") + "'"


def snapshot(conn: sqlite3.Connection, project: int) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for table, ids in _WORK:
        columns = _columns(conn, table)
        pairs = ", ".join(f"{_text(c)}, {quote(c)}" for c in columns)
        row = conn.execute(
            f"SELECT json_group_array(json_object({pairs})) FROM "
            f"(SELECT * FROM {table} WHERE id IN ({ids}) ORDER BY id)",
            {"p": project},
        ).fetchone()
        state[table] = msgspec.json.decode(row[0])
    return state


def save(
    tx: Tx, project: int, name: str, reason: str | None, agent: str | None, kind: str
) -> Checkpoint:
    head = tx.conn.execute(
        "SELECT head_sha, branch FROM projects WHERE id = ?", (project,)
    ).fetchone()
    commit, branch = head if head else (None, None)
    return CHECKPOINTS.insert(
        tx,
        {
            "project_id": project, "name": name, "reason": reason, "kind": kind,
            "state": snapshot(tx.conn, project), "git_commit": commit, "git_branch": branch,
            "agent": agent,
        },
    )  # fmt: skip


def _put_back(tx: Tx, project: int, state: dict[str, Any]) -> tuple[dict[str, list[int]], ...]:
    conn = tx.conn
    restored: dict[str, list[int]] = {}
    deleted: dict[str, list[int]] = {}
    # Made since: deleted, children first (their own cascades would take them anyway).
    for table, ids in reversed(_WORK):
        keep = [int(r["id"]) for r in state.get(table, [])]
        now = [r[0] for r in conn.execute(ids, {"p": project})]
        gone = sorted(set(now) - set(keep))
        for row_id in gone:
            conn.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
        deleted[table] = gone
    for table in ("phases", "tasks"):
        conn.execute(
            f"UPDATE {table} SET position = position + :shift "
            f"WHERE position IS NOT NULL AND id IN ({dict(_WORK)[table]})",
            {"p": project, "shift": _POSITION_SHIFT},
        )
    for table, _ids in _WORK:
        rows = state.get(table, [])
        if table == "tasks":
            rows = _parents_first(rows)
        columns = [c for c in _columns(conn, table) if rows and c in rows[0]]
        updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c != "id")
        sql = (
            f"INSERT INTO {table} ({', '.join(map(quote, columns))}) "
            f"VALUES ({', '.join('?' for _ in columns)}) ON CONFLICT (id) DO UPDATE SET {updates}"
        )
        for row in rows:
            conn.execute(sql, [_stored(row[c]) for c in columns])
        restored[table] = [int(r["id"]) for r in rows]
    return restored, deleted


def _stored(value: Any) -> Any:
    """A snapshot value as its column holds it: JSON columns come back as text."""
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    if isinstance(value, bool):
        return int(value)
    return value


def _parents_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {r["id"]: r for r in rows}

    def depth(row: dict[str, Any]) -> int:
        seen = 0
        while row.get("parent_id") in by_id and seen < len(rows):
            row = by_id[row["parent_id"]]
            seen += 1
        return seen

    return sorted(rows, key=lambda r: (depth(r), r["id"]))


methods = Methods()
Crud(
    CHECKPOINTS,
    refs=[PROJECT],
    create=("name", "reason", "agent"),
    change=("name", "reason"),
    filters=("kind", "name"),
).register(methods, verbs=("get", "list", "update", "delete"))


class SaveParams(Params, frozen=True):
    project: ProjectRef
    name: Name | None = None
    reason: Reason | None = None
    agent: AgentName | None = None


def _summary(c: Checkpoint) -> CheckpointSummary:
    return CheckpointSummary(
        id=c.id, uid=c.uid, created_at=c.created_at, project_id=c.project_id, name=c.name,
        reason=c.reason, kind=c.kind, git_commit=c.git_commit, git_branch=c.git_branch,
        agent=c.agent, counts={t: len(v) for t, v in c.state.items() if isinstance(v, list)},
    )  # fmt: skip


@methods("checkpoints.save")
async def save_(app: App, call: Call, p: SaveParams) -> CheckpointSummary:
    """Snapshot a project's plans, phases, tasks and dependencies now, with the git branch
    and commit; returns the checkpoint without its state (counts per table instead)."""
    project = await project_id(app, p.project)

    def op(tx: Tx) -> Checkpoint:
        name = p.name or f"checkpoint {tx.now[:19].replace('T', ' ')}"
        return save(tx, project, name, p.reason, p.agent, "manual")

    return _summary(await app.db.write(op, heavy=True))  # a whole project's work


class RestoreParams(Params, frozen=True):
    id: Id
    agent: AgentName | None = None


class RestoreResult(msgspec.Struct, kw_only=True):
    checkpoint: CheckpointSummary
    safety_checkpoint: CheckpointSummary
    restored: dict[str, int]
    deleted: dict[str, int]


@methods("checkpoints.restore")
async def restore(app: App, call: Call, p: RestoreParams) -> RestoreResult:
    """Put a project's work back as the checkpoint holds it, in one transaction, after saving
    the current state as a `safety` checkpoint (restore that one to undo)."""

    def op(tx: Tx) -> RestoreResult:
        target = CHECKPOINTS.must_get(tx.conn, p.id)
        if not isinstance(target.state.get("plans"), list):
            raise InvalidParams(f"checkpoint {p.id} holds no state to restore", field="id")
        safety = save(
            tx, target.project_id, f"before restoring {target.name}",
            f"taken automatically before checkpoint {target.id} was restored", p.agent, "safety",
        )  # fmt: skip
        restored, deleted = _put_back(tx, target.project_id, target.state)
        tx.emit(
            RESTORED,
            Restored(
                id=target.id, uid=target.uid, project_id=target.project_id,
                safety_checkpoint=safety.id, restored=restored, deleted=deleted,
            ),
        )  # fmt: skip
        return RestoreResult(
            checkpoint=_summary(target), safety_checkpoint=_summary(safety),
            restored={t: len(v) for t, v in restored.items()},
            deleted={t: len(v) for t, v in deleted.items()},
        )  # fmt: skip

    return await app.db.write(op, heavy=True)  # a whole project's work
