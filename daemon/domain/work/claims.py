"""Ready work, the next step, and claims as leases.

- tasks.ready ranks ready work across all projects or one (ready.py); tasks.next is a plan's
  next step in phase order, then step order.
- tasks.claim takes one task, or the next ready one (of a plan, a project or anywhere), for an
  agent for `lease_s` seconds: chosen and claimed in one write, so no two agents ever hold one
  task. The holder renews it (tasks.heartbeat, or any write to the task); tasks.release hands
  it back.
- An expired lease returns the task to pending (`tasks.lease_expired`, and `reclaims` counts
  it): the sweep (`sweep`, run every `lease_sweep_s` by the runtime) does it, and so does every
  claim before it chooses, so an expired claim is never in the way.
- tasks.complete records who finished it, when, and the project's git branch and HEAD at that
  moment (from the project row the scanner keeps), returns what it unblocked, and with
  `next: true` claims the next step for the same agent in the same transaction. Completing a
  task someone else holds is a conflict unless `force`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
import structlog

from daemon.domain.app import App
from daemon.domain.crud import Id
from daemon.domain.projects.ref import ProjectRef, project_id
from daemon.domain.work import derived, ready
from daemon.domain.work.derived import Touched
from daemon.domain.work.model import PLANS, TASKS, TERMINAL, Agent, LeaseSeconds, Task
from daemon.domain.work.ready import ReadyTask
from daemon.domain.work.tasks import lease_end, writable
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import Conflict, InvalidParams, InvalidState, RpcError
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.clock import utc_now
from daemon.store.events_catalogue import EventKind
from daemon.store.table import Page

log = structlog.get_logger("pm.work")

_TaskChanged = TASKS.updated.payload
CLAIMED = EventKind("tasks.claimed", _TaskChanged)
RENEWED = EventKind("tasks.renewed", _TaskChanged)
RELEASED = EventKind("tasks.released", _TaskChanged)
COMPLETED = EventKind("tasks.completed", _TaskChanged)
LeaseExpired = msgspec.defstruct(
    "TaskLeaseExpired",
    [("agent", str), ("expired_at", str)],
    bases=(_TaskChanged,),
    kw_only=True,
)
LEASE_EXPIRED = EventKind("tasks.lease_expired", LeaseExpired)
_FREE = {"claimed_by": None, "claimed_at": None, "lease_s": None, "lease_until": None}


def _change(tx: Tx, old: Task, values: dict[str, Any], kind: EventKind[Any]) -> Task:
    new = TASKS.update(tx, old.id, values, emit=False)
    changed = {k: getattr(new, k) for k in values if getattr(old, k) != getattr(new, k)}
    tx.emit(kind, TASKS.updated_event(new, changed))
    return new


def _settle(tx: Tx, old: Task, new: Task) -> list[Task]:
    touched = Touched()
    touched.task(old, new)
    return derived.settle(tx, touched)


# --- leases running out ---------------------------------------------------------------------------
def sweep(tx: Tx) -> int:
    """Return every task whose lease ran out to pending (a task held in review keeps its
    status, only the claim goes); each is a `tasks.lease_expired` and a reclaim."""
    expired = tx.conn.execute(
        "SELECT id FROM tasks INDEXED BY tasks_leases WHERE lease_until IS NOT NULL"
        " AND lease_until < ? ORDER BY lease_until",
        (tx.now,),
    ).fetchall()
    for (task_id,) in expired:
        old = TASKS.must_get(tx.conn, task_id)
        assert old.claimed_by is not None and old.lease_until is not None
        values: dict[str, Any] = {**_FREE, "reclaims": old.reclaims + 1}
        if old.status == "in_progress":
            values["status"] = "pending"
        new = TASKS.update(tx, task_id, values, emit=False)
        changed = {k: getattr(new, k) for k in values if getattr(old, k) != getattr(new, k)}
        base = msgspec.structs.asdict(TASKS.updated_event(new, changed))
        tx.emit(LEASE_EXPIRED, LeaseExpired(**base, agent=old.claimed_by,
                                            expired_at=old.lease_until))  # fmt: skip
        _settle(tx, old, new)
    return len(expired)


def has_expired(conn: Any, now: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM tasks INDEXED BY tasks_leases WHERE lease_until IS NOT NULL"
        " AND lease_until < ? LIMIT 1",
        (now,),
    ).fetchone()
    return row is not None


async def sweep_expired(app: App) -> int:
    """What the runtime runs every `lease_sweep_s`: a read, and a write only when a lease ran
    out."""
    if not await app.db.read(has_expired, utc_now()):
        return 0
    return await app.db.write(sweep)


async def keep_leases_swept(app: App) -> None:
    """The sweep, every `lease_sweep_s` while the daemon serves (the runtime starts it and
    cancels it at shutdown); a failed sweep is logged and the next one tries again."""
    while True:
        await asyncio.sleep(app.work.lease_sweep_s)
        try:
            await sweep_expired(app)
        except RpcError as e:  # busy, shutting down, disk full: the next sweep will do
            log.warning("lease sweep failed", error=str(e))


# --- claiming -------------------------------------------------------------------------------------
class Claim(msgspec.Struct, kw_only=True):
    task: Task | None
    lease_until: str | None


def claimable(tx: Tx, row: Task, agent: str) -> None:
    """Refuse a claim of this task by `agent`, with the reason."""
    writable(row)
    live = row.lease_until is not None and row.lease_until >= tx.now
    if row.claimed_by is not None and live and row.claimed_by != agent:
        raise Conflict(
            f"task {row.id} is claimed by {row.claimed_by} until {row.lease_until}",
            id=row.id,
            claimed_by=row.claimed_by,
            lease_until=row.lease_until,
        )
    if row.claimed_by == agent and live:
        return  # a renewal
    if row.status != "pending":
        raise InvalidState(f"task {row.id} is {row.status}, not pending", id=row.id)
    if row.blocked or row.open_subtasks:
        why = "blocked by a dependency" if row.blocked else f"{row.open_subtasks} open subtasks"
        raise InvalidState(f"task {row.id} is not ready: {why}", id=row.id)


def take(tx: Tx, row: Task, agent: str, lease_s: int) -> Claim:
    until = lease_end(tx.now, lease_s)
    values: dict[str, Any] = {
        "status": "in_progress", "claimed_by": agent, "lease_s": lease_s, "lease_until": until,
        "assigned_agent": agent,
    }  # fmt: skip
    if row.claimed_by != agent:
        values["claimed_at"] = tx.now
    if row.started_at is None:
        values["started_at"] = tx.now
    new = _change(tx, row, values, CLAIMED)
    _settle(tx, row, new)  # its phase starts; nothing of its own is derived from a claim
    return Claim(task=new, lease_until=until)


_TAKE_READY = (
    "UPDATE tasks SET status = 'in_progress', claimed_by = ?, claimed_at = ?, lease_s = ?,"
    " lease_until = ?, assigned_agent = ?, started_at = coalesce(started_at, ?), updated_at = ?,"
    " version = version + 1 WHERE id = ? AND status = 'pending' AND claimed_by IS NULL "
    + TASKS.returning
)


def take_ready(tx: Tx, task_id: int, agent: str, lease_s: int) -> Claim | None:
    """The claim of a task just chosen as ready, in one statement (the hot path of
    `tasks.claim` for the next ready task); None if it is not pending after all."""
    until = lease_end(tx.now, lease_s)
    now = tx.now
    found = tx.conn.execute(
        _TAKE_READY, (agent, now, lease_s, until, agent, now, now, task_id)
    ).fetchone()
    if found is None:
        return None
    new = TASKS.decode(found[0])
    changed = {
        "status": new.status, "claimed_by": agent, "claimed_at": now, "lease_s": lease_s,
        "lease_until": until, "assigned_agent": agent, "started_at": new.started_at,
    }  # fmt: skip
    tx.emit(CLAIMED, TASKS.updated_event(new, changed))
    _settle(tx, msgspec.structs.replace(new, status="pending"), new)
    return Claim(task=new, lease_until=until)


def choose(tx: Tx, app: App, project: int | None, plan: int | None) -> int | None:
    if plan is not None:
        writable_plan = PLANS.must_get(tx.conn, plan)
        if writable_plan.archived:
            return None
        return ready.next_step(tx.conn, plan, tx.now)
    picked = ready.ranked(tx.conn, ready.Scorer(app.work.urgency, tx.now), project, 1)
    return picked[0][0] if picked else None


def claim(
    tx: Tx, app: App, agent: str, task_id: int | None, project: int | None, plan: int | None,
    lease_s: int | None,
) -> Claim:  # fmt: skip
    sweep(tx)
    lease = lease_s or app.work.lease_s
    if task_id is None:
        task_id = choose(tx, app, project, plan)
        if task_id is None:
            return Claim(task=None, lease_until=None)
        taken = take_ready(tx, task_id, agent, lease)
        if taken is not None:
            return taken
    row = TASKS.must_get(tx.conn, task_id)
    claimable(tx, row, agent)
    return take(tx, row, agent, lease)


class ClaimParams(Params, frozen=True):
    agent: Agent
    id: Id | None = None
    project: ProjectRef | None = None
    plan: Id | None = None
    lease_s: LeaseSeconds | None = None


methods = Methods()


@methods("tasks.claim")
async def claim_task(app: App, call: Call, p: ClaimParams) -> Claim:
    """Claim a task for `agent` for `lease_s` seconds (the config's `work.lease_s` by default):
    the task `id`, or the next ready one of a `plan` (phase then step order), of a `project`,
    or of all (ranked as tasks.ready). Chosen and claimed in one write: no two agents ever hold
    one task. `task` is null when nothing is ready. Claiming a task one holds renews it."""
    if p.id is not None and (p.plan is not None or p.project is not None):
        raise InvalidParams("Invalid params: give an id, or a plan or project", field="id")
    project = await project_id(app, p.project) if p.project is not None else None
    return await app.db.write(lambda tx: claim(tx, app, p.agent, p.id, project, p.plan,
                                                p.lease_s))  # fmt: skip


class HeartbeatParams(Params, frozen=True):
    id: Id
    agent: Agent
    lease_s: LeaseSeconds | None = None


def held(tx: Tx, task_id: int, agent: str) -> Task:
    row = TASKS.must_get(tx.conn, task_id)
    if row.claimed_by != agent:
        who = f"claimed by {row.claimed_by}" if row.claimed_by else "not claimed"
        raise Conflict(f"task {task_id} is {who}, not by {agent}", id=task_id,
                       claimed_by=row.claimed_by)  # fmt: skip
    return row


@methods("tasks.heartbeat")
async def heartbeat(app: App, call: Call, p: HeartbeatParams) -> Claim:
    """Renew the lease `agent` holds on a task for another `lease_s` seconds (its claim's own
    length by default); a task not held by it is a conflict."""

    def op(tx: Tx) -> Claim:
        row = held(tx, p.id, p.agent)
        lease = p.lease_s or row.lease_s or app.work.lease_s
        until = lease_end(tx.now, lease)
        new = _change(tx, row, {"lease_until": until, "lease_s": lease}, RENEWED)
        return Claim(task=new, lease_until=until)

    return await app.db.write(op)


class ReleaseParams(Params, frozen=True):
    id: Id
    agent: Agent | None = None
    force: bool = False


@methods("tasks.release")
async def release_task(app: App, call: Call, p: ReleaseParams) -> Task:
    """Hand a claimed task back (pending again, ready for others). Only its holder may, unless
    `force`."""

    def op(tx: Tx) -> Task:
        if p.force:
            row = TASKS.must_get(tx.conn, p.id)
        else:
            if p.agent is None:
                raise InvalidParams("Invalid params: who releases it? give agent", field="agent")
            row = held(tx, p.id, p.agent)
        writable(row)
        return release(tx, row)

    return await app.db.write(op)


def release(tx: Tx, row: Task) -> Task:
    """Free a task's claim (back to pending if it was in progress), with `tasks.released`."""
    values: dict[str, Any] = dict(_FREE)
    if row.status == "in_progress":
        values["status"] = "pending"
    new = _change(tx, row, values, RELEASED)
    _settle(tx, row, new)
    return new


# --- completing -----------------------------------------------------------------------------------
class CompleteParams(Params, frozen=True):
    id: Id
    agent: Agent | None = None
    next: bool = False
    force: bool = False
    lease_s: LeaseSeconds | None = None


class Completed(msgspec.Struct, kw_only=True):
    completed: Task
    next: Task | None
    lease_until: str | None
    unblocked: list[Task]


def complete(tx: Tx, app: App, p: CompleteParams) -> Completed:
    row = TASKS.must_get(tx.conn, p.id)
    writable(row)
    if row.status in TERMINAL:
        raise InvalidState(f"task {row.id} is {row.status} already", id=row.id,
                           completed_by=row.completed_by)  # fmt: skip
    if p.next and p.agent is None:
        raise InvalidParams("Invalid params: next needs the agent to claim it for",
                            field="agent")  # fmt: skip
    live = row.lease_until is not None and row.lease_until >= tx.now
    if row.claimed_by is not None and live and row.claimed_by != p.agent and not p.force:
        raise Conflict(
            f"task {row.id} is claimed by {row.claimed_by} until {row.lease_until}; only its "
            "holder completes it (or pass force: true)",
            id=row.id,
            claimed_by=row.claimed_by,
        )
    git = tx.conn.execute(
        "SELECT branch, head_sha FROM projects WHERE id = ?", (row.project_id,)
    ).fetchone()
    branch, head = git if git is not None else (None, None)
    values: dict[str, Any] = {
        **_FREE, "status": "completed", "completed_at": tx.now, "completed_by": p.agent,
        "completed_branch": branch, "completed_head": head, "blocked_reason": None,
        "started_at": row.started_at or tx.now,
    }  # fmt: skip
    new = _change(tx, row, values, COMPLETED)
    unblocked = _settle(tx, row, new)
    following = Claim(task=None, lease_until=None)
    if p.next and p.agent is not None:
        plan = row.plan_id
        project = None if plan is not None else row.project_id
        following = claim(tx, app, p.agent, None, project, plan, p.lease_s)
    return Completed(
        completed=TASKS.must_get(tx.conn, row.id),
        next=following.task,
        lease_until=following.lease_until,
        unblocked=[TASKS.must_get(tx.conn, t.id) for t in unblocked],
    )


@methods("tasks.complete")
async def complete_task(app: App, call: Call, p: CompleteParams) -> Completed:
    """Complete a task: who (`agent`), when, and the project's git branch and HEAD now.
    Returns it, the tasks it `unblocked`, and with `next: true` the next step of the same plan
    (or ready task of the same project) claimed for the same agent in the same write. A task
    another agent holds is a conflict unless `force`."""
    return await app.db.write(lambda tx: complete(tx, app, p))


# --- reading --------------------------------------------------------------------------------------
class ReadyParams(Params, frozen=True):
    project: ProjectRef | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20


@methods("tasks.ready")
async def ready_tasks(app: App, call: Call, p: ReadyParams) -> Page[ReadyTask]:
    """Ready work — not done, not blocked, no open subtasks, not deferred, not held by a live
    claim — across all projects or one, best first: priority (1 first), then urgency (what
    finishing it releases, its due date, its age; weights in the config's `[work.urgency]`).
    `total` counts every ready task."""
    project = await project_id(app, p.project) if p.project is not None else None
    items, total = await app.db.read(
        ready.ready_page, app.work.urgency, utc_now(), project, p.limit
    )
    return Page(items=items, total=total)


class NextParams(Params, frozen=True):
    plan: Id


class Next(msgspec.Struct, kw_only=True):
    task: Task | None


def _next(conn: Any, plan_id: int, now: str) -> Next:
    PLANS.must_get(conn, plan_id)
    found = ready.next_step(conn, plan_id, now)
    return Next(task=TASKS.get(conn, found) if found is not None else None)


@methods("tasks.next")
async def next_task(app: App, call: Call, p: NextParams) -> Next:
    """The next step of a plan: the first ready one in phase order, then step order (a step
    with open subtasks stands for its first ready subtask); `task` is null when none is."""
    return await app.db.read(_next, p.plan, utc_now())
