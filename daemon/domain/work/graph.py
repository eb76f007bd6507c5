"""Cycle refusal: a `blocks` dependency that would make something wait, however indirectly, on
itself is refused — across plan, phase and task levels.

The graph walked is "waits for": a node waits for the targets of its own `blocks` dependencies;
a task also for those of its phase, its plan and its ancestor tasks (it inherits them through
`blocked`) and for its subtasks (it is not ready while they are open); a phase or a plan waits
for its tasks (it is done when they are). Adding `from → to` closes a cycle when `to` already
waits, through any chain, for `from` or for anything that would inherit the new dependency (the
tasks a phase or plan covers, a task's subtasks).

An in-memory breadth-first walk from `to`, reading only the nodes it reaches: on a 50,000-step
database it answers in well under a millisecond for the usual shallow chains (bench/work.py);
a recursive CTE would have to express the four kinds of edge at once and could not stop at the
first hit.
"""

from __future__ import annotations

import sqlite3
from collections import deque

from daemon.domain.work.model import NodeType

Node = tuple[NodeType, int]

_DEPS = (
    "SELECT to_type, to_id FROM dependencies WHERE from_type = ? AND from_id = ?"
    " AND kind = 'blocks' AND archived = 0"
)


class _Walk:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._deps: dict[Node, list[Node]] = {}

    def deps(self, node: Node) -> list[Node]:
        found = self._deps.get(node)
        if found is None:
            found = self._deps[node] = list(self.conn.execute(_DEPS, node))
        return found

    def ancestors(self, task_id: int) -> list[int]:
        rows = self.conn.execute(
            "WITH RECURSIVE up(id) AS (SELECT parent_id FROM tasks WHERE id = ?"
            " UNION SELECT t.parent_id FROM tasks AS t JOIN up ON t.id = up.id)"
            " SELECT id FROM up WHERE id IS NOT NULL",
            (task_id,),
        )
        return [r[0] for r in rows]

    def successors(self, node: Node) -> list[Node]:
        kind, node_id = node
        out = list(self.deps(node))
        if kind == "task":
            row = self.conn.execute(
                "SELECT phase_id, plan_id, parent_id FROM tasks WHERE id = ?", (node_id,)
            ).fetchone()
            if row is None:
                return out
            phase_id, plan_id, parent_id = row
            if phase_id is not None:
                out += self.deps(("phase", phase_id))
            if plan_id is not None:
                out += self.deps(("plan", plan_id))
            if parent_id is not None:
                for ancestor in self.ancestors(node_id):
                    out += self.deps(("task", ancestor))
            children = self.conn.execute("SELECT id FROM tasks WHERE parent_id = ?", (node_id,))
            out += [("task", r[0]) for r in children]
        else:
            column = "phase_id" if kind == "phase" else "plan_id"
            tasks = self.conn.execute(f"SELECT id FROM tasks WHERE {column} = ?", (node_id,))
            out += [("task", r[0]) for r in tasks]
        return out

    def inheriting(self, node: Node) -> set[Node]:
        """`node` and everything that would wait on what it waits on."""
        kind, node_id = node
        out: set[Node] = {node}
        if kind == "task":
            rows = self.conn.execute(
                "WITH RECURSIVE down(id) AS (SELECT id FROM tasks WHERE parent_id = ?"
                " UNION SELECT t.id FROM tasks AS t JOIN down ON t.parent_id = down.id)"
                " SELECT id FROM down",
                (node_id,),
            )
        else:
            column = "phase_id" if kind == "phase" else "plan_id"
            rows = self.conn.execute(f"SELECT id FROM tasks WHERE {column} = ?", (node_id,))
        out |= {("task", r[0]) for r in rows}
        if kind == "plan":
            phases = self.conn.execute("SELECT id FROM phases WHERE plan_id = ?", (node_id,))
            out |= {("phase", r[0]) for r in phases}
        return out


def cycle_through(conn: sqlite3.Connection, source: Node, target: Node) -> list[Node] | None:
    """The cycle `source → target` would close (source first, back to where it started), or
    None when the dependency is safe."""
    walk = _Walk(conn)
    goal = walk.inheriting(source)
    if target in goal:
        return [source, target]
    came_from: dict[Node, Node | None] = {target: None}
    queue: deque[Node] = deque([target])
    while queue:
        node = queue.popleft()
        for nxt in walk.successors(node):
            if nxt in came_from:
                continue
            came_from[nxt] = node
            if nxt in goal:
                path: list[Node] = [nxt]
                step: Node | None = node
                while step is not None:
                    path.append(step)
                    step = came_from[step]
                return [source, *reversed(path)]
            queue.append(nxt)
    return None


def cycle_among(conn: sqlite3.Connection, edges: list[tuple[Node, Node]]) -> list[Node] | None:
    """A cycle through any of these (existing) `blocks` edges, after a change that may have
    closed one (a task moved to another phase or parent)."""
    for source, target in edges:
        found = cycle_through(conn, source, target)
        if found is not None:
            return found
    return None
