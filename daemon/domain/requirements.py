"""requirements: what a project must do (Nexus' requirements, extracted from interviews).

Its own rule: `linked_features` names features of the same project (a feature deleted leaves the
list, see features.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec

from daemon.domain.crud import Crud, Rules
from daemon.domain.projects.ref import PROJECT
from daemon.domain.work.model import Lines, Short, Tags
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods
from daemon.store.batch import Tx
from daemon.store.table import Row, Table

RequirementPriority = Literal["critical", "high", "medium", "low"]
Confidence = Annotated[float, msgspec.Meta(ge=0, le=1, description="the AI's confidence, 0-1")]
FeatureIds = Annotated[list[Annotated[int, msgspec.Meta(ge=1)]], msgspec.Meta(max_length=1000)]


class Requirement(Row, kw_only=True):
    project_id: int
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]
    priority: RequirementPriority = "medium"
    source: Short | None = None
    user_stories: Lines = msgspec.field(default_factory=list)
    acceptance_criteria: Lines = msgspec.field(default_factory=list)
    linked_features: FeatureIds = msgspec.field(default_factory=list)
    validated: bool = False
    confidence: Confidence = 1.0
    tags: Tags = msgspec.field(default_factory=list)


REQUIREMENTS = Table(
    "requirements",
    Requirement,
    orders={"id": "t.id", "priority": "t.priority, t.id", "category": "t.category, t.id"},
    identity=("project_id",),
)


def _check_features(tx: Tx, project_id: int, ids: list[int]) -> None:
    wanted = sorted(set(ids))
    if not wanted:
        return
    found = {
        r[0]
        for r in tx.conn.execute(
            "SELECT f.id FROM json_each(?) AS j JOIN features AS f ON f.id = j.value"
            " WHERE f.project_id = ?",
            (msgspec.json.encode(wanted).decode(), project_id),
        )
    }
    missing = [i for i in wanted if i not in found]
    if missing:
        raise InvalidParams(
            f"Invalid params: no feature {missing} in this requirement's project",
            field="linked_features",
        )


class RequirementRules(Rules[Requirement]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        _check_features(tx, values["project_id"], values["linked_features"])

    def before_update(self, tx: Tx, old: Requirement, changes: dict[str, Any]) -> None:
        if "linked_features" in changes:
            _check_features(tx, old.project_id, changes["linked_features"])


methods = Methods()
Crud(
    REQUIREMENTS,
    refs=[replace(PROJECT, required=True)],
    filters=("category", "priority", "validated"),
    rules=RequirementRules(),
).register(methods)
