"""The generic table layer: get, page, insert, update and delete for any domain table, built
from its row Struct, which is also the wire type.

A table is declared once (`Table(name, RowStruct, …)`); what each column stores follows from
the field's type: a `bool` is 0/1, a list, dict, Struct or `Any` is JSON text, the rest is
stored as it is. Rows leave SQLite as one JSON object per row (`json_object(…)`), decoded
straight into the Struct by msgspec: one conversion, in C, that also checks every value
against the declared type. Column names come only from the Struct's fields; every value is a
parameter.

Every write emits its event in the same transaction (`Tx.emit`): `<namespace>.created` with
the whole row, `<namespace>.updated` with the id, uid, new version and each changed field's new
value, `<namespace>.deleted` with the id and uid.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

import msgspec
from msgspec import UNSET, inspect

from daemon.rpc.errors import Conflict, NotFound
from daemon.store.batch import Tx
from daemon.store.events_catalogue import EventKind
from daemon.store.paging import fetch_page
from daemon.store.uid import uuid7

R = TypeVar("R", bound="Row")
T = TypeVar("T")

_TABLES: dict[str, Table[Any]] = {}  # every table declared, by name (the contract tests)

# SQLite builds may cap a function at 127 arguments: json_object takes two per column.
_JSON_OBJECT_COLUMNS = 60
MAX_IN = 64  # values in one `IN (…)` filter: SQLite caches every statement shape it compiled


class Row(msgspec.Struct, kw_only=True):
    """What every domain row has: `id` for the API, `uid` (a UUIDv7) for export, merge and
    sync, the times, and `version`, bumped by every update."""

    id: int
    uid: str
    created_at: str
    updated_at: str
    version: int

    SYSTEM: ClassVar[frozenset[str]] = frozenset(
        {"id", "uid", "created_at", "updated_at", "version"}
    )


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """A page of a list: `total` counts every match, whatever the page holds."""

    items: list[T]
    total: int


class RowUpdated(msgspec.Struct, kw_only=True):
    """`<namespace>.updated`: enough to replay the change elsewhere."""

    id: int
    uid: str
    version: int
    changed: dict[str, Any]


class RowDeleted(msgspec.Struct, kw_only=True):
    """`<namespace>.deleted`."""

    id: int
    uid: str


_JSON_TYPES = (
    inspect.ListType, inspect.DictType, inspect.StructType, inspect.SetType,
    inspect.FrozenSetType, inspect.TupleType, inspect.VarTupleType, inspect.AnyType,
    inspect.RawType, inspect.TypedDictType, inspect.DataclassType,
)  # fmt: skip


def _storage(kind: inspect.Type) -> str:
    """How a field of this type is stored: "json", "bool" or "plain"."""
    members = kind.types if isinstance(kind, inspect.UnionType) else (kind,)
    if any(isinstance(m, _JSON_TYPES) for m in members):
        return "json"
    if any(isinstance(m, inspect.BoolType) for m in members):
        return "bool"
    return "plain"


class Table(Generic[R]):
    """One domain table. `computed` maps extra Struct fields that are not columns to SQL over
    `joins` (e.g. the latest quality score of a project); `orders` names the orderings a list
    may ask for (SQL over the alias `t`), the first being the default; `namespace` names the
    events (the method namespace; the table name by default)."""

    def __init__(
        self,
        name: str,
        row: type[R],
        *,
        namespace: str | None = None,
        computed: Mapping[str, str] | None = None,
        joins: str = "",
        orders: Mapping[str, str] | None = None,
        identity: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.row = row
        self.namespace = namespace or name
        self.computed = dict(computed or {})
        fields = inspect.type_info(row)
        assert isinstance(fields, inspect.StructType)
        self.storage: dict[str, str] = {
            f.name: _storage(f.type) for f in fields.fields if f.name not in self.computed
        }
        self.columns: tuple[str, ...] = tuple(self.storage)
        self.writable: frozenset[str] = frozenset(self.columns) - Row.SYSTEM
        self._defaults = {f.name: f for f in msgspec.structs.fields(row) if f.name in self.writable}
        self.orders = dict(orders or {"id": "t.id"})
        self._from = f"{name} AS t {joins}".strip()
        self._decode = msgspec.json.Decoder(row).decode
        self._decode_many = msgspec.json.Decoder(list[row]).decode  # type: ignore[valid-type]
        self._encode = msgspec.json.Encoder().encode
        self._select = f"SELECT {self._json_row('t.')}"
        # The row as an INSERT/UPDATE … RETURNING gives it (no joins: the table's own columns).
        self.returning = "" if self.computed else f"RETURNING {self._json_row('')}"
        # `identity`: fields every updated/deleted event carries besides id and uid (kv's
        # namespace and key, a project's path), so a subscriber knows the row without a read.
        self.identity = tuple(identity)
        updated: type[RowUpdated] = RowUpdated
        deleted: type[RowDeleted] = RowDeleted
        if self.identity:
            types = {f.name: f.type for f in msgspec.structs.fields(row)}
            extra = [(name, types[name]) for name in self.identity]
            title = row.__name__
            updated = cast(
                "type[RowUpdated]",
                msgspec.defstruct(f"{title}Updated", extra, bases=(RowUpdated,), kw_only=True),
            )
            deleted = cast(
                "type[RowDeleted]",
                msgspec.defstruct(f"{title}Deleted", extra, bases=(RowDeleted,), kw_only=True),
            )
        _TABLES[name] = self
        self.created: EventKind[R] = EventKind(f"{self.namespace}.created", row)
        self.updated: EventKind[RowUpdated] = EventKind(f"{self.namespace}.updated", updated)
        self.deleted: EventKind[RowDeleted] = EventKind(f"{self.namespace}.deleted", deleted)

    # --- SQL ------------------------------------------------------------------------------
    def _json_row(self, alias: str) -> str:
        """SQL for one row as a JSON object, the Struct's field order."""
        parts: list[str] = []
        for field in self.row.__struct_fields__:
            if field in self.computed:
                parts.append(f"'{field}', {self.computed[field]}")
                continue
            column = f"{alias}{field}"
            kind = self.storage[field]
            if kind == "json":
                column = f"json({column})"
            elif kind == "bool":
                column = (
                    f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} "
                    "THEN json('true') ELSE json('false') END"
                )
            parts.append(f"'{field}', {column}")
        chunks = [
            "json_object(" + ", ".join(parts[i : i + _JSON_OBJECT_COLUMNS]) + ")"
            for i in range(0, len(parts), _JSON_OBJECT_COLUMNS)
        ]
        if len(chunks) == 1:
            return chunks[0]
        # Glue the objects' members together: json_patch would drop the null ones.
        inner = " || ',' || ".join(f"substr({c}, 2, length({c}) - 2)" for c in chunks)
        return f"'{{' || {inner} || '}}'"

    def stored(self, field: str, value: Any) -> Any:
        """A Python value as its column stores it."""
        kind = self.storage[field]
        if value is None:
            return None
        if kind == "json":
            return self._encode(value).decode()
        if kind == "bool":
            return int(value)
        return value

    def decode(self, text: str | bytes) -> R:
        return self._decode(text)

    def updated_event(self, row: R, changed: dict[str, Any]) -> RowUpdated:
        """`<namespace>.updated` for `row` (as it is now) and what changed."""
        who = {name: getattr(row, name) for name in self.identity}
        return self.updated.payload(
            id=row.id, uid=row.uid, version=row.version, changed=changed, **who
        )

    def deleted_event(self, row: R) -> RowDeleted:
        """`<namespace>.deleted` for `row` (as it was)."""
        who = {name: getattr(row, name) for name in self.identity}
        return self.deleted.payload(id=row.id, uid=row.uid, **who)

    # --- reading --------------------------------------------------------------------------
    def get(self, conn: sqlite3.Connection, row_id: int) -> R | None:
        found = conn.execute(f"{self._select} FROM {self._from} WHERE t.id = ?", (row_id,))
        row = found.fetchone()
        return self._decode(row[0]) if row else None

    def must_get(self, conn: sqlite3.Connection, row_id: int) -> R:
        found = self.get(conn, row_id)
        if found is None:
            raise NotFound(f"no {self.namespace} row with id {row_id}", id=row_id)
        return found

    def first(self, conn: sqlite3.Connection, where: Where) -> R | None:
        sql, args = where.render()
        row = conn.execute(f"{self._select} FROM {self._from}{sql} LIMIT 1", args).fetchone()
        return self._decode(row[0]) if row else None

    def rows(
        self,
        conn: sqlite3.Connection,
        where: Where | None = None,
        order: str | None = None,
        *,
        limit: int = -1,
        offset: int = 0,
        budget: bool = True,
    ) -> list[R]:
        """Matching rows in an order this table declares; a page ends early at the byte
        budget (see `fetch_page`) unless `budget` is False."""
        sql, args = (where or Where()).render()
        order_by = self.orders[order] if order is not None else next(iter(self.orders.values()))
        query = f"{self._select} FROM {self._from}{sql} ORDER BY {order_by}"
        if limit >= 0 or offset:  # (a LIMIT -1 still costs the planner its sorter: ~3x here)
            query += " LIMIT ? OFFSET ?"
            args = (*args, limit, offset)
        cursor = conn.execute(query, args)
        texts = fetch_page(cursor) if budget else fetch_page(cursor, None)
        return self._decode_many(b"[" + ",".join(t for (t,) in texts).encode() + b"]")

    def count(self, conn: sqlite3.Connection, where: Where | None = None) -> int:
        sql, args = (where or Where()).render()
        source = self._from if (where and where.uses_joins) else f"{self.name} AS t"
        return int(conn.execute(f"SELECT count(*) FROM {source}{sql}", args).fetchone()[0])

    def page(
        self,
        conn: sqlite3.Connection,
        where: Where | None = None,
        order: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[R]:
        """`{items, total}`, always counted: a page may stop short of `limit` at its budget."""
        items = self.rows(conn, where, order=order, limit=limit, offset=offset)
        return Page(items=items, total=self.count(conn, where))

    # --- writing (inside the writer's transaction) ----------------------------------------
    def _checked(self, values: Mapping[str, Any]) -> None:
        unknown = set(values) - self.writable
        if unknown:
            raise ValueError(f"not a writable {self.name} column: {sorted(unknown)}")

    def with_defaults(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` and the Struct's default for every writable field not among them: the
        Struct is where defaults are said (a field without one must be given)."""
        out = dict(values)
        for name, info in self._defaults.items():
            if name in out:
                continue
            if info.default is not msgspec.NODEFAULT:
                out[name] = info.default
            elif info.default_factory is not msgspec.NODEFAULT:
                out[name] = info.default_factory()
            else:
                raise ValueError(f"{self.name}.{name} is required")
        return out

    def insert(self, tx: Tx, values: Mapping[str, Any], *, emit: bool = True) -> R:
        """A new row (uid, times and version 1 filled in, the Struct's defaults for what is not
        given); emits `<namespace>.created` with the whole row."""
        self._checked(values)
        values = self.with_defaults(values)
        columns = ["uid", "created_at", "updated_at", "version", *values]
        args = [uuid7(), tx.now, tx.now, 1, *(self.stored(c, v) for c, v in values.items())]
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {self.name} ({', '.join(columns)}) VALUES ({marks})"
        if self.returning:
            text = tx.conn.execute(f"{sql} {self.returning}", args).fetchone()[0]
            row = self._decode(text)
        else:
            row_id = tx.conn.execute(f"{sql} RETURNING id", args).fetchone()[0]
            row = self.must_get(tx.conn, row_id)
            text = self._encode(row)
        if emit:
            tx.emit(self.created, msgspec.Raw(text))
        return row

    def update(
        self,
        tx: Tx,
        row_id: int,
        values: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        emit: bool = True,
        old: R | None = None,
    ) -> R:
        """Set the fields given that differ from what is stored (nothing at all, and no event,
        when none does); bumps `version`; `expected_version` that is not the stored one is a
        `conflict`. Emits `<namespace>.updated` with the changed fields' new values. `old`:
        the row as this transaction already read it (saves reading it again)."""
        self._checked(values)
        if old is None or old.id != row_id:
            old = self.must_get(tx.conn, row_id)
        check_version(self.namespace, old, expected_version)
        changed = {k: v for k, v in values.items() if getattr(old, k) != v}
        if not changed:
            return old
        assignments = "".join(f"{c} = ?, " for c in changed)
        args = [*(self.stored(c, v) for c, v in changed.items()), tx.now, row_id]
        sql = (
            f"UPDATE {self.name} SET {assignments}updated_at = ?, version = version + 1 "
            "WHERE id = ?"
        )
        if self.returning:
            row = self._decode(tx.conn.execute(f"{sql} {self.returning}", args).fetchone()[0])
        else:
            tx.conn.execute(sql, args)
            row = self.must_get(tx.conn, row_id)
        if emit:
            tx.emit(self.updated, self.updated_event(row, changed))
        return row

    def delete(
        self, tx: Tx, row_id: int, *, expected_version: int | None = None, emit: bool = True
    ) -> R:
        """Remove a row (what the schema cascades goes with it); returns what it was."""
        old = self.must_get(tx.conn, row_id)
        check_version(self.namespace, old, expected_version)
        tx.conn.execute(f"DELETE FROM {self.name} WHERE id = ?", (row_id,))
        if emit:
            tx.emit(self.deleted, self.deleted_event(old))
        return old


def tables() -> list[Table[Any]]:
    """Every table declared so far (domain modules declare theirs as they are imported)."""
    return [_TABLES[name] for name in sorted(_TABLES)]


def check_version(what: str, row: Row, expected: int | None) -> None:
    if expected is not None and row.version != expected:
        raise Conflict(
            f"{what} {row.id} is at version {row.version}, not {expected}: someone changed it "
            "meanwhile; read it again and retry",
            id=row.id,
            version=row.version,
            expected_version=expected,
        )


def given(params: msgspec.Struct, fields: Iterable[str]) -> dict[str, Any]:
    """The `fields` of `params` that the caller gave (not UNSET)."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(params, name, UNSET)
        if value is not UNSET:
            out[name] = value
    return out


class Where:
    """A WHERE clause built from column names the table declares and values as parameters.
    `eq(column, value)`: a list is `IN (…)` (deduplicated, at most MAX_IN), None `IS NULL`.
    `sql(fragment, *args)`: a constant SQL fragment of the domain's own, over the alias `t`."""

    def __init__(self, table: Table[Any] | None = None) -> None:
        self._table = table
        self._clauses: list[str] = []
        self._args: list[Any] = []
        self.uses_joins = False

    def eq(self, column: str, value: Any) -> Where:
        if self._table is not None:
            if column in self._table.computed:
                self.uses_joins = True
                target = self._table.computed[column]
            elif column in self._table.storage:
                target = f"t.{column}"
                value = (
                    [self._table.stored(column, v) for v in value]
                    if isinstance(value, list | tuple | set | frozenset)
                    else self._table.stored(column, value)
                )
            else:
                raise ValueError(f"{self._table.name} has no column {column!r}")
        else:
            target = f"t.{column}"
        if value is None:
            self._clauses.append(f"{target} IS NULL")
        elif isinstance(value, list | tuple | set | frozenset):
            values = sorted(set(value), key=repr)  # one statement shape per set, not per list
            if not values:
                self._clauses.append("0")
            else:
                if len(values) > MAX_IN:
                    raise ValueError(f"at most {MAX_IN} values in one filter")
                self._clauses.append(f"{target} IN ({', '.join('?' for _ in values)})")
                self._args += values
        else:
            self._clauses.append(f"{target} = ?")
            self._args.append(value)
        return self

    def sql(self, fragment: str, *args: Any, joins: bool = False) -> Where:
        self._clauses.append(f"({fragment})")
        self._args += args
        self.uses_joins = self.uses_joins or joins
        return self

    def render(self) -> tuple[str, Sequence[Any]]:
        if not self._clauses:
            return "", ()
        return " WHERE " + " AND ".join(self._clauses), tuple(self._args)
