"""deps: typed dependencies between plans, phases and tasks — "from depends on to".

Generated: deps.get, deps.list. Written here: deps.add refuses an end that does not exist or is
archived, a duplicate (conflict, with its id) and a `blocks` edge that would close a cycle
(conflict, the cycle in `data.cycle`), and settles what the new edge blocks; deps.remove
releases what it held.
"""

from __future__ import annotations

from typing import Any

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Crud, Deleted, Id
from daemon.domain.work import derived, graph
from daemon.domain.work.derived import Touched
from daemon.domain.work.model import (
    DEPENDENCIES,
    NODE_TABLES,
    Dependency,
    DepKind,
    NodeType,
    Short,
)
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import Conflict, InvalidParams, InvalidState, NotFound
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.table import Where


class DepsAddParams(Params, frozen=True):
    from_type: NodeType
    from_id: Id
    to_type: NodeType
    to_id: Id
    kind: DepKind = "blocks"
    note: Short | None = None


class DepsRemoveParams(Params, frozen=True):
    id: Id


def _end(tx: Tx, kind: NodeType, node_id: int, field: str) -> None:
    row = NODE_TABLES[kind].get(tx.conn, node_id)
    if row is None:
        raise NotFound(f"no {kind} with id {node_id}", field=field, id=node_id)
    if row.archived:
        raise InvalidState(f"{kind} {node_id} is archived", field=field, id=node_id)


def cycle_error(cycle: list[graph.Node]) -> Conflict:
    return Conflict(
        "the dependency would close a cycle: " + " → ".join(f"{k} {i}" for k, i in cycle),
        cycle=[{"type": k, "id": i} for k, i in cycle],
    )


def touched_by(edge: Dependency, conn: Any) -> Touched:
    touched = Touched()
    if edge.kind == "blocks":
        touched.blocked |= derived.covered(conn, (edge.from_type, edge.from_id))
        if edge.to_type == "task":
            touched.targets.add(edge.to_id)
    return touched


def add(tx: Tx, p: DepsAddParams) -> Dependency:
    _end(tx, p.from_type, p.from_id, "from_id")
    _end(tx, p.to_type, p.to_id, "to_id")
    source: graph.Node = (p.from_type, p.from_id)
    target: graph.Node = (p.to_type, p.to_id)
    if source == target:
        raise InvalidParams("Invalid params: a dependency joins two things", field="to_id")
    same = DEPENDENCIES.first(
        tx.conn,
        Where(DEPENDENCIES)
        .eq("from_type", p.from_type)
        .eq("from_id", p.from_id)
        .eq("to_type", p.to_type)
        .eq("to_id", p.to_id)
        .eq("kind", p.kind),
    )
    if same is not None:
        raise Conflict(f"that dependency exists already (id {same.id})", id=same.id)
    if p.kind == "blocks":
        cycle = graph.cycle_through(tx.conn, source, target)
        if cycle is not None:
            raise cycle_error(cycle)
    values = {"from_type": p.from_type, "from_id": p.from_id, "to_type": p.to_type,
              "to_id": p.to_id, "kind": p.kind, "note": p.note}  # fmt: skip
    edge = DEPENDENCIES.insert(tx, values)
    derived.settle(tx, touched_by(edge, tx.conn))
    return edge


def remove(tx: Tx, dep_id: int) -> Deleted:
    edge = DEPENDENCIES.must_get(tx.conn, dep_id)
    if edge.archived:
        raise InvalidState(f"dependency {dep_id} belongs to an archived plan", id=dep_id)
    DEPENDENCIES.delete(tx, dep_id)
    derived.settle(tx, touched_by(edge, tx.conn))
    return Deleted(id=edge.id, uid=edge.uid)


methods = Methods()
Crud(
    DEPENDENCIES,
    filters=("from_type", "from_id", "to_type", "to_id", "kind", "archived"),
).register(methods, ("get", "list"))


@methods("deps.add")
async def add_dependency(app: App, call: Call, p: DepsAddParams) -> Dependency:
    """Add "from depends on to" between plans, phases and tasks (kind `blocks` by default, the
    only one that gates work; `related`, `discovered_from`, `duplicates`). A `blocks` edge that
    would close a cycle, at any level, is refused (conflict, the cycle in `data.cycle`)."""
    return await app.db.write(lambda tx: add(tx, p))


class DepsCheckParams(Params, frozen=True):
    from_type: NodeType
    from_id: Id
    to_type: NodeType
    to_id: Id


class NodeRef(msgspec.Struct, kw_only=True):
    type: NodeType
    id: int


class CycleCheck(msgspec.Struct, kw_only=True):
    cycle: list[NodeRef] | None


def check(conn: Any, p: DepsCheckParams) -> CycleCheck:
    source: graph.Node = (p.from_type, p.from_id)
    target: graph.Node = (p.to_type, p.to_id)
    found = [source, target] if source == target else graph.cycle_through(conn, source, target)
    return CycleCheck(cycle=None if found is None else [NodeRef(type=k, id=i) for k, i in found])


@methods("deps.check")
async def check_dependency(app: App, call: Call, p: DepsCheckParams) -> CycleCheck:
    """Would "from depends on to" (blocks) close a cycle? `cycle` is the loop it would make, or
    null (Project Memory's checkCycle; deps.add refuses the same edges)."""
    return await app.db.read(check, p)


@methods("deps.remove")
async def remove_dependency(app: App, call: Call, p: DepsRemoveParams) -> Deleted:
    """Remove a dependency; what it blocked is released."""
    return await app.db.write(lambda tx: remove(tx, p.id))
