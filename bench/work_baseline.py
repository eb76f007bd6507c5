"""The baseline of `python -m bench work`: the same questions written the obvious way, on a copy
of the very database the daemon answered from — with the daemon's partial indexes dropped (and
a plain index on status added, as PM Agent's and Nexus' schemas have), and blocking computed at
read time from the dependencies instead of read from the stored flag. Run in this process on
its own connection (no socket, no JSON): the baseline pays no round trip at all.

Also here: cycle detection as one recursive CTE over the same "waits for" edges, beside the
daemon's in-memory walk (daemon/domain/work/graph.py) on the same graph.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

PARTIAL_INDEXES = (
    "tasks_ready", "tasks_ready_project", "tasks_ready_due", "tasks_deferred", "tasks_phase_open",
    "tasks_parent_open", "tasks_leases",
)  # fmt: skip

_DONE = "('completed', 'cancelled')"
# A node is done when it is (a task), or when every task in it is (a phase, a plan).
_OPEN_TARGET = (
    "CASE d.to_type"
    f" WHEN 'task' THEN (SELECT x.status NOT IN {_DONE} FROM tasks AS x WHERE x.id = d.to_id)"
    f" WHEN 'phase' THEN EXISTS (SELECT 1 FROM tasks AS x WHERE x.phase_id = d.to_id"
    f" AND x.status NOT IN {_DONE})"
    f" ELSE EXISTS (SELECT 1 FROM tasks AS x WHERE x.plan_id = d.to_id"
    f" AND x.status NOT IN {_DONE}) END"
)
BLOCKED_AT_READ = (
    "EXISTS (SELECT 1 FROM dependencies AS d WHERE d.kind = 'blocks' AND d.archived = 0"
    " AND ((d.from_type = 'task' AND d.from_id = t.id)"
    " OR (d.from_type = 'phase' AND d.from_id = t.phase_id)"
    " OR (d.from_type = 'plan' AND d.from_id = t.plan_id))"
    f" AND {_OPEN_TARGET})"
)
_OPEN_CHILDREN = (
    f"EXISTS (SELECT 1 FROM tasks AS c WHERE c.parent_id = t.id AND c.status NOT IN {_DONE})"
)
_URGENCY = (
    "(8.0 * (SELECT count(*) FROM dependencies AS u WHERE u.to_type = 'task'"
    " AND u.to_id = t.id AND u.kind = 'blocks' AND u.archived = 0)"
    " + 2.0 * min(julianday(:now) - julianday(t.created_at), 365.0) / 365.0"
    " + CASE WHEN t.due_at IS NULL THEN 0 ELSE 12.0 * max(0.2, min(1.0,"
    " (julianday(:now) - julianday(t.due_at) + 14) * 0.8 / 21 + 0.2)) END)"
)
_READY = (
    "t.status = 'pending' AND t.archived = 0"
    " AND (t.defer_until IS NULL OR t.defer_until <= :now)"
    f" AND NOT {BLOCKED_AT_READ} AND NOT {_OPEN_CHILDREN}"
)


def prepare(source: Path, copy: Path) -> sqlite3.Connection:
    """A copy of the daemon's database without its partial indexes, open read-write."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src:
        dst = sqlite3.connect(copy)
        src.backup(dst)
    for name in PARTIAL_INDEXES:
        dst.execute(f"DROP INDEX IF EXISTS {name}")
    dst.execute("CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status)")
    dst.commit()
    return dst


def ready(conn: sqlite3.Connection, now: str, project: int | None, limit: int) -> list[Any]:
    scope = "AND t.project_id = :project" if project is not None else ""
    sql = (
        f"SELECT t.*, {_URGENCY} AS urgency FROM tasks AS t WHERE {_READY} {scope}"
        " ORDER BY t.priority, urgency DESC, t.id LIMIT :limit"
    )
    found = conn.execute(sql, {"now": now, "project": project, "limit": limit}).fetchall()
    (total,) = conn.execute(
        f"SELECT count(*) FROM tasks AS t WHERE {_READY} {scope}", {"now": now, "project": project}
    ).fetchone()
    return [found, total]


def next_step(conn: sqlite3.Connection, now: str, plan: int) -> Any:
    return conn.execute(
        "SELECT t.* FROM tasks AS t JOIN phases AS p ON p.id = t.phase_id"
        f" WHERE t.plan_id = :plan AND {_READY} ORDER BY p.position, t.position LIMIT 1",
        {"plan": plan, "now": now},
    ).fetchone()


def plan_tree(conn: sqlite3.Connection, plan: int) -> dict[str, Any]:
    conn.row_factory = sqlite3.Row
    try:
        out: dict[str, Any] = dict(
            conn.execute("SELECT * FROM plans WHERE id = ?", (plan,)).fetchone()
        )
        phases = [dict(r) for r in conn.execute(
            "SELECT * FROM phases WHERE plan_id = ? ORDER BY position", (plan,))]  # fmt: skip
        tasks = conn.execute(
            f"SELECT t.*, {BLOCKED_AT_READ} AS blocked_now FROM tasks AS t WHERE t.plan_id = ?"
            " ORDER BY t.phase_id, t.position",
            (plan,),
        ).fetchall()
        by_phase: dict[int, list[dict[str, Any]]] = {}
        for task in tasks:
            by_phase.setdefault(task["phase_id"], []).append(dict(task))
        for phase in phases:
            phase["tasks"] = by_phase.get(phase["id"], [])
        out["phases"] = phases
        out["dependencies"] = [dict(r) for r in conn.execute(
            "SELECT * FROM dependencies WHERE (from_type = 'plan' AND from_id = :p)"
            " OR (to_type = 'plan' AND to_id = :p)"
            " OR (from_type = 'task' AND from_id IN (SELECT id FROM tasks WHERE plan_id = :p))"
            " OR (to_type = 'task' AND to_id IN (SELECT id FROM tasks WHERE plan_id = :p))"
            " OR (from_type = 'phase' AND from_id IN (SELECT id FROM phases WHERE plan_id = :p))"
            " OR (to_type = 'phase' AND to_id IN (SELECT id FROM phases WHERE plan_id = :p))",
            {"p": plan})]  # fmt: skip
        return out
    finally:
        conn.row_factory = None


def claim(conn: sqlite3.Connection, now: str, agent: str) -> int | None:
    """Choose and claim in one IMMEDIATE transaction, the obvious way (beads' fix)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            f"SELECT t.id FROM tasks AS t WHERE {_READY} ORDER BY t.priority, {_URGENCY} DESC,"
            " t.id LIMIT 1",
            {"now": now},
        ).fetchone()
        if row is not None:
            conn.execute(
                "UPDATE tasks SET status = 'in_progress', claimed_by = ?, claimed_at = ?,"
                " lease_until = ? WHERE id = ?",
                (agent, now, now, row[0]),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return row[0] if row is not None else None


_REACH = (
    "WITH RECURSIVE reach(type, id) AS ("
    " SELECT :to_type, :to_id"
    " UNION SELECT d.to_type, d.to_id FROM reach AS r JOIN dependencies AS d"
    " ON d.from_type = r.type AND d.from_id = r.id AND d.kind = 'blocks' AND d.archived = 0"
    " UNION SELECT d.to_type, d.to_id FROM reach AS r JOIN tasks AS k ON r.type = 'task'"
    " AND k.id = r.id JOIN dependencies AS d ON d.kind = 'blocks' AND d.archived = 0"
    " AND ((d.from_type = 'phase' AND d.from_id = k.phase_id)"
    " OR (d.from_type = 'plan' AND d.from_id = k.plan_id))"
    " UNION SELECT 'task', k.id FROM reach AS r JOIN tasks AS k"
    " ON (r.type = 'phase' AND k.phase_id = r.id) OR (r.type = 'plan' AND k.plan_id = r.id)"
    " OR (r.type = 'task' AND k.parent_id = r.id))"
    " SELECT 1 FROM reach WHERE type = :from_type AND id = :from_id LIMIT 1"
)


def cycle_cte(conn: sqlite3.Connection, source: tuple[str, int], target: tuple[str, int]) -> bool:
    """Would source → target close a cycle (tasks only as sources: what the bench asks)?"""
    params = {"from_type": source[0], "from_id": source[1], "to_type": target[0],
              "to_id": target[1]}  # fmt: skip
    return conn.execute(_REACH, params).fetchone() is not None
