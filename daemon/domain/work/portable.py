"""A plan as a portable file (PM Agent's "project template import/export"): `plans.export` writes
a plan's phases, steps, subtasks and the dependencies among them as one JSON document that
names things by keys of its own, never by ids; `plans.import` makes a fresh plan from one in any
project.

A document comes from outside, so it is untrusted: it is decoded straight into the Structs below
(every field bounded, a subtask holds no subtasks of its own, so nesting is bounded too), then
checked as a whole — counts, keys unique, dependencies naming keys of the document, no cycle —
and made in one transaction: all of it or nothing, with an error naming what is wrong.
Statuses, claims and times are not carried: an imported plan starts from the beginning. Plan
notes join the document once documents do (issue 16).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Id
from daemon.domain.projects.ref import ProjectRef, project_id
from daemon.domain.work import deps as deps_module
from daemon.domain.work import derived
from daemon.domain.work.derived import Touched
from daemon.domain.work.model import (
    PHASES,
    PLANS,
    TASKS,
    Category,
    Count,
    DepKind,
    Lines,
    NodeType,
    PlanKind,
    PlanPriority,
    Priority,
    Settings,
    Short,
    Size,
    StageKind,
    Tags,
    TaskType,
    Text,
    Title,
)
from daemon.domain.work.plans import PlanTree, tree
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams, RpcError, TooLarge
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx

FORMAT: Final = "pm-agent.plan"
MAX_PHASES = 1000
MAX_TASKS = 20_000
MAX_DEPENDENCIES = 50_000
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


class PortableSubtask(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Key | None = None
    title: Title
    description: Text | None = None
    active_form: Short | None = None
    type: TaskType = "auto"
    priority: Priority = 5
    size: Size | None = None
    tags: Tags = msgspec.field(default_factory=list)
    notes: Lines = msgspec.field(default_factory=list)
    estimated_minutes: Count | None = None


class PortableTask(PortableSubtask, kw_only=True, forbid_unknown_fields=True):
    subtasks: Annotated[list[PortableSubtask], msgspec.Meta(max_length=1000)] = msgspec.field(
        default_factory=list
    )


class PortablePhase(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Key | None = None
    title: Title
    description: Text = ""
    kind: StageKind | None = None
    prompt: Text | None = None
    result: Text | None = None
    thinking: Text | None = None
    tasks: Annotated[list[PortableTask], msgspec.Meta(max_length=MAX_TASKS)] = msgspec.field(
        default_factory=list
    )


class PortableDependency(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`from` depends on `to`, each a key of the document ("plan" is the plan itself)."""

    from_: Key = msgspec.field(name="from")
    to: Key
    kind: DepKind = "blocks"
    note: Short | None = None


class PortablePlan(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: Literal["pm-agent.plan"] = FORMAT
    version: Literal[1] = 1
    title: Title
    description: Text = ""
    kind: PlanKind = "plan"
    category: Category = "feature"
    priority: PlanPriority = "medium"
    goals: Lines = msgspec.field(default_factory=list)
    success_criteria: Lines = msgspec.field(default_factory=list)
    settings: Settings = msgspec.field(default_factory=dict)
    phases: Annotated[list[PortablePhase], msgspec.Meta(max_length=MAX_PHASES)] = msgspec.field(
        default_factory=list
    )
    dependencies: Annotated[list[PortableDependency], msgspec.Meta(max_length=MAX_DEPENDENCIES)] = (
        msgspec.field(default_factory=list)
    )


_TASK_FIELDS = ("title", "description", "active_form", "type", "priority", "size", "tags",
                "notes", "estimated_minutes")  # fmt: skip
_PHASE_FIELDS = ("title", "description", "kind", "prompt", "result", "thinking")
_PLAN_FIELDS = ("title", "description", "kind", "category", "priority", "goals",
                "success_criteria", "settings")  # fmt: skip


# --- export ---------------------------------------------------------------------------------
def export(conn: Any, plan_id: int) -> PortablePlan:
    whole = tree(conn, plan_id)
    keys: dict[tuple[str, int], str] = {("plan", plan_id): "plan"}
    phases: list[PortablePhase] = []
    for n, phase in enumerate(whole.phases, 1):
        keys[("phase", phase.id)] = f"p{n}"
        tops: list[PortableTask] = []
        by_parent: dict[int, list[PortableSubtask]] = {}
        for task in phase.tasks:
            key = f"t{task.id}"
            keys[("task", task.id)] = key
            fields = {name: getattr(task, name) for name in _TASK_FIELDS}
            if task.parent_id is None:
                subtasks = by_parent.setdefault(task.id, [])
                tops.append(PortableTask(key=key, subtasks=subtasks, **fields))
            elif task.parent_id in by_parent:
                by_parent.setdefault(task.id, [])
                by_parent[task.parent_id].append(PortableSubtask(key=key, **fields))
            # deeper subtasks do not travel: a portable subtask holds none of its own
        fields = {name: getattr(phase, name) for name in _PHASE_FIELDS}
        phases.append(PortablePhase(key=f"p{n}", tasks=tops, **fields))
    edges = [
        PortableDependency(
            from_=keys[(d.from_type, d.from_id)],
            to=keys[(d.to_type, d.to_id)],
            kind=d.kind,
            note=d.note,
        )
        for d in whole.dependencies
        if (d.from_type, d.from_id) in keys and (d.to_type, d.to_id) in keys
    ]
    fields = {name: getattr(whole, name) for name in _PLAN_FIELDS}
    return PortablePlan(phases=phases, dependencies=edges, **fields)


class ExportParams(Params, frozen=True):
    id: Id


methods = Methods()


@methods("plans.export")
async def export_plan(app: App, call: Call, p: ExportParams) -> PortablePlan:
    """A plan as a portable document (`format: "pm-agent.plan"`): its phases, steps, subtasks
    and the dependencies among them, named by keys of the document; what `plans.import` makes
    a fresh plan from. Statuses, claims and times are not carried."""
    return await app.db.read(export, p.id)


# --- import ---------------------------------------------------------------------------------
def check(document: PortablePlan) -> None:
    """Whole-document rules the field types cannot say: sizes, unique keys, known keys."""
    tasks = sum(1 + len(t.subtasks) for ph in document.phases for t in ph.tasks)
    if tasks > MAX_TASKS:
        raise TooLarge(f"the plan holds {tasks} tasks; at most {MAX_TASKS} are imported",
                       limit=MAX_TASKS)  # fmt: skip
    seen = {"plan"}
    for i, phase in enumerate(document.phases):
        named: list[tuple[str | None, str]] = [(phase.key, f"phases[{i}].key")]
        for j, task in enumerate(phase.tasks):
            named.append((task.key, f"phases[{i}].tasks[{j}].key"))
            named += [
                (sub.key, f"phases[{i}].tasks[{j}].subtasks[{k}].key")
                for k, sub in enumerate(task.subtasks)
            ]
        for key, where in named:
            if key is None:
                continue
            if key in seen:
                raise InvalidParams(f"Invalid params: key {key!r} is used twice ({where})",
                                    field=f"document.{where}")  # fmt: skip
            seen.add(key)
    for i, dep in enumerate(document.dependencies):
        for end, key in (("from", dep.from_), ("to", dep.to)):
            if key not in seen:
                raise InvalidParams(
                    f"Invalid params: dependencies[{i}].{end} names {key!r}, which is no key "
                    "of this document",
                    field=f"document.dependencies[{i}].{end}",
                )


def make(tx: Tx, project: int, document: PortablePlan) -> int:
    check(document)
    plan = PLANS.insert(
        tx, {"project_id": project, **{n: getattr(document, n) for n in _PLAN_FIELDS}}
    )
    nodes: dict[str, tuple[NodeType, int]] = {"plan": ("plan", plan.id)}
    touched = Touched()
    for position, phase in enumerate(document.phases):
        values = {n: getattr(phase, n) for n in _PHASE_FIELDS}
        made = PHASES.insert(tx, {"plan_id": plan.id, "position": position, **values})
        if phase.key:
            nodes[phase.key] = ("phase", made.id)
        for step_at, task in enumerate(phase.tasks):
            top = _task(tx, touched, task, plan.id, made.id, project, None, step_at)
            if task.key:
                nodes[task.key] = ("task", top)
            for sub_at, sub in enumerate(task.subtasks):
                child = _task(tx, touched, sub, plan.id, made.id, project, top, sub_at)
                if sub.key:
                    nodes[sub.key] = ("task", child)
    derived.settle(tx, touched)
    for i, dep in enumerate(document.dependencies):
        (from_type, from_id), (to_type, to_id) = nodes[dep.from_], nodes[dep.to]
        try:
            deps_module.add(
                tx,
                deps_module.DepsAddParams(from_type=from_type, from_id=from_id,
                                          to_type=to_type, to_id=to_id, kind=dep.kind,
                                          note=dep.note),
            )  # fmt: skip
        except RpcError as e:
            raise InvalidParams(
                f"Invalid params: dependencies[{i}] ({dep.from_} → {dep.to}): {e}",
                field=f"document.dependencies[{i}]",
            ) from None
    return plan.id


def _task(
    tx: Tx, touched: Touched, task: PortableSubtask, plan: int, phase: int, project: int,
    parent: int | None, position: int,
) -> int:  # fmt: skip
    values = {n: getattr(task, n) for n in _TASK_FIELDS}
    row = TASKS.insert(
        tx,
        {"project_id": project, "plan_id": plan, "phase_id": phase, "parent_id": parent,
         "position": position, **values},
    )  # fmt: skip
    touched.task(None, row)
    return row.id


class ImportParams(Params, frozen=True):
    project: ProjectRef
    document: PortablePlan


@methods("plans.import")
async def import_plan(app: App, call: Call, p: ImportParams) -> PlanTree:
    """Make a fresh plan in `project` from a portable document (what plans.export gives; `pm
    plan new --from FILE`). Checked whole before anything is written, made in one write: a
    wrong field, an unknown key, a duplicate key or a cycle is -32602 naming it."""
    pid = await project_id(app, p.project)
    plan_id = await app.db.write(lambda tx: make(tx, pid, p.document))
    return await app.db.read(tree, plan_id)
