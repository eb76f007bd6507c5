"""sessions: a stretch of work in a project, by a person or an agent (PM Agent's
development_sessions, Project Memory's and Nexus' sessions, the fifth document's sessions).

Its own rules: `sessions.start` records the goals and the time it began; `sessions.end` the
accomplishments, blockers, tokens and summary, and the duration (from the times unless given);
a session ended stays ended. `kind` says development / agent / interview / planning / execution.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Crud, Id, Ref, Rules
from daemon.domain.projects.ref import PROJECT
from daemon.domain.work.model import Agent, Count, Lines, Settings, Short, Text, Time
from daemon.domain.work.times import check_time
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidState
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.events_catalogue import EventKind
from daemon.store.table import Row, Table

SessionKind = Literal["development", "agent", "interview", "planning", "execution"]
SessionStatus = Literal["active", "paused", "completed", "cancelled"]
ENDED: tuple[SessionStatus, ...] = ("completed", "cancelled")


class Session(Row, kw_only=True):
    project_id: int
    plan_id: int | None = None
    kind: SessionKind = "development"
    status: SessionStatus = "active"
    external_id: Short | None = None  # PM Agent's session_id: another tool's own name for it
    agent: Agent | None = None
    task_description: Text | None = None
    settings: Settings = msgspec.field(default_factory=dict)  # e.g. regex and model settings
    data: Settings = msgspec.field(default_factory=dict)
    goals: Lines = msgspec.field(default_factory=list)
    accomplishments: Lines = msgspec.field(default_factory=list)
    blockers: Lines = msgspec.field(default_factory=list)
    artifacts: Lines = msgspec.field(default_factory=list)
    summary: Text | None = None
    tokens_used: Count | None = None
    duration_minutes: Count | None = None
    started_at: Time = ""  # the moment it is added, unless given
    ended_at: Time | None = None
    archived: bool = False


SESSIONS = Table(
    "sessions",
    Session,
    orders={"recent": "t.started_at DESC, t.id DESC", "id": "t.id"},
    identity=("project_id",),
)
ENDED_EVENT = EventKind("sessions.ended", SESSIONS.updated.payload)


def minutes_between(start: str, end: str) -> int | None:
    try:
        spent = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    except ValueError:
        return None
    return max(0, round(spent.total_seconds() / 60))


class SessionRules(Rules[Session]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        values["started_at"] = check_time("started_at", values.get("started_at")) or tx.now
        if values.get("ended_at") is not None:
            values["ended_at"] = check_time("ended_at", values["ended_at"])

    def before_update(self, tx: Tx, old: Session, changes: dict[str, Any]) -> None:
        for name in ("started_at", "ended_at"):
            if changes.get(name) is not None:
                changes[name] = check_time(name, changes[name])


class EndParams(Params, frozen=True):
    id: Id
    accomplishments: Lines | None = None
    blockers: Lines | None = None
    tokens_used: Count | None = None
    summary: Text | None = None
    artifacts: Lines | None = None
    duration_minutes: Count | None = None
    status: Literal["completed", "cancelled"] = "completed"


def end(tx: Tx, p: EndParams) -> Session:
    old = SESSIONS.must_get(tx.conn, p.id)
    if old.status in ENDED:
        raise InvalidState(f"session {p.id} already ended at {old.ended_at}", id=p.id)
    changes: dict[str, Any] = {"status": p.status, "ended_at": tx.now}
    for name in ("accomplishments", "blockers", "tokens_used", "summary", "artifacts"):
        value = getattr(p, name)
        if value is not None:
            changes[name] = value
    duration = p.duration_minutes
    changes["duration_minutes"] = (
        duration if duration is not None else minutes_between(old.started_at, tx.now)
    )
    new = SESSIONS.update(tx, p.id, changes, emit=False)
    changed = {k: getattr(new, k) for k in changes if getattr(old, k) != getattr(new, k)}
    tx.emit(ENDED_EVENT, SESSIONS.updated_event(new, changed))
    return new


methods = Methods()
_crud = Crud(
    SESSIONS,
    refs=[replace(PROJECT, required=True), Ref("plan", "plan_id", "plans")],
    create=(
        "kind", "external_id", "agent", "task_description", "settings", "data", "goals",
        "started_at",
    ),
    change=(
        "kind", "status", "agent", "task_description", "settings", "data", "goals",
        "accomplishments", "blockers", "artifacts", "summary", "tokens_used", "duration_minutes",
        "started_at", "ended_at",
    ),
    filters=("kind", "status", "agent", "archived"),
    rules=SessionRules(),
)  # fmt: skip
_crud.register(methods, ("get", "list", "update", "delete"))
methods.add(
    "sessions.start",
    _crud.add,
    params_type=_crud.add_params,
    result_type=Session,
    doc="Start a session in a project: its kind, goals, agent, plan; returns the new row.",
)


@methods("sessions.end")
async def end_session(app: App, call: Call, p: EndParams) -> Session:
    """End a session: accomplishments, blockers, tokens used, summary; the duration is the time
    since it started unless given. An ended session cannot end again (invalid_state)."""
    return await app.db.write(lambda tx: end(tx, p))
