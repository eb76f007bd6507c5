"""features: what a project is building (PM Agent's features, Nexus' features and sub_features:
a sub-feature is a feature with a parent).

Its own rules: a feature completed records when; `completed_tasks` counts the tasks linked to it
that are completed, kept current by the tasks' own writes (daemon/domain/work/derived.py); a
parent is a feature of the same project, and never the feature itself or one of its own
sub-features; a deleted feature leaves the requirements that named it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec

from daemon.domain.crud import Crud, Ref, Rules
from daemon.domain.projects.ref import PROJECT
from daemon.domain.requirements import REQUIREMENTS
from daemon.domain.work.model import Count, Text, Time, Title
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods
from daemon.store.batch import Tx
from daemon.store.table import Row, Table, Where

FeatureStatus = Literal["backlog", "planned", "in_progress", "blocked", "completed", "cancelled"]
MoSCoW = Literal["must", "should", "could", "wont"]
Complexity = Literal["simple", "complex"]
Hours = Annotated[float, msgspec.Meta(ge=0)]


class Feature(Row, kw_only=True):
    project_id: int
    parent_id: int | None = None
    name: Title
    description: Text | None = None
    status: FeatureStatus = "backlog"
    priority: MoSCoW = "should"
    complexity: Complexity = "simple"
    estimated_tasks: Count = 0
    completed_tasks: Count = 0
    estimated_hours: Hours | None = None
    actual_hours: Hours | None = None
    completed_at: Time | None = None


FEATURES = Table(
    "features",
    Feature,
    orders={"id": "t.id", "name": "t.name, t.id", "priority": "t.priority, t.id"},
    identity=("project_id",),
)


def _check_parent(tx: Tx, feature_id: int | None, project_id: int, parent_id: int | None) -> None:
    if parent_id is None:
        return
    row = tx.conn.execute(
        "WITH RECURSIVE up(id, parent_id, project_id) AS ("
        " SELECT id, parent_id, project_id FROM features WHERE id = ?"
        " UNION SELECT f.id, f.parent_id, f.project_id FROM features AS f"
        " JOIN up ON f.id = up.parent_id)"
        " SELECT count(*), sum(id = ?), min(project_id = ?) FROM up",
        (parent_id, feature_id or 0, project_id),
    ).fetchone()
    if row[0] == 0:
        raise InvalidParams(f"Invalid params: no feature {parent_id}", field="parent")
    if row[1]:
        raise InvalidParams(
            "Invalid params: a feature cannot be its own parent or ancestor", field="parent"
        )
    if not row[2]:
        raise InvalidParams(
            "Invalid params: a sub-feature belongs to its parent's project", field="parent"
        )


class FeatureRules(Rules[Feature]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        _check_parent(tx, None, values["project_id"], values.get("parent_id"))
        if values["status"] == "completed":
            values["completed_at"] = tx.now

    def before_update(self, tx: Tx, old: Feature, changes: dict[str, Any]) -> None:
        if "parent_id" in changes:
            _check_parent(tx, old.id, old.project_id, changes["parent_id"])
        status = changes.get("status", old.status)
        if status == "completed" and old.status != "completed":
            changes["completed_at"] = tx.now
        elif status != "completed" and old.status == "completed":
            changes["completed_at"] = None

    def before_delete(self, tx: Tx, row: Feature) -> None:
        """The requirements naming it (or a sub-feature going with it) name it no more."""
        gone = {
            r[0]
            for r in tx.conn.execute(
                "WITH RECURSIVE down(id) AS (SELECT ? UNION SELECT f.id FROM features AS f"
                " JOIN down ON f.parent_id = down.id) SELECT id FROM down",
                (row.id,),
            )
        }
        for requirement in REQUIREMENTS.rows(
            tx.conn, Where(REQUIREMENTS).eq("project_id", row.project_id), budget=False
        ):
            kept = [i for i in requirement.linked_features if i not in gone]
            if kept != requirement.linked_features:
                REQUIREMENTS.update(tx, requirement.id, {"linked_features": kept})


methods = Methods()
_WRITABLE = ("name", "description", "status", "priority", "complexity", "estimated_tasks",
             "estimated_hours", "actual_hours")  # fmt: skip
Crud(
    FEATURES,
    refs=[replace(PROJECT, required=True), Ref("parent", "parent_id", "features")],
    create=_WRITABLE,
    change=(*_WRITABLE, "parent_id"),  # a feature moves under another after it is made
    filters=("status", "priority"),
    rules=FeatureRules(),
).register(methods)
