"""The rows of work: programs, plans, phases, tasks, dependencies — each a row Struct (also the
wire type) and its Table. Enums are Literals here and CHECKs in schema/0006_work.sql; the
vocabulary of statuses is one for steps, todos and Nexus tasks (and phases)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast, get_args

import msgspec

from daemon.store.table import Row, Table

# --- vocabularies -------------------------------------------------------------------------------
Status = Literal[
    "pending", "in_progress", "in_review", "blocked", "completed", "failed", "cancelled"
]  # fmt: skip
TERMINAL: tuple[Status, ...] = ("completed", "cancelled")  # done with: releases what waits on it
PlanStatus = Literal["active", "paused", "blocked", "completed", "failed", "cancelled"]
PlanKind = Literal["plan", "journey"]
ProgramStatus = Literal["active", "paused", "completed", "cancelled"]
Category = Literal["feature", "bugfix", "refactor", "orchestration", "quick_task", "advisory"]
PlanPriority = Literal["low", "medium", "high", "critical"]
StageKind = Literal[
    "discovering", "chasing", "solving", "challenging", "questioning", "searching", "imagining",
    "building",
]  # fmt: skip
TaskType = Literal["auto", "checkpoint", "tdd"]
Size = Literal["atomic", "small", "medium", "large"]
NodeType = Literal["plan", "phase", "task"]
DepKind = Literal["blocks", "related", "discovered_from", "duplicates"]
NODE_TYPES: tuple[NodeType, ...] = get_args(NodeType)

# --- field constraints (said once, here) --------------------------------------------------------
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, description="a title")]
# Long text (a description, a stage's result) stays well inside one message: longer text is a
# document's (issue 16).
Text = Annotated[str, msgspec.Meta(max_length=100_000)]
Short = Annotated[str, msgspec.Meta(max_length=4096)]
Agent = Annotated[str, msgspec.Meta(min_length=1, max_length=256, description="an agent's name")]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=100)]
Lines = Annotated[list[Text], msgspec.Meta(max_length=1000)]
Priority = Annotated[int, msgspec.Meta(ge=1, le=9, description="1 = highest (Nexus)")]
Count = Annotated[int, msgspec.Meta(ge=0)]
Position = Annotated[int, msgspec.Meta(ge=0, description="0-based place among its siblings")]
Id = Annotated[int, msgspec.Meta(ge=1)]
LeaseSeconds = Annotated[int, msgspec.Meta(gt=0, le=7 * 24 * 3600)]
Time = Annotated[str, msgspec.Meta(description="ISO 8601 UTC")]
Settings = dict[str, Any]


# --- rows ---------------------------------------------------------------------------------------
class Program(Row, kw_only=True):
    """Plans grouped (Project Memory's integrated program), visible across projects."""

    project_id: int
    title: Title
    description: Text = ""
    category: Category = "feature"
    priority: PlanPriority = "medium"
    status: ProgramStatus = "active"
    goals: Lines = msgspec.field(default_factory=list)
    success_criteria: Lines = msgspec.field(default_factory=list)


class ProgramProject(Row, kw_only=True):
    """A program seen from another project than its own."""

    program_id: int
    project_id: int
    linked_by: Annotated[str, msgspec.Meta(max_length=256)] = ""  # who linked it


class Plan(Row, kw_only=True):
    """A plan (or a Perpetua journey: kind 'journey', its input the description)."""

    project_id: int
    program_id: int | None = None
    kind: PlanKind = "plan"
    title: Title
    description: Text = ""
    category: Category = "feature"
    priority: PlanPriority = "medium"
    status: PlanStatus = "active"
    goals: Lines = msgspec.field(default_factory=list)
    success_criteria: Lines = msgspec.field(default_factory=list)
    settings: Settings = msgspec.field(default_factory=dict)
    completed_at: Time | None = None
    archived: bool = False
    archived_at: Time | None = None


class Phase(Row, kw_only=True):
    """An ordered phase of a plan (or a Perpetua stage: its kind, prompt, result, thinking).
    Its status follows its tasks when it has any; a phase without tasks is set by hand."""

    plan_id: int
    title: Title
    description: Text = ""
    position: Position
    status: Status = "pending"
    kind: StageKind | None = None
    prompt: Text | None = None
    result: Text | None = None
    thinking: Text | None = None
    completed_at: Time | None = None
    archived: bool = False


class Task(Row, kw_only=True):
    """A step (in a phase), a todo (in no plan), a Nexus task, or a subtask (with a parent)."""

    project_id: int | None = None
    plan_id: int | None = None
    phase_id: int | None = None
    parent_id: int | None = None
    position: Position | None = None
    feature_id: int | None = None
    session_id: int | None = None
    title: Title
    active_form: Short | None = None
    description: Text | None = None
    type: TaskType = "auto"
    status: Status = "pending"
    blocked_reason: Short | None = None
    priority: Priority = 5
    size: Size | None = None
    tags: Tags = msgspec.field(default_factory=list)
    notes: Lines = msgspec.field(default_factory=list)
    assigned_agent: Agent | None = None
    worktree_path: Short | None = None
    branch_name: Short | None = None
    qa_iterations: Count = 0
    max_iterations: Count = 50
    estimated_minutes: Count | None = None
    actual_minutes: Count | None = None
    due_at: Time | None = None
    defer_until: Time | None = None
    started_at: Time | None = None
    completed_at: Time | None = None
    completed_by: Agent | None = None
    completed_branch: Short | None = None
    completed_head: Short | None = None
    claimed_by: Agent | None = None
    claimed_at: Time | None = None
    lease_s: LeaseSeconds | None = None
    lease_until: Time | None = None
    reclaims: Count = 0
    blocked: bool = False
    open_subtasks: Count = 0
    unblocks: Count = 0
    archived: bool = False


class Dependency(Row, kw_only=True):
    """`from` depends on `to`; only `blocks` gates work."""

    from_type: NodeType
    from_id: Id
    to_type: NodeType
    to_id: Id
    kind: DepKind = "blocks"
    note: Short | None = None
    archived: bool = False


PROGRAMS = Table(
    "programs", Program, orders={"id": "t.id", "title": "t.title, t.id"}, identity=("project_id",)
)
PROGRAM_PROJECTS = Table("program_projects", ProgramProject, identity=("program_id", "project_id"))
PlanOrder = Literal["id", "recent", "title"]
PLAN_ORDERS: dict[PlanOrder, str] = {
    "id": "t.id",
    "recent": "t.updated_at DESC, t.id DESC",
    "title": "t.title, t.id",
}
PLANS = Table("plans", Plan, orders=cast("dict[str, str]", PLAN_ORDERS), identity=("project_id",))
PHASES = Table("phases", Phase, orders={"position": "t.plan_id, t.position"}, identity=("plan_id",))
TaskOrder = Literal["id", "priority", "position", "recent"]
TASK_ORDERS: dict[TaskOrder, str] = {
    "id": "t.id",
    "priority": "t.priority, t.id",
    "position": "t.phase_id, t.parent_id, t.position, t.id",
    "recent": "t.updated_at DESC, t.id DESC",
}
TASKS = Table(
    "tasks",
    Task,
    orders=cast("dict[str, str]", TASK_ORDERS),
    identity=("project_id", "plan_id", "phase_id"),
)
DEPENDENCIES = Table(
    "dependencies",
    Dependency,
    namespace="deps",
    identity=("from_type", "from_id", "to_type", "to_id", "kind"),
)
NODE_TABLES: dict[NodeType, Table[Any]] = {"plan": PLANS, "phase": PHASES, "task": TASKS}
