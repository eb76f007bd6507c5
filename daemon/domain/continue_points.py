"""continue_points: where work stopped and what comes next (Nexus' continue points), so an
agent (or `pm resume`) picks up where the last one left off.

Its own rules: a continue point belongs to a project and, optionally, a task, plan and session
(the task implies its plan and project); `continue_points.latest` is the newest one for a
project, task or agent. Nexus' `saved_at` is `created_at`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Crud, Ref, Rules
from daemon.domain.projects.ref import PROJECT, ProjectRef, project_id
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.table import Row, Table, Where

AgentName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Step = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


class ContinuePoint(Row, kw_only=True):
    project_id: int
    task_id: int | None = None
    plan_id: int | None = None
    session_id: int | None = None
    last_action: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
    file: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    line: Annotated[int, msgspec.Meta(ge=1)] | None = None
    function_name: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    next_steps: Annotated[list[Step], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=list
    )
    agent: AgentName | None = None
    iteration_count: Annotated[int, msgspec.Meta(ge=0)] = 0


CONTINUE_POINTS = Table(
    "continue_points",
    ContinuePoint,
    orders={"recent": "t.id DESC", "id": "t.id"},
    identity=("project_id",),
)


class ContinueRules(Rules[ContinuePoint]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        task = values.get("task_id")
        if task is None:
            return
        found = tx.conn.execute(
            "SELECT project_id, plan_id FROM tasks WHERE id = ?", (task,)
        ).fetchone()
        if found is None:
            return  # the generated reference check says not_found
        project, plan = found
        if project is not None and project != values["project_id"]:
            raise InvalidParams(
                f"Invalid params: task {task} belongs to project {project}", field="task"
            )
        if values.get("plan_id") is None:
            values["plan_id"] = plan


methods = Methods()
Crud(
    CONTINUE_POINTS,
    refs=[
        Ref("project", "project_id", "projects", kind=PROJECT.kind, required=True,
            resolve=PROJECT.resolve, description=PROJECT.description),
        Ref("task", "task_id", "tasks", description="a task's id"),
        Ref("plan", "plan_id", "plans", description="a plan's id"),
        Ref("session", "session_id", "sessions", description="a session's id"),
    ],
    filters=("agent",),
    rules=ContinueRules(),
).register(methods)  # fmt: skip


class LatestParams(Params, frozen=True):
    project: ProjectRef | None = None
    task: Annotated[int, msgspec.Meta(ge=1)] | None = None
    agent: AgentName | None = None


class Latest(msgspec.Struct, kw_only=True):
    continue_point: ContinuePoint | None


def latest_where(project: int | None, task: int | None, agent: str | None) -> Where:
    where = Where(CONTINUE_POINTS)
    for column, value in (("project_id", project), ("task_id", task), ("agent", agent)):
        if value is not None:
            where.eq(column, value)
    return where


@methods("continue_points.latest")
async def latest(app: App, call: Call, p: LatestParams) -> Latest:
    """The newest continue point of a project, a task or an agent (any of them combined);
    null when there is none."""
    if p.project is None and p.task is None and p.agent is None:
        raise InvalidParams("Invalid params: give project, task or agent", field="project")
    project = await project_id(app, p.project) if p.project is not None else None
    where = latest_where(project, p.task, p.agent)
    found = await app.db.read(newest, where)
    return Latest(continue_point=found)


def newest(conn: Any, where: Where) -> ContinuePoint | None:
    rows = CONTINUE_POINTS.rows(conn, where, "recent", limit=1)
    return rows[0] if rows else None
