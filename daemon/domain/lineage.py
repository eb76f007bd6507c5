"""lineage: hand-offs between agents within a plan or a session (Project Memory's lineage:
`addLineageEntry(plan, {from, to, reason})`, `getLineage(plan)`).

Its own rules: an entry belongs to a project and optionally a plan, session and task (the
plan and session imply the project); it is archived with its plan and comes back with it.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from daemon.domain.crud import Crud, Ref, Rules
from daemon.domain.projects.ref import PROJECT
from daemon.domain.work import archive
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods
from daemon.store.batch import Tx
from daemon.store.table import Row, Table

AgentName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Lineage(Row, kw_only=True):
    project_id: int | None = None  # from the plan or session when not given
    plan_id: int | None = None
    session_id: int | None = None
    task_id: int | None = None
    from_agent: AgentName | None = None
    to_agent: AgentName
    reason: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    summary: Annotated[str, msgspec.Meta(max_length=100_000)] | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    archived: bool = False


LINEAGE = Table(
    "lineage", Lineage, orders={"time": "t.id", "recent": "t.id DESC"}, identity=("project_id",)
)


class LineageRules(Rules[Lineage]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        for column, table in (("plan_id", "plans"), ("session_id", "sessions")):
            if values.get(column) is None:
                continue
            found = tx.conn.execute(
                f"SELECT project_id FROM {table} WHERE id = ?", (values[column],)
            ).fetchone()
            if found is None:
                continue  # the generated reference check says not_found
            if values.get("project_id") not in (None, found[0]):
                raise InvalidParams(
                    f"Invalid params: {column.removesuffix('_id')} {values[column]} belongs to "
                    f"project {found[0]}",
                    field="project",
                )
            values["project_id"] = found[0]
        if values.get("project_id") is None:
            raise InvalidParams(
                "Invalid params: a hand-off belongs to a project, a plan or a session",
                field="project",
            )
        if values.get("plan_id") is not None:
            archived = tx.conn.execute(
                "SELECT archived FROM plans WHERE id = ?", (values["plan_id"],)
            ).fetchone()
            values["archived"] = bool(archived and archived[0])


methods = Methods()
Crud(
    LINEAGE,
    refs=[
        PROJECT,
        Ref("plan", "plan_id", "plans", description="a plan's id"),
        Ref("session", "session_id", "sessions", description="a session's id"),
        Ref("task", "task_id", "tasks", description="a task's id"),
    ],
    create=("from_agent", "to_agent", "reason", "summary", "data"),
    change=("reason", "summary", "data"),
    filters=("from_agent", "to_agent", "archived"),
    rules=LineageRules(),
).register(methods)


def set_archived(tx: Tx, plan_id: int, archived: bool) -> None:
    """A plan's hand-offs archived or brought back with it (work tracking's archive hook)."""
    tx.conn.execute(
        "UPDATE lineage SET archived = ? WHERE plan_id = ? AND archived != ?",
        (int(archived), plan_id, int(archived)),
    )


archive.ON_ARCHIVE.append(set_archived)
