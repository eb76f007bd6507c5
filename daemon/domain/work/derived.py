"""Derived state of work, kept current inside the transaction of the change that causes it.

A write records what it touched in a `Touched` and calls `settle(tx, touched)` before it
returns; settle then brings every derived field up to date, in order:
- `tasks.unblocks`: how many `blocks` dependencies point at the task;
- `tasks.open_subtasks`: its subtasks not yet completed or cancelled;
- phase status from its tasks (when it has any), plan status completed/active from its tasks;
- `tasks.blocked`: a `blocks` dependency of the task, of its phase or of its plan points at a
  plan, phase or task that is not terminal, or its parent task is blocked — re-read for every
  task that waits on something whose terminality changed, and passed down to subtasks;
- features' `completed_tasks`.
Each derived change is a row change with its event (`tasks.blocked`, `tasks.unblocked`,
`tasks.updated`, `phases.updated`, `plans.updated`, `features.updated`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import msgspec

from daemon.domain.features import FEATURES
from daemon.domain.work.model import PHASES, PLANS, TASKS, TERMINAL, NodeType, Status, Task
from daemon.store.batch import Tx
from daemon.store.events_catalogue import EventKind

BLOCKED = EventKind("tasks.blocked", TASKS.updated.payload)
UNBLOCKED = EventKind("tasks.unblocked", TASKS.updated.payload)

Node = tuple[NodeType, int]

_TERMINAL_SQL = "(" + ", ".join(f"'{s}'" for s in TERMINAL) + ")"
_OPEN_TARGET = (
    "(CASE d.to_type WHEN 'task' THEN (SELECT status FROM tasks WHERE id = d.to_id)"
    " WHEN 'phase' THEN (SELECT status FROM phases WHERE id = d.to_id)"
    f" ELSE (SELECT status FROM plans WHERE id = d.to_id) END) NOT IN {_TERMINAL_SQL}"
)


def _waits(level: NodeType, column: Literal["t.id", "t.phase_id", "t.plan_id", "?"]) -> str:
    """SQL: the node (`level`, whose id is `column`) waits on an open target. Typed so that only
    this module's constants make it."""
    return (
        f"EXISTS (SELECT 1 FROM dependencies AS d WHERE d.from_type = '{level}'"
        f" AND d.from_id = {column} AND d.kind = 'blocks' AND d.archived = 0"
        f" AND {_OPEN_TARGET})"
    )


_BLOCKED_NOW = (
    f"({_waits('task', 't.id')}"
    f" OR (t.phase_id IS NOT NULL AND {_waits('phase', 't.phase_id')})"
    f" OR (t.plan_id IS NOT NULL AND {_waits('plan', 't.plan_id')})"
    " OR coalesce((SELECT p.blocked FROM tasks AS p WHERE p.id = t.parent_id), 0))"
)
_IDS = "(SELECT value FROM json_each(?))"


def _json(ids: Iterable[int]) -> str:
    return msgspec.json.encode(sorted(set(ids))).decode()


def terminal(status: str) -> bool:
    return status in TERMINAL


@dataclass
class Touched:
    """What a write changed that derived state follows from."""

    blocked: set[int] = field(default_factory=set)  # tasks to re-read `blocked` for
    parents: set[int] = field(default_factory=set)  # tasks to recount open subtasks of
    targets: set[int] = field(default_factory=set)  # tasks to recount `unblocks` of
    phases: set[int] = field(default_factory=set)
    plans: set[int] = field(default_factory=set)
    features: set[int] = field(default_factory=set)
    ends: set[Node] = field(default_factory=set)  # nodes whose terminality changed

    def task(self, old: Task | None, new: Task | None) -> None:
        """A task added (old None), changed, or deleted (new None)."""
        if old is not None and new is not None:
            moved = (old.phase_id, old.plan_id, old.parent_id) != (new.phase_id, new.plan_id,
                                                                  new.parent_id)  # fmt: skip
            ended = terminal(old.status) != terminal(new.status)
            if ended:
                self.ends.add(("task", new.id))
            if moved:
                self.blocked.add(new.id)
            status = old.status != new.status
            done = (old.status == "completed") != (new.status == "completed")
            linked = old.feature_id != new.feature_id
        else:
            moved = ended = status = done = linked = True
            if new is not None:
                self.blocked.add(new.id)
        for row in (old, new):
            if row is None:
                continue
            if row.phase_id and (status or moved):
                self.phases.add(row.phase_id)  # a phase's status follows every status
            if row.plan_id and (ended or moved):
                self.plans.add(row.plan_id)  # a plan's, only whether all are done
            if row.parent_id and (ended or moved):
                self.parents.add(row.parent_id)
            if row.feature_id and (done or linked):
                self.features.add(row.feature_id)

    def merge(self, other: Touched) -> None:
        for name in ("blocked", "parents", "targets", "phases", "plans", "features", "ends"):
            getattr(self, name).update(getattr(other, name))


# --- reading what depends on what ------------------------------------------------------------
def covered(conn: sqlite3.Connection, node: Node) -> set[int]:
    """The tasks a dependency from `node` holds: the task itself, or every task of the phase
    or plan (a subtask inherits its parent's through `blocked`)."""
    kind, node_id = node
    if kind == "task":
        return {node_id}
    column = "phase_id" if kind == "phase" else "plan_id"
    return {r[0] for r in conn.execute(f"SELECT id FROM tasks WHERE {column} = ?", (node_id,))}


def dependents(conn: sqlite3.Connection, node: Node) -> set[int]:
    """The tasks waiting on `node` through a live `blocks` dependency."""
    out: set[int] = set()
    for from_type, from_id in conn.execute(
        "SELECT from_type, from_id FROM dependencies WHERE to_type = ? AND to_id = ?"
        " AND kind = 'blocks' AND archived = 0",
        node,
    ).fetchall():
        out |= covered(conn, (from_type, from_id))
    return out


def dependencies_of(conn: sqlite3.Connection, nodes: Iterable[Node]) -> list[Node]:
    """(to_type, to_id) of every live `blocks` dependency from these nodes."""
    out: list[Node] = []
    for node in nodes:
        out += conn.execute(
            "SELECT to_type, to_id FROM dependencies WHERE from_type = ? AND from_id = ?"
            " AND kind = 'blocks' AND archived = 0",
            node,
        ).fetchall()
    return out


def born_blocked(
    conn: sqlite3.Connection, plan_id: int | None, phase_id: int | None, parent_id: int | None
) -> bool:
    """`blocked` of a task about to be added there (it has no dependencies of its own yet)."""
    row = conn.execute(
        f"SELECT (? IS NOT NULL AND {_waits('phase', '?')})"
        f" OR (? IS NOT NULL AND {_waits('plan', '?')})"
        " OR coalesce((SELECT blocked FROM tasks WHERE id = ?), 0)",
        (phase_id, phase_id, plan_id, plan_id, parent_id),
    ).fetchone()
    return bool(row[0])


# --- bringing it up to date ----------------------------------------------------------------
def _set(tx: Tx, task_id: int, values: dict[str, Any], kind: EventKind[Any] | None) -> Task:
    row = TASKS.update(tx, task_id, values, emit=kind is None)
    if kind is not None:
        tx.emit(kind, TASKS.updated_event(row, values))
    return row


# The counts a task keeps, and the SQL that says what each is now (task alias `t`).
Count = Literal["unblocks", "open_subtasks"]
_COUNTS: dict[Count, str] = {
    "unblocks": "(SELECT count(*) FROM dependencies AS d WHERE d.to_type = 'task'"
    " AND d.to_id = t.id AND d.kind = 'blocks' AND d.archived = 0)",
    "open_subtasks": "(SELECT count(*) FROM tasks AS c WHERE c.parent_id = t.id"
    f" AND c.status NOT IN {_TERMINAL_SQL})",
}


def _recount(tx: Tx, ids: set[int], column: Count) -> None:
    if not ids:
        return
    rows = tx.conn.execute(
        f"SELECT t.id, t.{column}, {_COUNTS[column]} FROM tasks AS t WHERE t.id IN {_IDS}",
        (_json(ids),),
    ).fetchall()
    for task_id, was, now in rows:
        if was != now:
            _set(tx, task_id, {column: now}, None)


def _in(statuses: Iterable[Status]) -> str:
    return "(" + ", ".join(f"'{s}'" for s in statuses) + ")"


# A phase's and a plan's status from their tasks' statuses, each question a few seeks in the
# (owner, status) indexes of schema/0008, whatever the number of tasks (counting them all on
# every change cost a plan of 1,000 tasks 1,000 row reads per added task).
_STATUSES: tuple[Status, ...] = get_args(Status)
_OPEN_SQL = _in(s for s in _STATUSES if s not in TERMINAL)
_OPEN_NOT_FAILED_SQL = _in(s for s in _STATUSES if s not in TERMINAL and s != "failed")
_STARTED_SQL = _in(s for s in _STATUSES if s != "pending")
_PHASE_STATUS = (
    "SELECT status, EXISTS (SELECT 1 FROM tasks WHERE phase_id = ?),"
    f" EXISTS (SELECT 1 FROM tasks WHERE phase_id = ? AND status IN {_OPEN_SQL}),"
    " EXISTS (SELECT 1 FROM tasks WHERE phase_id = ? AND status = 'failed'),"
    f" EXISTS (SELECT 1 FROM tasks WHERE phase_id = ? AND status IN {_OPEN_NOT_FAILED_SQL}),"
    f" EXISTS (SELECT 1 FROM tasks WHERE phase_id = ? AND status IN {_STARTED_SQL})"
    " FROM phases WHERE id = ?"
)
_PLAN_STATUS = (
    "SELECT status, EXISTS (SELECT 1 FROM tasks WHERE plan_id = ?),"
    f" EXISTS (SELECT 1 FROM tasks WHERE plan_id = ? AND status IN {_OPEN_SQL})"
    " FROM plans WHERE id = ?"
)


def _phase_status(tx: Tx, phase_id: int, ends: set[Node]) -> None:
    found = tx.conn.execute(_PHASE_STATUS, (phase_id,) * 6).fetchone()
    if found is None:
        return
    was, tasks, open_, failed, open_not_failed, started = found
    if not tasks:
        return  # a phase without tasks is set by hand (a Perpetua stage)
    if not open_:
        status = "completed"  # every task completed or cancelled
    elif failed and not open_not_failed:
        status = "failed"  # the rest completed or cancelled
    elif not started:
        status = "pending"  # none started
    else:
        status = "in_progress"
    if status == was:
        return
    completed_at = tx.now if status == "completed" else None
    PHASES.update(tx, phase_id, {"status": status, "completed_at": completed_at})
    if terminal(status) != terminal(was):
        ends.add(("phase", phase_id))


def _plan_status(tx: Tx, plan_id: int, ends: set[Node]) -> None:
    found = tx.conn.execute(_PLAN_STATUS, (plan_id,) * 3).fetchone()
    if found is None:
        return
    was, tasks, open_ = found  # paused, blocked, failed and cancelled are said by hand
    if was == "active" and tasks and not open_:
        PLANS.update(tx, plan_id, {"status": "completed", "completed_at": tx.now})
        ends.add(("plan", plan_id))
    elif was == "completed" and open_:
        PLANS.update(tx, plan_id, {"status": "active", "completed_at": None})
        ends.add(("plan", plan_id))


def refresh_blocked(tx: Tx, ids: set[int]) -> tuple[list[Task], list[Task]]:
    """Re-read `blocked` of these tasks (and of the subtasks of those that changed); returns
    (unblocked, newly blocked)."""
    unblocked: dict[int, Task] = {}
    blocked: dict[int, Task] = {}
    todo = set(ids)
    while todo:
        rows = tx.conn.execute(
            f"SELECT t.id, t.blocked, {_BLOCKED_NOW} FROM tasks AS t WHERE t.id IN {_IDS}",
            (_json(todo),),
        ).fetchall()
        flipped = [(task_id, bool(now)) for task_id, was, now in rows if bool(was) != bool(now)]
        for task_id, now in flipped:
            row = _set(tx, task_id, {"blocked": now}, BLOCKED if now else UNBLOCKED)
            (blocked if now else unblocked)[task_id] = row
            (unblocked if now else blocked).pop(task_id, None)
        todo = {
            r[0]
            for r in tx.conn.execute(
                f"SELECT id FROM tasks WHERE parent_id IN {_IDS}",
                (_json(task_id for task_id, _ in flipped),),
            )
        }
    return list(unblocked.values()), list(blocked.values())


def settle(tx: Tx, touched: Touched) -> list[Task]:
    """Bring every derived field up to date after a write; returns the tasks it unblocked."""
    conn = tx.conn
    _recount(tx, touched.targets, "unblocks")
    _recount(tx, touched.parents, "open_subtasks")
    ends = set(touched.ends)
    for phase_id in sorted(touched.phases):
        _phase_status(tx, phase_id, ends)
    for plan_id in sorted(touched.plans):
        _plan_status(tx, plan_id, ends)
    waiting = set(touched.blocked)
    for node in sorted(ends):
        waiting |= dependents(conn, node)
    unblocked, _ = refresh_blocked(tx, waiting)
    for feature_id in sorted(touched.features):
        feature = FEATURES.get(conn, feature_id)
        if feature is None:
            continue
        (done,) = conn.execute(
            "SELECT count(*) FROM tasks WHERE feature_id = ? AND status = 'completed'",
            (feature_id,),
        ).fetchone()
        if done != feature.completed_tasks:
            FEATURES.update(tx, feature_id, {"completed_tasks": done})
    return unblocked
