"""Archiving a plan: it and everything of it (phases, tasks, sessions, dependencies, and what
other domains attach to it) leave the active set in one transaction, and come back unchanged.

Done with an `archived` flag rather than `_archive` tables: every hot query reads a partial
index over `archived = 0` rows, so archived rows cost it nothing (bench/work.py: active queries
with ten times as much archived stay within the noise of none archived), while rows never move,
so ids, uids, versions and every field survive the round trip by construction, and foreign keys
keep holding. The children's rows are flagged without a version bump (their own fields do not
change); the plan's `plans.archived` / `plans.unarchived` event says what went with it.

Other domains take part through `ON_ARCHIVE`: each function registered there is called inside
the same transaction with (tx, plan id, archived) — documents, for instance, take a plan's notes
out of search.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Id
from daemon.domain.work import derived
from daemon.domain.work.claims import release
from daemon.domain.work.derived import Touched
from daemon.domain.work.model import PLANS, TASKS, Plan
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import Conflict, InvalidState
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.events_catalogue import EventKind

ArchiveHook = Callable[[Tx, int, bool], None]
ON_ARCHIVE: list[ArchiveHook] = []
"""Called inside the archive's (or unarchive's) transaction: (tx, plan id, archived)."""

ArchivedPayload = msgspec.defstruct(
    "PlanArchived",
    [("phases", int), ("tasks", int), ("sessions", int), ("dependencies", int)],
    bases=(PLANS.updated.payload,),
    kw_only=True,
)
ARCHIVED = EventKind("plans.archived", ArchivedPayload)
UNARCHIVED = EventKind("plans.unarchived", ArchivedPayload)

_PLAN_NODES = (
    "(from_type = 'plan' AND from_id = :p) OR (to_type = 'plan' AND to_id = :p)"
    " OR (from_type = 'phase' AND from_id IN (SELECT id FROM phases WHERE plan_id = :p))"
    " OR (to_type = 'phase' AND to_id IN (SELECT id FROM phases WHERE plan_id = :p))"
    " OR (from_type = 'task' AND from_id IN (SELECT id FROM tasks WHERE plan_id = :p))"
    " OR (to_type = 'task' AND to_id IN (SELECT id FROM tasks WHERE plan_id = :p))"
)


def _outside(tx: Tx, plan_id: int) -> Touched:
    """Tasks of other plans that a dependency ties to this one: what they wait on, or the
    count of what waits on them, changes when this plan leaves or returns."""
    touched = Touched()
    rows = tx.conn.execute(
        f"SELECT from_type, from_id, to_type, to_id FROM dependencies WHERE kind = 'blocks'"
        f" AND ({_PLAN_NODES})",
        {"p": plan_id},
    ).fetchall()
    for from_type, from_id, to_type, to_id in rows:
        touched.blocked |= derived.covered(tx.conn, (from_type, from_id))
        if to_type == "task":
            touched.targets.add(to_id)
    inside = {r[0] for r in tx.conn.execute("SELECT id FROM tasks WHERE plan_id = ?", (plan_id,))}
    touched.blocked -= inside  # the plan's own keep what they had, frozen while it is away
    touched.targets -= inside
    return touched


def set_archived(tx: Tx, plan_id: int, archived: bool, *, force: bool = False) -> Plan:
    plan = PLANS.must_get(tx.conn, plan_id)
    if plan.archived == archived:
        state = "archived" if archived else "not archived"
        raise InvalidState(f"plan {plan_id} is {state} already", id=plan_id)
    if archived:
        claimed = tx.conn.execute(
            "SELECT id, claimed_by FROM tasks WHERE plan_id = ? AND claimed_by IS NOT NULL"
            " AND lease_until >= ?",
            (plan_id, tx.now),
        ).fetchall()
        if claimed and not force:
            held = ", ".join(f"{task_id} by {who}" for task_id, who in claimed)
            raise Conflict(
                f"plan {plan_id} has claimed tasks ({held}); release them, or pass force: true",
                tasks=[task_id for task_id, _ in claimed],
            )
        for task_id, _ in claimed:
            release(tx, TASKS.must_get(tx.conn, task_id))
    flag = int(archived)
    touched = _outside(tx, plan_id)
    counts = {
        "phases": tx.conn.execute(
            "UPDATE phases SET archived = ? WHERE plan_id = ?", (flag, plan_id)
        ).rowcount,
        "tasks": tx.conn.execute(
            "UPDATE tasks SET archived = ? WHERE plan_id = ?", (flag, plan_id)
        ).rowcount,
        "sessions": tx.conn.execute(
            "UPDATE sessions SET archived = ? WHERE plan_id = ?", (flag, plan_id)
        ).rowcount,
        "dependencies": tx.conn.execute(
            f"UPDATE dependencies SET archived = :flag WHERE {_PLAN_NODES}",
            {"flag": flag, "p": plan_id},
        ).rowcount,
    }
    values = {"archived": archived, "archived_at": tx.now if archived else None}
    new = PLANS.update(tx, plan_id, values, emit=False)
    payload = msgspec.structs.asdict(PLANS.updated_event(new, values))
    tx.emit(ARCHIVED if archived else UNARCHIVED, ArchivedPayload(**payload, **counts))
    for hook in ON_ARCHIVE:
        hook(tx, plan_id, archived)
    if not archived:  # the world may have moved on while it was away
        inside = {r[0] for r in tx.conn.execute("SELECT id FROM tasks WHERE plan_id = ?",
                                                 (plan_id,))}  # fmt: skip
        touched.blocked |= inside
        touched.targets |= inside
    derived.settle(tx, touched)
    return new


class ArchiveParams(Params, frozen=True):
    id: Id
    force: bool = False


methods = Methods()


@methods("plans.archive")
async def archive(app: App, call: Call, p: ArchiveParams) -> Plan:
    """Archive a plan with all its phases, tasks, sessions' links and dependencies, in one
    transaction: out of lists, ready work and next steps, read-only until unarchived. Claimed
    tasks are a conflict unless `force` (which releases them)."""
    # a plan or program with all it holds
    return await app.db.write(lambda tx: set_archived(tx, p.id, True, force=p.force), heavy=True)


class UnarchiveParams(Params, frozen=True):
    id: Id


@methods("plans.unarchive")
async def unarchive(app: App, call: Call, p: UnarchiveParams) -> Plan:
    """Bring an archived plan back with everything that went with it, every row as it was."""
    return await app.db.write(lambda tx: set_archived(tx, p.id, False), heavy=True)
