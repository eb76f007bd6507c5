"""Ready work and the next step: reads that work on any connection (a reader's, or the writer's
inside a claim, so choosing and claiming are one transaction).

Ready: pending, not blocked, no open subtasks, not archived, not deferred past now — or held by
a claim whose lease has run out (the sweep returns those to pending; until it has, they are
ready all the same). Ranked by priority (1 first), then urgency (settings.Urgency: what it
releases, its due date, its age), then age and id.

Ranking without scoring every ready task: the partial index `tasks_ready` yields ready tasks by
(priority, unblocks desc, created_at), and for tasks without a due date urgency is
blocking·unblocks + age·f(created_at) with f falling along the index. So the scan stops as soon
as the tasks it holds outrank the best that any task after it could score (a threshold stop,
exact for any weights ≥ 0); tasks with a due date (few, their own partial index) and expired
claims are scored one by one and merged.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime

import msgspec

from daemon.domain.work.model import TASKS, Task
from daemon.domain.work.settings import Urgency
from daemon.store.table import Where

DAY = 86400.0
READY = "status = 'pending' AND blocked = 0 AND open_subtasks = 0 AND archived = 0"
_EXPIRED = (
    "lease_until IS NOT NULL AND lease_until < ? AND status = 'in_progress' AND blocked = 0"
    " AND open_subtasks = 0 AND archived = 0"
)
_COLUMNS = "id, priority, unblocks, created_at, due_at, defer_until"


class ReadyTask(Task, kw_only=True):
    """A task as `tasks.ready` lists it, with its urgency."""

    urgency: float


class Candidate(msgspec.Struct, frozen=True, order=True):
    priority: int
    minus_score: float
    created_at: str
    id: int


def seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class Scorer:
    def __init__(self, weights: Urgency, now: str) -> None:
        self.w = weights
        self.now = now
        self.t = seconds(now)
        self.age_span = weights.age_max_days * DAY

    def age(self, created_at: str) -> float:
        return min(max(self.t - seconds(created_at), 0.0) / self.age_span, 1.0)

    def due(self, due_at: str | None) -> float:
        """Taskwarrior's: 1.0 a week overdue or more, 0.2 two weeks ahead or more, linear."""
        if due_at is None:
            return 0.0
        overdue_days = (self.t - seconds(due_at)) / DAY
        if overdue_days >= 7:
            return 1.0
        if overdue_days >= -14:
            return (overdue_days + 14) * 0.8 / 21 + 0.2
        return 0.2

    def score(self, unblocks: int, created_at: str, due_at: str | None) -> float:
        w = self.w
        return w.blocking * unblocks + w.age * self.age(created_at) + w.due * self.due(due_at)

    def bound_after(self, unblocks: int, created_at: str) -> float:
        """The best score a later row of the same priority in the index can have."""
        w = self.w
        same = w.blocking * unblocks + w.age * self.age(created_at)
        fewer = w.blocking * (unblocks - 1) + w.age if unblocks > 0 else same
        return max(same, fewer)


def _scope(project_id: int | None) -> tuple[str, tuple[int, ...]]:
    return ("AND project_id = ?", (project_id,)) if project_id is not None else ("", ())


def _scan(conn: sqlite3.Connection, project_id: int | None) -> Iterator[tuple[object, ...]]:
    index = "tasks_ready_project" if project_id is not None else "tasks_ready"
    where, args = _scope(project_id)
    yield from conn.execute(
        f"SELECT {_COLUMNS} FROM tasks INDEXED BY {index} WHERE {READY} {where}"
        f" ORDER BY {'project_id, ' if project_id is not None else ''}priority, unblocks DESC,"
        " created_at, id",
        args,
    )


def ranked(
    conn: sqlite3.Connection,
    scorer: Scorer,
    project_id: int | None,
    limit: int,
    exclude: frozenset[int] = frozenset(),
) -> list[tuple[int, float]]:
    """The `limit` best ready tasks as (id, urgency), best first."""
    now = scorer.now
    best: list[Candidate] = []
    need = limit
    level: list[tuple[float, Candidate]] = []  # a min-heap of this priority's best `need`
    current: int | None = None
    for task_id, priority, unblocks, created_at, due_at, defer_until in _scan(conn, project_id):
        assert isinstance(task_id, int) and isinstance(priority, int)
        assert isinstance(unblocks, int) and isinstance(created_at, str)
        if priority != current:
            best += [c for _, c in level]
            current, level = priority, []
            need = limit - len(best)
            if need <= 0:
                break
        if due_at is not None or task_id in exclude:
            continue  # due dates are scored below; excluded ones are not wanted
        if isinstance(defer_until, str) and defer_until > now:
            continue
        score = scorer.score(unblocks, created_at, None)
        entry = (score, Candidate(priority, -score, created_at, task_id))
        if len(level) < need:
            heapq.heappush(level, entry)
        elif score > level[0][0]:
            heapq.heapreplace(level, entry)
        if len(level) == need and level[0][0] >= scorer.bound_after(unblocks, created_at):
            break  # nothing after this row can displace what is held
    best += [c for _, c in level]
    where, args = _scope(project_id)
    extra = conn.execute(
        f"SELECT {_COLUMNS} FROM tasks INDEXED BY tasks_ready_due WHERE due_at IS NOT NULL"
        f" AND {READY} {where}",
        args,
    ).fetchall()
    extra += conn.execute(
        f"SELECT {_COLUMNS} FROM tasks INDEXED BY tasks_leases WHERE {_EXPIRED} {where}",
        (now, *args),
    ).fetchall()
    for task_id, priority, unblocks, created_at, due_at, defer_until in extra:
        if task_id in exclude or (defer_until is not None and defer_until > now):
            continue
        score = scorer.score(unblocks, created_at, due_at)
        best.append(Candidate(priority, -score, created_at, task_id))
    best.sort()
    return [(c.id, -c.minus_score) for c in best[:limit]]


def count(conn: sqlite3.Connection, now: str, project_id: int | None) -> int:
    """How many tasks are ready (the `total` of tasks.ready): the ready tasks the schema's
    triggers count per project (`ready_counts`), less the deferred, plus expired claims."""
    where, args = _scope(project_id)
    if project_id is None:
        (listed,) = conn.execute("SELECT coalesce(sum(ready), 0) FROM ready_counts").fetchone()
    else:
        found = conn.execute(
            "SELECT ready FROM ready_counts WHERE project_id = ?", (project_id,)
        ).fetchone()
        listed = found[0] if found else 0
    (deferred,) = conn.execute(
        f"SELECT count(*) FROM tasks INDEXED BY tasks_deferred WHERE defer_until IS NOT NULL"
        f" AND defer_until > ? AND {READY} {where}",
        (now, *args),
    ).fetchone()
    (expired,) = conn.execute(
        f"SELECT count(*) FROM tasks INDEXED BY tasks_leases WHERE {_EXPIRED} {where}",
        (now, *args),
    ).fetchone()
    return int(listed) - int(deferred) + int(expired)


def ready_page(
    conn: sqlite3.Connection, weights: Urgency, now: str, project_id: int | None, limit: int
) -> tuple[list[ReadyTask], int]:
    scorer = Scorer(weights, now)
    picked = ranked(conn, scorer, project_id, limit)
    rows = {t.id: t for t in TASKS.rows(conn, Where(TASKS).eq("id", [i for i, _ in picked]))}
    items = [
        ReadyTask(**msgspec.structs.asdict(rows[task_id]), urgency=round(score, 4))
        for task_id, score in picked
        if task_id in rows
    ]
    return items, count(conn, now, project_id)


# --- the next step of a plan ---------------------------------------------------------------
_OPEN = "archived = 0 AND status NOT IN ('completed', 'cancelled')"


def _usable(row: tuple[object, ...], now: str) -> bool:
    _, status, blocked, open_subtasks, defer_until, lease_until = row
    if blocked or open_subtasks:
        return False
    if isinstance(defer_until, str) and defer_until > now:
        return False
    if status == "pending":
        return True
    return status == "in_progress" and isinstance(lease_until, str) and lease_until < now


def _first_in(conn: sqlite3.Connection, rows: Iterable[tuple[object, ...]], now: str) -> int | None:
    for row in rows:
        task_id, _, blocked, open_subtasks, _, _ = row
        assert isinstance(task_id, int)
        if _usable(row, now):
            return task_id
        if open_subtasks and not blocked:
            found = _first_in(conn, _children(conn, task_id), now)
            if found is not None:
                return found
    return None


_FIELDS = "id, status, blocked, open_subtasks, defer_until, lease_until"


def _children(conn: sqlite3.Connection, parent_id: int) -> Iterable[tuple[object, ...]]:
    return conn.execute(
        f"SELECT {_FIELDS} FROM tasks INDEXED BY tasks_parent_open WHERE parent_id = ?"
        f" AND parent_id IS NOT NULL AND {_OPEN} ORDER BY position",
        (parent_id,),
    )


def next_step(conn: sqlite3.Connection, plan_id: int, now: str) -> int | None:
    """The first ready step of a plan in phase order, then step order (a step with open
    subtasks stands for its first ready subtask), or None."""
    phases = conn.execute(
        "SELECT id FROM phases WHERE plan_id = ? AND archived = 0 ORDER BY position", (plan_id,)
    ).fetchall()
    for (phase_id,) in phases:
        cursor = conn.execute(
            f"SELECT {_FIELDS} FROM tasks INDEXED BY tasks_phase_open WHERE phase_id = ?"
            f" AND parent_id IS NULL AND phase_id IS NOT NULL AND {_OPEN} ORDER BY position",
            (phase_id,),
        )
        found = _first_in(conn, cursor, now)
        if found is not None:
            return found
    return None
