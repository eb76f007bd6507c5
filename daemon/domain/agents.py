"""agents: the registry of the AI agents working in the projects (Nexus' agents), and their
liveness.

Its own rules: an agent is known by its `name` (what claims, lineage, metrics and documents
record); any sign of life (`agents.heartbeat`, or registering again) moves `last_activity_at`;
an agent silent for longer than the configured `agent_stale_s` is marked `stale` by the
scheduled sweep, and every task it still holds a claim on is released (back to pending,
`tasks.released`) in the same transaction — a crashed agent never keeps work from the others.
Terminating an agent records when and why, and releases its claims too.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import structlog

from daemon.domain.app import App
from daemon.domain.crud import Crud, Ref, Rules
from daemon.domain.projects.ref import PROJECT
from daemon.domain.work import claims
from daemon.domain.work.model import TASKS
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import NotFound
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.clock import iso
from daemon.store.events_catalogue import EventKind
from daemon.store.table import Row, RowUpdated, Table, Where

AgentName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, description="the agent's unique name")
]
Status = Literal["idle", "assigned", "working", "paused", "error", "stale", "terminated"]
Text = Annotated[str, msgspec.Meta(max_length=100_000)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Count = Annotated[int, msgspec.Meta(ge=0)]
SWEEP_CHUNK = 500
log = structlog.get_logger("pm.agents")


class Agent(Row, kw_only=True):
    name: AgentName
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "coder"
    status: Status = "idle"
    project_id: int | None = None
    model_provider: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    model_name: Short | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    system_prompt: Text | None = None
    tools: Annotated[list[Short], msgspec.Meta(max_length=500)] = msgspec.field(
        default_factory=list
    )
    current_task_id: int | None = None
    worktree_path: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    branch_name: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    tokens_used: Count = 0
    tasks_completed: Count = 0
    tasks_failed: Count = 0
    last_activity_at: str | None = None  # every sign of life; null: none since created_at
    # (Nexus' spawned_at)
    terminated_at: str | None = None
    termination_reason: Text | None = None


AGENTS = Table(
    "agents",
    Agent,
    orders={"recent": "t.last_activity_at DESC, t.id DESC", "name": "t.name", "id": "t.id"},
    identity=("name",),
)


class AgentStale(RowUpdated, kw_only=True):
    """`agents.stale`: an agent silent past the limit (`changed`: its status), and the claims
    that were released."""

    name: str
    last_activity_at: str | None
    released_tasks: list[int]


STALE = EventKind("agents.stale", AgentStale)


class AgentRules(Rules[Agent]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        values["last_activity_at"] = tx.now

    def before_update(self, tx: Tx, old: Agent, changes: dict[str, Any]) -> None:
        changes["last_activity_at"] = tx.now
        if changes.get("status") == "terminated" and old.status != "terminated":
            changes["terminated_at"] = tx.now
        elif "status" in changes and changes["status"] != "terminated":
            changes["terminated_at"] = None

    def after_update(self, tx: Tx, old: Agent, new: Agent) -> None:
        if new.status in ("terminated", "stale") and old.status != new.status:
            release_claims(tx, new.name)


def release_claims(tx: Tx, agent: str) -> list[int]:
    """Every task `agent` holds a claim on, released as tasks.release would (back to pending
    if it was in progress, `tasks.released`, what it blocked settled); their ids."""
    held = TASKS.rows(tx.conn, Where(TASKS).eq("claimed_by", agent), "id", budget=False)
    for task in held:
        claims.release(tx, task)
    return [task.id for task in held]


methods = Methods()
Crud(
    AGENTS,
    refs=[PROJECT, Ref("current_task", "current_task_id", "tasks", description="a task's id")],
    create=(
        "name", "type", "status", "model_provider", "model_name", "temperature", "max_tokens",
        "system_prompt", "tools", "worktree_path", "branch_name",
    ),
    change=(
        "type", "status", "model_provider", "model_name", "temperature", "max_tokens",
        "system_prompt", "tools", "worktree_path", "branch_name", "tokens_used",
        "tasks_completed", "tasks_failed", "termination_reason",
    ),
    filters=("status", "type", "name"),
    rules=AgentRules(),
).register(methods)  # fmt: skip


class HeartbeatParams(Params, frozen=True):
    agent: AgentName
    status: Status | None = None
    tokens: Annotated[int, msgspec.Meta(ge=0, description="tokens used since the last beat")] = 0
    register: bool = True  # an unknown name is registered (type coder) instead of not_found


@methods("agents.heartbeat")
async def heartbeat(app: App, call: Call, p: HeartbeatParams) -> Agent:
    """A sign of life from `agent` (by name): moves last_activity_at, adds `tokens` to
    tokens_used, sets `status` when given (a stale agent that beats again is `idle`). An
    unknown name is registered unless `register` is false."""

    def op(tx: Tx) -> Agent:
        found = AGENTS.first(tx.conn, Where(AGENTS).eq("name", p.agent))
        if found is None:
            if not p.register:
                raise NotFound(f"no agent named {p.agent!r}", agent=p.agent)
            values = {"name": p.agent, "status": p.status or "idle", "tokens_used": p.tokens}
            values["last_activity_at"] = tx.now
            return AGENTS.insert(tx, values)
        changes: dict[str, Any] = {"last_activity_at": tx.now}
        status = p.status or ("idle" if found.status == "stale" else None)
        if status is not None:
            changes["status"] = status
        if p.tokens:
            changes["tokens_used"] = found.tokens_used + p.tokens
        return AGENTS.update(tx, found.id, changes)

    return await app.db.write(op)


class SweepResult(msgspec.Struct, kw_only=True):
    stale: list[str]
    released_tasks: list[int]


def sweep_op(stale_after_s: float) -> Any:
    """One write: agents silent longer than `stale_after_s` marked stale, their claims
    released, each with an `agents.stale` event."""

    def op(tx: Tx) -> SweepResult:
        cutoff = _cutoff(datetime.fromisoformat(tx.now.replace("Z", "+00:00")), stale_after_s)
        where = (
            Where(AGENTS)
            .sql("t.status NOT IN ('stale', 'terminated')")
            .sql("coalesce(t.last_activity_at, t.created_at) < ?", cutoff)
        )
        result = SweepResult(stale=[], released_tasks=[])
        for agent in AGENTS.rows(tx.conn, where, "id", limit=SWEEP_CHUNK, budget=False):
            marked = AGENTS.update(tx, agent.id, {"status": "stale"}, emit=False)
            released = release_claims(tx, agent.name)
            tx.emit(
                STALE,
                AgentStale(
                    id=agent.id, uid=agent.uid, version=marked.version,
                    changed={"status": "stale"}, name=agent.name,
                    last_activity_at=agent.last_activity_at, released_tasks=released,
                ),
            )  # fmt: skip
            result.stale.append(agent.name)
            result.released_tasks += released
        return result

    return op


def _cutoff(now: datetime, stale_after_s: float) -> str:
    return iso(now - timedelta(seconds=stale_after_s))


def any_stale(conn: Any, cutoff: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM agents WHERE status NOT IN ('stale', 'terminated') "
        "AND coalesce(last_activity_at, created_at) < ? LIMIT 1",
        (cutoff,),
    ).fetchone()
    return row is not None


async def keep_swept(app: App, stale_after_s: float) -> None:
    """What the runtime runs: every so often a read, and the sweep (a write) only when an
    agent went silent for longer than `stale_after_s` (0: never)."""
    if stale_after_s <= 0:
        return
    interval = min(60.0, max(1.0, stale_after_s / 4))
    while True:
        await asyncio.sleep(interval)
        try:
            if await app.db.read(any_stale, _cutoff(datetime.now(UTC), stale_after_s)):
                await app.db.write(sweep_op(stale_after_s))
        except Exception:  # the next round tries again; the daemon goes on
            log.exception("the stale-agent sweep failed")
