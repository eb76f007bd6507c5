"""One contract for every domain table (huey's StorageTests, for tables): through the generic
table layer and the real writer, on a database with every shipped migration — insert with
the Struct's defaults, get, page and count, update (only what changed; version; conflict),
delete (what cascades), the events each write emits, unknown columns refused. Rows are made
from each table's own row Struct: the values its field types and constraints allow, parents
made first where a foreign key needs one. An entity's own test file then covers only its own
rules."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from msgspec import inspect

from daemon.domain import modules  # noqa: F401 - declares every domain table
from daemon.store import migrations
from daemon.store.batch import Tx
from daemon.store.database import Database
from daemon.store.events import Event
from daemon.store.table import Row, Table, Where, tables

SHIPPED = migrations.load()


def _schema_tables() -> set[str]:
    conn = sqlite3.connect(":memory:")
    try:
        migrations.migrate(conn, SHIPPED)
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


TABLES = [t for t in tables() if t.name in _schema_tables()]


def test_every_domain_table_is_under_contract() -> None:
    """Every table of the schema that holds domain rows (it has a uid) is declared as a Table,
    so this suite covers it."""
    conn = sqlite3.connect(":memory:")
    migrations.migrate(conn, SHIPPED)
    with_uid = {
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if any(c[1] == "uid" for c in conn.execute(f"PRAGMA table_info({name})"))
    }
    conn.close()
    assert with_uid == {t.name for t in TABLES} and {"kv", "projects"} <= with_uid


# --- values a field allows ----------------------------------------------------------------------
def sample(kind: inspect.Type, n: int) -> Any:
    """A value of this type, different for each n, within its constraints."""
    if isinstance(kind, inspect.Metadata):
        return sample(kind.type, n)
    if isinstance(kind, inspect.UnionType):
        concrete = [t for t in kind.types if not isinstance(t, inspect.NoneType)]
        return sample(concrete[0], n)
    if isinstance(kind, inspect.LiteralType):
        return kind.values[n % len(kind.values)]
    if isinstance(kind, inspect.StrType):
        text = f"v{n}-" + "x" * max(0, (kind.min_length or 0) - 3)
        return text[: kind.max_length] if kind.max_length else text
    if isinstance(kind, inspect.BoolType):
        return n % 2 == 0
    if isinstance(kind, inspect.IntType):
        low = kind.ge if kind.ge is not None else (kind.gt + 1 if kind.gt is not None else 1)
        high = kind.le if kind.le is not None else (kind.lt - 1 if kind.lt is not None else None)
        value = low + n
        return min(value, high) if high is not None else value
    if isinstance(kind, inspect.FloatType):
        return float(kind.ge if kind.ge is not None else 0) + 0.5 + n
    if isinstance(kind, inspect.ListType | inspect.SetType | inspect.FrozenSetType):
        return []
    if isinstance(kind, inspect.DictType):
        return {}
    if isinstance(kind, inspect.RawType | inspect.AnyType):
        return msgspec.Raw(msgspec.json.encode({"n": n}))
    if isinstance(kind, inspect.StructType):
        return kind.cls(**{f.name: sample(f.type, n) for f in kind.fields if f.required})
    raise NotImplementedError(f"no sample for {kind}")


def field_types(table: Table[Any]) -> dict[str, inspect.Type]:
    info = inspect.type_info(table.row)
    assert isinstance(info, inspect.StructType)
    return {f.name: f.type for f in info.fields}


class Maker:
    """Rows of any table, parents first."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.n = 0
        self.by_name = {t.name: t for t in TABLES}

    def parents(self, table: Table[Any]) -> dict[str, str]:
        """column → parent table, for the foreign keys the row must have (NOT NULL)."""
        info = {c[1]: c for c in self.tx.conn.execute(f"PRAGMA table_info({table.name})")}
        return {
            fk[3]: fk[2]
            for fk in self.tx.conn.execute(f"PRAGMA foreign_key_list({table.name})")
            if info[fk[3]][3]  # notnull
        }

    def values(self, table: Table[Any]) -> dict[str, Any]:
        self.n += 1
        types = field_types(table)
        fields = {f.name: f for f in msgspec.structs.fields(table.row)}
        values: dict[str, Any] = {}
        for name in sorted(table.writable):
            info = fields[name]
            if info.default is msgspec.NODEFAULT and info.default_factory is msgspec.NODEFAULT:
                values[name] = sample(types[name], self.n)
        for column, parent in self.parents(table).items():
            values[column] = self.row(self.by_name[parent]).id
        return values

    def row(self, table: Table[Any]) -> Row:
        made: Row = table.insert(self.tx, self.values(table))
        return made


def changeable(table: Table[Any], row: Row) -> tuple[str, Any]:
    """A plain text field the row may change freely (no key, no reference), and a new value."""
    types = field_types(table)
    for name in table.columns:
        if name not in table.writable or name.endswith("_id") or name in table.identity:
            continue
        kind = types[name]
        base = kind.type if isinstance(kind, inspect.Metadata) else kind
        members = base.types if isinstance(base, inspect.UnionType) else (base,)
        if any(isinstance(m, inspect.StrType) and not m.pattern for m in members):
            value = "changed"
            if value != getattr(row, name):
                return name, value
    raise AssertionError(f"{table.name}: no plain text field to change")


# --- the world ------------------------------------------------------------------------------------
class World:
    def __init__(self, path: Path) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        migrations.migrate(conn, SHIPPED)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
        self.path = path
        self.published: list[Event] = []

    def run(self, body: Any) -> Any:
        async def main() -> Any:
            db = Database(str(self.path), publish=self.published.extend)
            await db.start()
            try:
                return await body(db)
            finally:
                await db.close()

        return asyncio.run(main())

    def events(self, namespace: str) -> list[tuple[str, Any]]:
        return [
            (e.type, msgspec.json.decode(e.data)) for e in self.published if e.topic == namespace
        ]


@pytest.fixture(params=TABLES, ids=lambda t: t.name)
def table(request: pytest.FixtureRequest) -> Iterator[Table[Any]]:
    yield request.param


def test_insert_get_page_update_delete(table: Table[Any], tmp_path: Path) -> None:
    world = World(tmp_path / "c.db")

    async def body(db: Database) -> dict[str, Any]:
        made = await db.write(lambda tx: Maker(tx).row(table))
        got = await db.read(table.get, made.id)
        page = await db.read(table.page, Where(table).eq("id", made.id))
        field, value = changeable(table, made)
        same = await db.write(lambda tx: table.update(tx, made.id, {field: getattr(made, field)}))
        changed = await db.write(
            lambda tx: table.update(tx, made.id, {field: value}, expected_version=1)
        )
        try:
            await db.write(
                lambda tx: table.update(tx, made.id, {field: "again"}, expected_version=1)
            )
        except Exception as e:
            conflict: Exception | None = e
        else:
            conflict = None
        gone = await db.write(lambda tx: table.delete(tx, made.id, expected_version=2))
        after = await db.read(table.get, made.id)
        return {"made": made, "got": got, "page": page, "field": field, "value": value,
                "same": same, "changed": changed, "conflict": conflict, "gone": gone,
                "after": after}  # fmt: skip

    r = world.run(body)
    made, changed = r["made"], r["changed"]
    assert r["got"] == made and r["page"].items == [made] and r["page"].total == 1
    assert made.version == 1 and len(made.uid) == 36 and made.uid[14] == "7"  # a UUIDv7
    assert made.created_at == made.updated_at
    assert r["same"] == made  # nothing differed: no write, no version, no event
    assert changed.version == 2 and getattr(changed, r["field"]) == r["value"]
    assert type(r["conflict"]).__name__ == "Conflict"
    assert r["gone"] == changed and r["after"] is None
    events = world.events(table.namespace)
    ours = [(t, d) for t, d in events if d.get("id") == made.id and d.get("uid") == made.uid]
    assert [t for t, _ in ours][-3:] == [
        f"{table.namespace}.created", f"{table.namespace}.updated", f"{table.namespace}.deleted",
    ]  # fmt: skip
    created, updated, deleted = (d for _, d in ours[-3:])
    assert created["version"] == 1 and set(created) >= set(table.columns)
    assert updated["changed"] == {r["field"]: r["value"]} and updated["version"] == 2
    for name in table.identity:  # a subscriber knows the row without reading it
        assert updated[name] == getattr(changed, name) and deleted[name] == getattr(changed, name)


def test_unknown_and_system_columns_are_refused(table: Table[Any], tmp_path: Path) -> None:
    world = World(tmp_path / "c.db")

    async def body(db: Database) -> list[str]:
        refused = []
        for extra in ({"no_such_column": 1}, {"version": 9}, {"uid": "x"}, {"id": 5}):

            def op(tx: Tx, extra: dict[str, Any] = extra) -> Row:
                made: Row = table.insert(tx, Maker(tx).values(table) | extra)
                return made

            try:
                await db.write(op)
            except ValueError as e:
                refused.append(str(e))
        return refused

    refused = world.run(body)
    assert len(refused) == 4 and all("not a writable" in r for r in refused)


def test_pages_count_everything_and_order_as_declared(table: Table[Any], tmp_path: Path) -> None:
    world = World(tmp_path / "c.db")

    async def body(db: Database) -> tuple[list[Any], list[list[Any]]]:
        def fill(tx: Tx) -> list[Row]:
            maker = Maker(tx)
            return [maker.row(table) for _ in range(7)]

        made = await db.write(fill)
        ids = [r.id for r in made]
        where = Where(table).eq("id", ids)
        pages = []
        for order in table.orders:
            first = await db.read(table.page, where, order, 4, 0)
            rest = await db.read(table.page, where, order, 4, 4)
            assert first.total == rest.total == 7
            pages.append([r.id for r in first.items + rest.items])
        return made, pages

    made, pages = world.run(body)
    for ordered in pages:
        assert sorted(ordered) == sorted(r.id for r in made)  # every row once, in any order
