"""tasks: steps (in a phase, ordered), todos (in no plan), Nexus tasks, subtasks.

Generated: tasks.add, tasks.get, tasks.update. Written here, because they are real rules:
- where a task belongs: a step takes its plan and project from its phase, a subtask everything
  from its parent; a todo has a project (or none) and no position;
- positions stay dense (insert at an index, move between phases or parents, delete);
- a status change records its times (started, completed) and ends a claim when it ends the
  work; a write to a claimed task renews the lease; an archived task is read-only;
- every change settles the derived state (derived.py) in the same transaction;
- tasks.list leaves archived tasks out unless asked; tasks.delete closes the gap and refreshes
  what waited on it; tasks.move refuses a move that would close a dependency cycle.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, cast

import msgspec
from msgspec import UNSET

from daemon.domain.app import App
from daemon.domain.crud import Crud, Deleted, Id, Ref, Rules
from daemon.domain.projects.ref import PROJECT, ProjectRef, project_id
from daemon.domain.work import derived, graph, ordering
from daemon.domain.work.derived import Touched
from daemon.domain.work.model import (
    PHASES,
    PLANS,
    TASKS,
    Agent,
    Position,
    Status,
    Task,
    TaskOrder,
    TaskType,
)
from daemon.domain.work.times import check_time
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import Conflict, InvalidParams, InvalidState, RpcError
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.events_catalogue import EventKind
from daemon.store.limits import Limit, Offset
from daemon.store.table import Page, Where

MOVED = EventKind("tasks.moved", TASKS.updated.payload)
_TIMES = ("due_at", "defer_until", "started_at", "completed_at")
_CLAIM_CLEARED = {"claimed_by": None, "claimed_at": None, "lease_s": None, "lease_until": None}


def writable(row: Task) -> None:
    if row.archived:
        raise InvalidState(
            f"task {row.id} belongs to an archived plan; unarchive plan {row.plan_id} first",
            id=row.id,
            plan=row.plan_id,
        )


def lease_end(now: str, lease_s: int) -> str:
    """`now` (a stored time) plus `lease_s` seconds, stored the same way."""
    moment = datetime.fromisoformat(now) + timedelta(seconds=lease_s)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"  # UTC already: no zone math


def status_effects(tx: Tx, old: Task | None, values: dict[str, Any]) -> None:
    """What a status change records: when work started and ended, and that a claim ends with
    the work (completed, cancelled, failed, or back to pending)."""
    status = values.get("status", old.status if old else "pending")
    before = old.status if old else None
    if status == before:
        return
    if status == "in_progress" and (old is None or old.started_at is None):
        values.setdefault("started_at", tx.now)
    if status == "completed":
        values.setdefault("completed_at", tx.now)
    elif before == "completed":
        values.update(completed_at=None, completed_by=None, completed_branch=None,
                      completed_head=None)  # fmt: skip
    if status == "blocked":
        reason = values.get("blocked_reason", old.blocked_reason if old else None)
        if not reason:
            raise InvalidParams(
                "Invalid params: a task held as blocked needs a blocked_reason",
                field="blocked_reason",
            )
    elif before == "blocked":
        values.setdefault("blocked_reason", None)
    if old is not None and old.claimed_by is not None and status != "in_progress":
        values.update(_CLAIM_CLEARED)


def _check_links(tx: Tx, project_id: int | None, values: dict[str, Any]) -> None:
    for column, table, field in (("feature_id", "features", "feature"),
                                 ("session_id", "sessions", "session")):  # fmt: skip
        linked = values.get(column)
        if linked is None:
            continue
        row = tx.conn.execute(f"SELECT project_id FROM {table} WHERE id = ?", (linked,)).fetchone()
        if row is None:
            raise InvalidParams(f"Invalid params: no {field} {linked}", field=field)
        if row[0] != project_id:
            raise InvalidParams(
                f"Invalid params: {field} {linked} belongs to another project", field=field
            )


def place(tx: Tx, values: dict[str, Any], position: int | None) -> None:
    """Fill in where a new task belongs (plan, phase, project, position) from its parent or
    its phase, making room at `position`."""
    parent_id, phase_id = values.get("parent_id"), values.get("phase_id")
    if parent_id is not None:
        parent = TASKS.must_get(tx.conn, parent_id)
        writable(parent)
        if phase_id is not None and phase_id != parent.phase_id:
            raise InvalidParams("Invalid params: a subtask is in its parent's phase", field="phase")
        values.update(project_id=parent.project_id, plan_id=parent.plan_id,
                      phase_id=parent.phase_id)  # fmt: skip
        values["position"] = ordering.subtasks_of(parent_id).open_at(tx, position)
    elif phase_id is not None:
        phase = PHASES.must_get(tx.conn, phase_id)
        plan = PLANS.must_get(tx.conn, phase.plan_id)
        if plan.archived:
            raise InvalidState(f"plan {plan.id} is archived; unarchive it first", plan=plan.id)
        given = values.get("project_id")
        if given is not None and given != plan.project_id:
            raise InvalidParams("Invalid params: a step is in its plan's project", field="project")
        values.update(project_id=plan.project_id, plan_id=plan.id)
        values["position"] = ordering.steps_of(phase_id).open_at(tx, position)
    elif position is not None:
        raise InvalidParams(
            "Invalid params: a position is within a phase or a parent; give one",
            field="position",
        )


class TaskRules(Rules[Task]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        for name in _TIMES:
            if name in values:
                values[name] = check_time(name, values[name])
        place(tx, values, values.pop("position", None))
        _check_links(tx, values.get("project_id"), values)
        status_effects(tx, None, values)
        values["blocked"] = derived.born_blocked(
            tx.conn, values.get("plan_id"), values.get("phase_id"), values.get("parent_id")
        )  # the row this answers with is the one inserted: born right, not settled after

    def after_add(self, tx: Tx, row: Task) -> None:
        touched = Touched()
        touched.task(None, row)
        derived.settle(tx, touched)

    def before_update(self, tx: Tx, old: Task, changes: dict[str, Any]) -> None:
        writable(old)
        for name in _TIMES:
            if changes.get(name) is not None:
                changes[name] = check_time(name, changes[name])
        if "feature_id" in changes or "session_id" in changes:
            _check_links(tx, old.project_id, changes)
        status_effects(tx, old, changes)
        live = old.lease_until is not None and old.lease_until >= tx.now
        if live and old.lease_s and changes.get("status", old.status) == "in_progress":
            changes["lease_until"] = lease_end(tx.now, old.lease_s)  # a write renews the lease

    def after_update(self, tx: Tx, old: Task, new: Task) -> None:
        touched = Touched()
        touched.task(old, new)
        derived.settle(tx, touched)


methods = Methods()
_CREATE = (
    "title", "active_form", "description", "type", "status", "blocked_reason", "priority", "size",
    "tags", "notes", "assigned_agent", "worktree_path", "branch_name", "qa_iterations",
    "max_iterations", "estimated_minutes", "actual_minutes", "due_at", "defer_until", "position",
)  # fmt: skip
CRUD = Crud(
    TASKS,
    refs=[
        PROJECT,
        Ref("phase", "phase_id", "phases", description="the phase a step is in"),
        Ref("parent", "parent_id", "tasks", description="the task a subtask is part of"),
        Ref("feature", "feature_id", "features"),
        Ref("session", "session_id", "sessions"),
    ],
    create=_CREATE,
    change=(*(c for c in _CREATE if c != "position"), "feature_id", "session_id"),
    rules=TaskRules(),
)
CRUD.register(methods, ("add", "get", "update"))


# --- list ----------------------------------------------------------------------------------------
class TasksListParams(Params, frozen=True):
    project: ProjectRef | None = None
    plan: Id | None = None
    phase: Id | None = None
    parent: Id | None = None
    feature: Id | None = None
    session: Id | None = None
    status: Annotated[list[Status], msgspec.Meta(max_length=16)] | None = None
    type: TaskType | None = None
    assigned_agent: Agent | None = None
    claimed_by: Agent | None = None
    blocked: bool | None = None
    todo: bool | None = None  # true: only tasks in no plan; false: only steps
    include_archived: bool = False
    order: TaskOrder | None = None
    limit: Limit = 100
    offset: Offset = 0


@methods("tasks.list")
async def list_tasks(app: App, call: Call, p: TasksListParams) -> Page[Task]:
    """Tasks, filtered (a project, plan, phase, parent, feature, session, statuses…), with
    `{items, total}`; archived ones only with `include_archived`."""
    where = Where(TASKS)
    if p.project is not None:
        where.eq("project_id", await project_id(app, p.project))
    for column, value in (("plan_id", p.plan), ("phase_id", p.phase), ("parent_id", p.parent),
                          ("feature_id", p.feature), ("session_id", p.session),
                          ("type", p.type), ("assigned_agent", p.assigned_agent),
                          ("claimed_by", p.claimed_by), ("blocked", p.blocked)):  # fmt: skip
        if value is not None:
            where.eq(column, value)
    if p.status is not None:
        where.eq("status", p.status)
    if p.todo is not None:
        where.sql("t.plan_id IS NULL" if p.todo else "t.plan_id IS NOT NULL")
    if not p.include_archived:
        where.eq("archived", False)
    return await app.db.read(TASKS.page, where, p.order, p.limit, p.offset)


# --- delete --------------------------------------------------------------------------------------
def subtree(tx: Tx, task_id: int) -> list[int]:
    rows = tx.conn.execute(
        "WITH RECURSIVE down(id) AS (SELECT ? UNION SELECT t.id FROM tasks AS t"
        " JOIN down ON t.parent_id = down.id) SELECT id FROM down",
        (task_id,),
    )
    return [r[0] for r in rows]


def around(tx: Tx, ids: list[int]) -> Touched:
    """What deleting or moving these tasks disturbs outside them: what waits on them, and the
    tasks they point at (whose `unblocks` counts them)."""
    touched = Touched()
    for task_id in ids:
        touched.blocked |= derived.dependents(tx.conn, ("task", task_id))
        touched.targets |= {
            to_id
            for to_type, to_id in derived.dependencies_of(tx.conn, [("task", task_id)])
            if to_type == "task"
        }
    return touched


def delete(tx: Tx, task_id: int, expected_version: int | None) -> Deleted:
    row = TASKS.must_get(tx.conn, task_id)
    writable(row)
    inside = subtree(tx, task_id)
    touched = around(tx, inside)
    touched.task(row, None)
    touched.blocked -= set(inside)
    touched.targets -= set(inside)
    touched.parents.discard(task_id)
    order = ordering.siblings(row)
    if order is not None and row.position is not None:
        ordering.park(tx, "tasks", task_id)
        order.close_at(tx, row.position)
    TASKS.delete(tx, task_id, expected_version=expected_version)
    derived.settle(tx, touched)
    return Deleted(id=row.id, uid=row.uid)


class TaskDeleteParams(Params, frozen=True):
    id: Id
    expected_version: Annotated[int, msgspec.Meta(ge=1)] | None = None


@methods("tasks.delete")
async def delete_task(app: App, call: Call, p: TaskDeleteParams) -> Deleted:
    """Delete a task and its subtasks; the steps after it move up, and what waited on it is
    released."""
    return await app.db.write(lambda tx: delete(tx, p.id, p.expected_version))


# --- move ----------------------------------------------------------------------------------------
class TaskMoveParams(Params, frozen=True):
    id: Id
    phase: Id | None = None
    parent: Id | None = None
    position: Position | None = None


def move(tx: Tx, p: TaskMoveParams) -> Task:
    old = TASKS.must_get(tx.conn, p.id)
    writable(old)
    if p.phase is not None and p.parent is not None:
        raise InvalidParams("Invalid params: give a phase or a parent, not both", field="parent")
    inside = subtree(tx, old.id)
    if p.parent is not None and p.parent in inside:
        raise InvalidParams(
            "Invalid params: a task cannot move under itself or its own subtask", field="parent"
        )
    target: dict[str, Any] = {}
    if p.parent is not None:
        target["parent_id"] = p.parent
    elif p.phase is not None:
        target["phase_id"] = p.phase
    elif ordering.siblings(old) is not None:
        target = {"parent_id": old.parent_id, "phase_id": old.phase_id}
        if p.position is None:
            raise InvalidParams("Invalid params: give a position, a phase or a parent",
                                field="position")  # fmt: skip
    else:
        raise InvalidParams("Invalid params: a todo moves into a phase or under a parent",
                            field="phase")  # fmt: skip
    order = ordering.siblings(old)
    if order is not None and old.position is not None:
        ordering.park(tx, "tasks", old.id)
        order.close_at(tx, old.position)
    values: dict[str, Any] = {"parent_id": None, "phase_id": None, **target}
    place(tx, values, p.position)
    values.setdefault("project_id", old.project_id)
    moved = TASKS.update(tx, old.id, values, emit=False)
    changed = {k: getattr(moved, k) for k in values if getattr(old, k) != getattr(moved, k)}
    tx.emit(MOVED, TASKS.updated_event(moved, changed))
    touched = around(tx, inside)
    touched.task(old, moved)
    for child_id in inside[1:]:  # the subtree follows into the new phase and plan
        child = TASKS.must_get(tx.conn, child_id)
        follow = {"plan_id": moved.plan_id, "phase_id": moved.phase_id,
                  "project_id": moved.project_id}  # fmt: skip
        new_child = TASKS.update(tx, child_id, follow)
        touched.task(child, new_child)
    cycle = graph.cycle_among(tx.conn, edges_around(tx, moved, inside))
    if cycle is not None:
        raise Conflict(
            "the move would close a dependency cycle: " + " → ".join(f"{k} {i}" for k, i in cycle),
            cycle=[{"type": k, "id": i} for k, i in cycle],
        )
    derived.settle(tx, touched)
    return TASKS.must_get(tx.conn, old.id)


def edges_around(tx: Tx, moved: Task, inside: list[int]) -> list[tuple[graph.Node, graph.Node]]:
    """The `blocks` edges a move may have put on a cycle: those of the moved tasks, and those
    into or out of their new containers."""
    nodes: list[graph.Node] = [("task", i) for i in inside]
    if moved.phase_id is not None:
        nodes.append(("phase", moved.phase_id))
    if moved.plan_id is not None:
        nodes.append(("plan", moved.plan_id))
    edges: list[tuple[graph.Node, graph.Node]] = []
    for node in nodes:
        edges += [(node, (t, i)) for t, i in derived.dependencies_of(tx.conn, [node])]
        edges += [
            ((t, i), node)
            for t, i in tx.conn.execute(
                "SELECT from_type, from_id FROM dependencies WHERE to_type = ? AND to_id = ?"
                " AND kind = 'blocks' AND archived = 0",
                node,
            )
        ]
    return edges


@methods("tasks.move")
async def move_task(app: App, call: Call, p: TaskMoveParams) -> Task:
    """Move a task to `position` (0-based) among its siblings, into another `phase` (a todo
    becomes a step), or under a `parent`; positions stay dense on both sides, its subtasks go
    with it, and a move that would close a dependency cycle is refused (conflict)."""
    return await app.db.write(lambda tx: move(tx, p))


# --- many at once ------------------------------------------------------------------------------
_Items = Annotated[
    list[CRUD.update_params],  # type: ignore[name-defined]  # a type the Crud made
    msgspec.Meta(min_length=1, max_length=1000),
]
UpdateManyParams = cast(
    "type[Params]",
    msgspec.defstruct(
        "TasksUpdateManyParams", [("updates", _Items)], bases=(Params,), kw_only=True,
        frozen=True, forbid_unknown_fields=True,
    ),
)  # fmt: skip


def update_many(tx: Tx, updates: list[Any]) -> list[Task]:
    """Project Memory's batchUpdateSteps: each item as tasks.update would do it, all in one
    transaction — one refused, none done (the error says which)."""
    rules = CRUD.rules
    out: list[Task] = []
    for n, item in enumerate(updates):
        changes = {c: getattr(item, c) for c in CRUD.change if getattr(item, c) is not UNSET}
        try:
            old = TASKS.must_get(tx.conn, item.id)
            rules.before_update(tx, old, changes)
            new = TASKS.update(tx, item.id, changes, expected_version=item.expected_version)
            if new is not old:
                rules.after_update(tx, old, new)
        except RpcError as e:
            raise type(e)(f"updates[{n}] (task {item.id}): {e.message}", **e.data,
                          index=n) from None  # fmt: skip
        out.append(new)
    return out


async def update_many_method(app: App, call: Call, p: Any) -> list[Task]:
    return await app.db.write(lambda tx: update_many(tx, p.updates))


methods.add(
    "tasks.update_many",
    update_many_method,
    params_type=UpdateManyParams,
    result_type=list[Task],
    doc="Change many tasks in one transaction (each item as tasks.update takes it, at most "
    "1,000): all of them, or none and an error naming the item (`data.index`).",
)
