"""The RPC methods of a table, generated: `<ns>.add`, `.get`, `.list`, `.update`, `.delete`.

An entity declares what its methods take — which fields `add` and `update` accept, which
fields `list` filters on, which references are given by name (`project`, `plan`…) rather than
as a column (`project_id`) — and the params Structs are built from the row Struct's own field
types, so every constraint is said once, on the row. Its real rules go in `Rules` hooks that
run inside the write's transaction; anything more is written by hand beside (see kv.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar, cast

import msgspec
from msgspec import UNSET, UnsetType

from daemon.domain.app import App
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import NotFound
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.connection import quote
from daemon.store.limits import Limit, Offset
from daemon.store.table import Page, Row, Table, Where

R = TypeVar("R", bound=Row)

Id = Annotated[int, msgspec.Meta(ge=1, description="a row's id")]
Version = Annotated[
    int, msgspec.Meta(ge=1, description="refuse the change (conflict) unless the row is at it")
]
Verb = Literal["add", "get", "list", "update", "delete"]
VERBS: tuple[Verb, ...] = ("add", "get", "list", "update", "delete")


@dataclass(frozen=True)
class Ref:
    """A reference given by name in params (`param`, e.g. "plan") and stored in `column`
    ("plan_id"): an id of a row of `table`, checked inside the write; or, with `resolve`,
    anything `resolve(app, value)` turns into an id before the write (a project's id, name or
    path). `required`: `add` must be given it."""

    param: str
    column: str
    table: str
    kind: Any = Id
    required: bool = False
    resolve: Callable[[App, Any], Awaitable[int]] | None = None
    description: str = ""


class Rules(Generic[R]):
    """An entity's own rules, run inside the write's transaction (override what applies)."""

    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        """Check or complete `values` before the insert (defaults already applied)."""

    def after_add(self, tx: Tx, row: R) -> None:
        """What follows from the new row (derived state, other rows)."""

    def before_update(self, tx: Tx, old: R, changes: dict[str, Any]) -> None:
        """Check or complete `changes` (only the fields given)."""

    def after_update(self, tx: Tx, old: R, new: R) -> None:
        """What follows from the change."""

    def before_delete(self, tx: Tx, row: R) -> None:
        """Refuse, or clean up what the schema does not cascade."""


class Deleted(msgspec.Struct, kw_only=True):
    id: int
    uid: str


def _title(namespace: str) -> str:
    return "".join(part.capitalize() for part in namespace.replace(".", "_").split("_"))


class Crud(Generic[R]):
    """Generated methods for `table`. `create`: fields `add` takes (default: every writable
    field that is not a reference's column); `change`: fields `update` takes (default: the
    same); `filters`: fields `list` filters on (equality; null matches null)."""

    def __init__(
        self,
        table: Table[R],
        *,
        refs: Sequence[Ref] = (),
        create: Sequence[str] | None = None,
        change: Sequence[str] | None = None,
        filters: Sequence[str] = (),
        rules: Rules[R] | None = None,
        noun: str | None = None,
    ) -> None:
        self.table = table
        self.refs = {ref.param: ref for ref in refs}
        by_column = {ref.column for ref in refs}
        default = [f for f in table.columns if f in table.writable and f not in by_column]
        self.create = tuple(create if create is not None else default)
        self.change = tuple(change if change is not None else self.create)
        self.filters = tuple(filters)
        self.rules: Rules[R] = rules or Rules()
        self.noun = noun or table.namespace.rstrip("s")
        fields = {f.name: f for f in msgspec.structs.fields(table.row)}
        for name in (*self.create, *self.change, *self.filters):
            if name not in fields:
                raise ValueError(f"{table.name} has no field {name!r}")
        title = _title(table.namespace)
        ref_fields = [
            (r.param, r.kind if r.required else r.kind | None, msgspec.NODEFAULT if r.required
             else None)
            for r in refs
        ]  # fmt: skip
        self.add_params = self._struct(
            f"{title}AddParams",
            [*ref_fields, *((n, fields[n].type, _default(fields[n])) for n in self.create)],
        )
        self.get_params = self._struct(f"{title}GetParams", [("id", Id, msgspec.NODEFAULT)])
        self.update_params = self._struct(
            f"{title}UpdateParams",
            [
                ("id", Id, msgspec.NODEFAULT),
                ("expected_version", Version | None, None),
                *((n, fields[n].type | UnsetType, UNSET) for n in self.change),
            ],
        )
        self.delete_params = self._struct(
            f"{title}DeleteParams",
            [("id", Id, msgspec.NODEFAULT), ("expected_version", Version | None, None)],
        )
        orders = tuple(table.orders)
        self.list_params = self._struct(
            f"{title}ListParams",
            [
                *((r.param, r.kind | None, None) for r in refs),
                *((n, fields[n].type | None, None) for n in self.filters),
                ("order", Literal[orders] | None, None),
                ("limit", Limit, 100),
                ("offset", Offset, 0),
            ],
        )

    @staticmethod
    def _struct(name: str, fields: list[tuple[str, Any, Any]]) -> type[Params]:
        spec = [(n, t) if d is msgspec.NODEFAULT else (n, t, d) for n, t, d in fields]
        made = msgspec.defstruct(
            name, spec, bases=(Params,), kw_only=True, frozen=True, forbid_unknown_fields=True
        )
        return cast("type[Params]", made)

    # --- references -------------------------------------------------------------------------
    async def _resolved(self, app: App, params: Any) -> dict[str, Any]:
        """The refs given in `params`, as {column: id}; resolved ones read now, the others
        checked inside the write (`_check_refs`)."""
        out: dict[str, Any] = {}
        for ref in self.refs.values():
            value = getattr(params, ref.param, None)
            if value is None:
                continue
            out[ref.column] = await ref.resolve(app, value) if ref.resolve else value
        return out

    def _check_refs(self, tx: Tx, columns: dict[str, Any]) -> None:
        for ref in self.refs.values():
            value = columns.get(ref.column)
            if value is None or ref.resolve is not None:
                continue
            # ref.table: a table name the entity declares in code, never a client's string
            found = tx.conn.execute(f"SELECT 1 FROM {quote(ref.table)} WHERE id = ?", (value,))
            if found.fetchone() is None:
                raise NotFound(f"no {ref.param} with id {value}", field=ref.param, id=value)

    # --- handlers ---------------------------------------------------------------------------
    async def add(self, app: App, call: Call, params: Any) -> R:
        refs = await self._resolved(app, params)
        values = {n: getattr(params, n) for n in self.create} | refs

        def op(tx: Tx) -> R:
            self._check_refs(tx, refs)
            complete = self.table.with_defaults(values)
            self.rules.before_add(tx, complete)
            row = self.table.insert(tx, complete)
            self.rules.after_add(tx, row)
            return row

        return await app.db.write(op)

    async def get(self, app: App, call: Call, params: Any) -> R:
        return await app.db.read(self.table.must_get, params.id)

    async def list(self, app: App, call: Call, params: Any) -> Page[R]:
        where = Where(self.table)
        for column, value in (await self._resolved(app, params)).items():
            where.eq(column, value)
        for name in self.filters:
            value = getattr(params, name)
            if value is not None:
                where.eq(name, value)
        return await app.db.read(self.table.page, where, params.order, params.limit, params.offset)

    async def update(self, app: App, call: Call, params: Any) -> R:
        changes = {n: getattr(params, n) for n in self.change}
        changes = {n: v for n, v in changes.items() if v is not UNSET}

        def op(tx: Tx) -> R:
            old = self.table.must_get(tx.conn, params.id)
            self.rules.before_update(tx, old, changes)
            new = self.table.update(
                tx, params.id, changes, expected_version=params.expected_version, old=old
            )
            if new is not old:
                self.rules.after_update(tx, old, new)
            return new

        return await app.db.write(op)

    async def delete(self, app: App, call: Call, params: Any) -> Deleted:
        def op(tx: Tx) -> Deleted:
            row = self.table.must_get(tx.conn, params.id)
            self.rules.before_delete(tx, row)
            gone = self.table.delete(tx, params.id, expected_version=params.expected_version)
            return Deleted(id=gone.id, uid=gone.uid)

        return await app.db.write(op)

    def register(self, methods: Methods, verbs: Sequence[Verb] = VERBS) -> None:
        """Add the chosen verbs to a module's methods, documented from the table."""
        ns, noun, row = self.table.namespace, self.noun, self.table.row
        plan: dict[Verb, tuple[Any, Any, Any, str]] = {
            "add": (self.add, self.add_params, row, f"Add a {noun}; returns the new row."),
            "get": (self.get, self.get_params, row, f"One {noun} by id."),
            "list": (
                self.list,
                self.list_params,
                Page[row],  # type: ignore[valid-type]
                f"{ns.capitalize()}, filtered, with `{{items, total}}`.",
            ),
            "update": (
                self.update,
                self.update_params,
                row,
                f"Change the fields given of a {noun}; `expected_version` refuses the change "
                "(conflict) if someone changed it meanwhile. Returns the row as it is now.",
            ),
            "delete": (
                self.delete,
                self.delete_params,
                Deleted,
                f"Delete a {noun} (and what belongs to it).",
            ),
        }
        for verb in verbs:
            handler, params_type, result_type, doc = plan[verb]
            methods.add(
                f"{ns}.{verb}", handler, params_type=params_type, result_type=result_type,
                doc=doc,
            )  # fmt: skip


def _default(info: msgspec.structs.FieldInfo) -> Any:
    if info.default is not msgspec.NODEFAULT:
        return info.default
    if info.default_factory is not msgspec.NODEFAULT:
        return msgspec.field(default_factory=info.default_factory)
    return msgspec.NODEFAULT
