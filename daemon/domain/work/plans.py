"""plans and phases.

Generated: plans.add, plans.update, phases.get, phases.update. Written here, because they are
real rules:
- plans.get answers the whole plan: its phases in order, each with its tasks in order (a
  subtask right after its parent), and the dependencies that touch any of them;
- plans.list leaves archived plans out unless asked;
- a plan's program is one of its project's own or one linked to it;
- completing a plan or phase by hand records when; a phase with tasks follows its tasks;
- phases are ordered densely (add at an index, move, delete); deleting a plan or phase takes
  its tasks and their dependencies with it and releases what waited on them;
- an archived plan, and everything in it, is read-only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Crud, Deleted, Id, Ref, Rules
from daemon.domain.projects.ref import PROJECT, ProjectRef, project_id
from daemon.domain.work import derived, ordering
from daemon.domain.work.derived import Touched
from daemon.domain.work.model import (
    DEPENDENCIES,
    PHASES,
    PLANS,
    TASKS,
    Dependency,
    Phase,
    Plan,
    PlanKind,
    PlanOrder,
    PlanStatus,
    Position,
    StageKind,
    Status,
    Task,
    Text,
    Title,
)
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams, InvalidState
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.events_catalogue import EventKind
from daemon.store.limits import Limit, Offset
from daemon.store.table import Page, Where

Version = Annotated[int, msgspec.Meta(ge=1)]
PHASE_MOVED = EventKind("phases.moved", PHASES.updated.payload)


def writable(plan: Plan) -> None:
    if plan.archived:
        raise InvalidState(f"plan {plan.id} is archived; unarchive it first", plan=plan.id)


def check_program(tx: Tx, project: int, program: int | None) -> None:
    """A plan's program is its project's own, or one linked to its project."""
    if program is None:
        return
    row = tx.conn.execute(
        "SELECT p.project_id = ? OR EXISTS (SELECT 1 FROM program_projects AS l"
        " WHERE l.program_id = p.id AND l.project_id = ?) FROM programs AS p WHERE p.id = ?",
        (project, project, program),
    ).fetchone()
    if row is None:
        raise InvalidParams(f"Invalid params: no program {program}", field="program")
    if not row[0]:
        raise InvalidParams(
            f"Invalid params: program {program} is not visible from this project; link it "
            "first (program_projects.add)",
            field="program",
        )


class PlanRules(Rules[Plan]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        check_program(tx, values["project_id"], values.get("program_id"))
        if values["status"] == "completed":
            values["completed_at"] = tx.now

    def before_update(self, tx: Tx, old: Plan, changes: dict[str, Any]) -> None:
        writable(old)
        if "program_id" in changes:
            check_program(tx, old.project_id, changes["program_id"])
        status = changes.get("status", old.status)
        if status != old.status:
            changes["completed_at"] = tx.now if status == "completed" else None

    def after_update(self, tx: Tx, old: Plan, new: Plan) -> None:
        touched = Touched()
        if derived.terminal(old.status) != derived.terminal(new.status):
            touched.ends.add(("plan", new.id))
        touched.plans.add(new.id)  # back to active/completed: follows its tasks again
        derived.settle(tx, touched)


methods = Methods()
_PLAN_FIELDS = ("kind", "title", "description", "category", "priority", "status", "goals",
                "success_criteria", "settings")  # fmt: skip
Crud(
    PLANS,
    refs=[
        replace(PROJECT, required=True),
        Ref("program", "program_id", "programs"),
    ],
    create=_PLAN_FIELDS,
    change=(*_PLAN_FIELDS, "program_id"),
    rules=PlanRules(),
).register(methods, ("add", "update"))


# --- the whole plan -------------------------------------------------------------------------------
class PhaseTree(Phase, kw_only=True):
    tasks: list[Task] = msgspec.field(default_factory=list)


class PlanTree(Plan, kw_only=True):
    phases: list[PhaseTree] = msgspec.field(default_factory=list)
    dependencies: list[Dependency] = msgspec.field(default_factory=list)


def in_order(tasks: list[Task]) -> list[Task]:
    """Tasks of one phase in plan order: top-level steps by position, each followed by its
    subtasks (depth first). `tasks` come ordered by (parent, position)."""
    ids = {t.id for t in tasks}
    children: dict[int | None, list[Task]] = {}
    for task in tasks:
        children.setdefault(task.parent_id if task.parent_id in ids else None, []).append(task)
    out: list[Task] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        task = stack.pop()
        out.append(task)
        stack += reversed(children.get(task.id, []))
    return out


# CROSS JOIN pins the join order: the plan's few phases and tasks first, then each one's edges
# by index (left to itself, the planner may walk every edge of a kind instead).
_TOUCHING = (
    "t.id IN (SELECT id FROM dependencies WHERE from_type = 'plan' AND from_id = :p"
    " UNION SELECT id FROM dependencies WHERE to_type = 'plan' AND to_id = :p"
    " UNION SELECT d.id FROM phases AS f CROSS JOIN dependencies AS d"
    " ON d.from_type = 'phase' AND d.from_id = f.id WHERE f.plan_id = :p"
    " UNION SELECT d.id FROM phases AS f CROSS JOIN dependencies AS d"
    " ON d.to_type = 'phase' AND d.to_id = f.id WHERE f.plan_id = :p"
    " UNION SELECT d.id FROM tasks AS k CROSS JOIN dependencies AS d"
    " ON d.from_type = 'task' AND d.from_id = k.id WHERE k.plan_id = :p"
    " UNION SELECT d.id FROM tasks AS k CROSS JOIN dependencies AS d"
    " ON d.to_type = 'task' AND d.to_id = k.id WHERE k.plan_id = :p)"
)


def touching(conn: Any, plan_id: int) -> list[Dependency]:
    """Every dependency with an end in the plan (the plan, its phases, its tasks)."""
    sql = _TOUCHING.replace(":p", "?")
    return DEPENDENCIES.rows(conn, Where(DEPENDENCIES).sql(sql, *([plan_id] * 6)), budget=False)


def tree(conn: Any, plan_id: int) -> PlanTree:
    plan = PLANS.must_get(conn, plan_id)
    phases = PHASES.rows(conn, Where(PHASES).eq("plan_id", plan_id), "position", budget=False)
    tasks = TASKS.rows(conn, Where(TASKS).eq("plan_id", plan_id), "position", budget=False)
    by_phase: dict[int | None, list[Task]] = {}
    for task in tasks:
        by_phase.setdefault(task.phase_id, []).append(task)
    return PlanTree(
        **msgspec.structs.asdict(plan),
        phases=[
            PhaseTree(**msgspec.structs.asdict(ph), tasks=in_order(by_phase.get(ph.id, [])))
            for ph in phases
        ],
        dependencies=touching(conn, plan_id),
    )


class PlanIdParams(Params, frozen=True):
    id: Id


@methods("plans.get")
async def get_plan(app: App, call: Call, p: PlanIdParams) -> PlanTree:
    """A plan with `phases: [{…, tasks: […]}]` in order (subtasks after their parent) and the
    `dependencies` touching any of them."""
    return await app.db.read(tree, p.id)


class PlansListParams(Params, frozen=True):
    project: ProjectRef | None = None
    program: Id | None = None
    status: Annotated[list[PlanStatus], msgspec.Meta(max_length=16)] | None = None
    kind: PlanKind | None = None
    include_archived: bool = False
    order: PlanOrder | None = None
    limit: Limit = 100
    offset: Offset = 0


@methods("plans.list")
async def list_plans(app: App, call: Call, p: PlansListParams) -> Page[Plan]:
    """Plans, filtered, with `{items, total}`; archived plans only with `include_archived`."""
    where = Where(PLANS)
    if p.project is not None:
        where.eq("project_id", await project_id(app, p.project))
    if p.program is not None:
        where.eq("program_id", p.program)
    if p.status is not None:
        where.eq("status", p.status)
    if p.kind is not None:
        where.eq("kind", p.kind)
    if not p.include_archived:
        where.eq("archived", False)
    return await app.db.read(PLANS.page, where, p.order, p.limit, p.offset)


def around(tx: Tx, nodes: list[derived.Node], inside: set[int]) -> Touched:
    """What deleting these nodes disturbs outside them (`inside`: their tasks)."""
    touched = Touched()
    for node in nodes:
        touched.blocked |= derived.dependents(tx.conn, node)
        touched.targets |= {i for t, i in derived.dependencies_of(tx.conn, [node]) if t == "task"}
    touched.blocked -= inside
    touched.targets -= inside
    return touched


def _nodes(
    tx: Tx, column: Literal["plan_id", "phase_id"], value: int
) -> tuple[list[derived.Node], set[int]]:
    tasks = {r[0] for r in tx.conn.execute(f"SELECT id FROM tasks WHERE {column} = ?", (value,))}
    return [("task", i) for i in sorted(tasks)], tasks


class DeleteParams(Params, frozen=True):
    id: Id
    expected_version: Version | None = None


def delete_plan(tx: Tx, p: DeleteParams) -> Deleted:
    plan = PLANS.must_get(tx.conn, p.id)
    phases = [r[0] for r in tx.conn.execute("SELECT id FROM phases WHERE plan_id = ?", (p.id,))]
    nodes, inside = _nodes(tx, "plan_id", p.id)
    nodes += [("phase", i) for i in phases] + [("plan", p.id)]
    touched = around(tx, nodes, inside)
    PLANS.delete(tx, p.id, expected_version=p.expected_version)
    derived.settle(tx, touched)
    return Deleted(id=plan.id, uid=plan.uid)


@methods("plans.delete")
async def delete_plan_method(app: App, call: Call, p: DeleteParams) -> Deleted:
    """Delete a plan with its phases, tasks and their dependencies; what waited on them
    elsewhere is released. (To keep it but out of the way: plans.archive.)"""
    return await app.db.write(lambda tx: delete_plan(tx, p), heavy=True)  # with all it holds


# --- phases ---------------------------------------------------------------------------------------
class PhasesAddParams(Params, frozen=True):
    plan: Id
    title: Title
    description: Text = ""
    position: Position | None = None  # where among the plan's phases (0-based); the end if not
    status: Status = "pending"
    kind: StageKind | None = None
    prompt: Text | None = None
    result: Text | None = None
    thinking: Text | None = None


def add_phase(tx: Tx, p: PhasesAddParams) -> Phase:
    writable(PLANS.must_get(tx.conn, p.plan))
    names = ("title", "description", "status", "kind", "prompt", "result", "thinking")
    values: dict[str, Any] = {name: getattr(p, name) for name in names}
    if values["status"] == "completed":
        values["completed_at"] = tx.now
    values["plan_id"] = p.plan
    values["position"] = ordering.phases_of(p.plan).open_at(tx, p.position)
    return PHASES.insert(tx, values)


@methods("phases.add")
async def add_phase_method(app: App, call: Call, p: PhasesAddParams) -> Phase:
    """Add a phase to a plan at `position` (0-based; the end when not given); the phases after
    it move down one."""
    return await app.db.write(lambda tx: add_phase(tx, p))


class PhaseRules(Rules[Phase]):
    def before_update(self, tx: Tx, old: Phase, changes: dict[str, Any]) -> None:
        writable(PLANS.must_get(tx.conn, old.plan_id))
        status = changes.get("status", old.status)
        if status == old.status:
            return
        (tasks,) = tx.conn.execute(
            "SELECT count(*) FROM tasks WHERE phase_id = ?", (old.id,)
        ).fetchone()
        if tasks:
            raise InvalidState(
                f"phase {old.id} has {tasks} tasks: its status follows them",
                field="status",
                id=old.id,
            )
        changes["completed_at"] = tx.now if status == "completed" else None

    def after_update(self, tx: Tx, old: Phase, new: Phase) -> None:
        if derived.terminal(old.status) != derived.terminal(new.status):
            touched = Touched()
            touched.ends.add(("phase", new.id))
            derived.settle(tx, touched)


Crud(
    PHASES,
    change=("title", "description", "status", "kind", "prompt", "result", "thinking"),
    rules=PhaseRules(),
).register(methods, ("get", "update"))


class PhasesMoveParams(Params, frozen=True):
    id: Id
    position: Position


@methods("phases.move")
async def move_phase(app: App, call: Call, p: PhasesMoveParams) -> Phase:
    """Move a phase to `position` (0-based) within its plan; the others close up around it."""

    def op(tx: Tx) -> Phase:
        old = PHASES.must_get(tx.conn, p.id)
        writable(PLANS.must_get(tx.conn, old.plan_id))
        order = ordering.phases_of(old.plan_id)
        ordering.park(tx, "phases", old.id)
        order.close_at(tx, old.position)
        at = order.open_at(tx, p.position)
        moved = PHASES.update(tx, old.id, {"position": at}, emit=False)
        if at != old.position:
            tx.emit(PHASE_MOVED, PHASES.updated_event(moved, {"position": at}))
        return moved

    return await app.db.write(op)


def delete_phase(tx: Tx, p: DeleteParams) -> Deleted:
    phase = PHASES.must_get(tx.conn, p.id)
    writable(PLANS.must_get(tx.conn, phase.plan_id))
    nodes, inside = _nodes(tx, "phase_id", p.id)
    touched = around(tx, [*nodes, ("phase", p.id)], inside)
    touched.plans.add(phase.plan_id)
    ordering.park(tx, "phases", phase.id)
    ordering.phases_of(phase.plan_id).close_at(tx, phase.position)
    PHASES.delete(tx, p.id, expected_version=p.expected_version)
    derived.settle(tx, touched)
    return Deleted(id=phase.id, uid=phase.uid)


@methods("phases.delete")
async def delete_phase_method(app: App, call: Call, p: DeleteParams) -> Deleted:
    """Delete a phase with its tasks; the phases after it move up, and what waited on it is
    released."""
    return await app.db.write(lambda tx: delete_phase(tx, p), heavy=True)  # with its tasks
