"""The generic table layer (daemon.store.table) on a scratch table and a real writer: what it
stores for each kind of field, versions, conflicts, events and paging."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest

from daemon.rpc.errors import Conflict, NotFound
from daemon.store import migrations
from daemon.store.batch import Tx
from daemon.store.database import Database
from daemon.store.events import Event
from daemon.store.table import Page, Row, RowDeleted, RowUpdated, Table, Where
from daemon.store.uid import uuid7

SCHEMA = """
CREATE TABLE gadgets (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('small', 'large')),
    shiny INTEGER NOT NULL CHECK (shiny IN (0, 1)),
    maybe INTEGER CHECK (maybe IN (0, 1)),
    tags TEXT NOT NULL CHECK (json_valid(tags)),
    size TEXT CHECK (size IS NULL OR json_valid(size)),
    weight REAL,
    note TEXT
);
"""


class Size(msgspec.Struct):
    w: int
    h: int


class Gadget(Row, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    kind: Literal["small", "large"] = "small"
    shiny: bool = False
    maybe: bool | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    size: Size | None = None
    weight: float | None = None
    note: str | None = None


GADGETS = Table("gadgets", Gadget, orders={"name": "t.name, t.id", "newest": "t.id DESC"})


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "t.db"
        conn = sqlite3.connect(self.path, isolation_level=None)
        migrations.migrate(conn, migrations.load())
        conn.executescript(SCHEMA)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
        self.published: list[Event] = []

    async def __aenter__(self) -> Database:
        self.db = Database(str(self.path), publish=self.published.extend)
        await self.db.start()
        return self.db

    async def __aexit__(self, *exc: object) -> None:
        await self.db.close()

    def events(self) -> list[tuple[str, Any]]:
        return [(e.type, msgspec.json.decode(e.data)) for e in self.published]


def run(world: World, body: Any) -> Any:
    async def main() -> Any:
        async with world as db:
            return await body(db)

    return asyncio.run(main())


def test_uuid7_is_version_7_and_sorts_by_time() -> None:
    made = [uuid7() for _ in range(200)]
    shape = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(shape.fullmatch(u) for u in made)
    assert len(set(made)) == 200
    assert [u[:13] for u in made] == sorted(u[:13] for u in made)  # the millisecond prefix


def test_uuid7_random_bits_are_our_own_and_differ_in_a_forked_child() -> None:
    """The random part comes from a generator of the uid module's own (no system call per
    row): another module's random.seed() must not make uids repeat, nor must a fork."""
    state = random.getstate()
    try:
        random.seed(7)
        first = uuid7()
        random.seed(7)
        assert uuid7()[14:] != first[14:]
    finally:
        random.setstate(state)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next uid, to the parent
        os.write(write, uuid7().encode())
        os._exit(0)
    os.close(write)
    mine = uuid7()
    os.waitpid(pid, 0)
    theirs = os.read(read, 100).decode()
    os.close(read)
    assert theirs[14:] != mine[14:]


def test_each_kind_of_field_round_trips(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def body(db: Database) -> tuple[Gadget, Gadget | None]:
        made = await db.write(
            lambda tx: GADGETS.insert(
                tx,
                {
                    "name": "a",
                    "kind": "large",
                    "shiny": True,
                    "maybe": None,
                    "tags": ["x", "y"],
                    "size": Size(2, 3),
                    "weight": 1.5,
                    "note": "é\x00z",
                },
            )
        )
        return made, await db.read(GADGETS.get, made.id)

    made, read = run(world, body)
    assert made == read
    assert read is not None
    assert (read.kind, read.shiny, read.maybe, read.tags, read.size, read.weight, read.note) == (
        "large", True, None, ["x", "y"], Size(2, 3), 1.5, "é\x00z",
    )  # fmt: skip
    assert read.version == 1 and read.created_at == read.updated_at
    stored = sqlite3.connect(world.path).execute("SELECT shiny, tags, size FROM gadgets").fetchone()
    assert stored == (1, '["x","y"]', '{"w":2,"h":3}')


def test_update_sets_only_what_changed_bumps_version_and_emits_the_changes(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def body(db: Database) -> list[Gadget]:
        g = await db.write(lambda tx: GADGETS.insert(tx, {"name": "a", "tags": ["x"]}))
        same = await db.write(lambda tx: GADGETS.update(tx, g.id, {"name": "a", "tags": ["x"]}))
        changed = await db.write(
            lambda tx: GADGETS.update(tx, g.id, {"name": "a", "shiny": True, "tags": []})
        )
        return [g, same, changed]

    g, same, changed = run(world, body)
    assert same == g  # nothing differed: no write, no version, no event
    assert changed.version == 2 and changed.shiny and changed.tags == []
    assert changed.updated_at > g.updated_at
    events = world.events()
    assert [t for t, _ in events] == ["gadgets.created", "gadgets.updated"]
    assert events[0][1] == msgspec.to_builtins(g)
    assert events[1][1] == msgspec.to_builtins(
        RowUpdated(id=g.id, uid=g.uid, version=2, changed={"shiny": True, "tags": []})
    )


def test_expected_version_conflicts_and_missing_rows(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def body(db: Database) -> None:
        g = await db.write(lambda tx: GADGETS.insert(tx, {"name": "a"}))
        await db.write(lambda tx: GADGETS.update(tx, g.id, {"note": "1"}, expected_version=1))
        with pytest.raises(Conflict) as caught:
            await db.write(lambda tx: GADGETS.update(tx, g.id, {"note": "2"}, expected_version=1))
        assert caught.value.data["version"] == 2
        with pytest.raises(Conflict):
            await db.write(lambda tx: GADGETS.delete(tx, g.id, expected_version=1))
        with pytest.raises(NotFound):
            await db.write(lambda tx: GADGETS.update(tx, g.id + 1, {"note": "x"}))
        gone = await db.write(lambda tx: GADGETS.delete(tx, g.id, expected_version=2))
        assert gone.note == "1"
        assert await db.read(GADGETS.get, g.id) is None

    run(world, body)
    assert world.events()[-1] == (
        "gadgets.deleted",
        msgspec.to_builtins(RowDeleted(id=1, uid=world.events()[0][1]["uid"])),
    )


def test_a_column_not_in_the_struct_is_refused(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def body(db: Database) -> None:
        with pytest.raises(ValueError, match="not a writable gadgets column"):
            await db.write(lambda tx: GADGETS.insert(tx, {"name": "a", "id; DROP TABLE x": 1}))
        with pytest.raises(ValueError):
            await db.write(lambda tx: GADGETS.insert(tx, {"name": "a", "version": 7}))
        with pytest.raises(ValueError):
            Where(GADGETS).eq("name = name OR 1", 1)

    run(world, body)


def test_pages_filters_orders_and_totals(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def body(db: Database) -> list[Page[Gadget]]:
        def fill(tx: Tx) -> None:
            for i in range(25):
                kind = "large" if i % 5 == 0 else "small"
                GADGETS.insert(tx, {"name": f"g{i:02d}", "kind": kind, "shiny": i % 2 == 0})

        def pages(c: sqlite3.Connection) -> list[Page[Gadget]]:
            large = Where(GADGETS).eq("kind", "large")
            shiny = Where(GADGETS).eq("shiny", True).eq("kind", ["large", "small"])
            return [
                GADGETS.page(c),
                GADGETS.page(c, large, order="newest", limit=2, offset=1),
                GADGETS.page(c, shiny, limit=3),
                GADGETS.page(c, Where(GADGETS).eq("note", None), limit=1),
            ]

        await db.write(fill)
        return await db.read(pages)

    everything, large, shiny, no_note = run(world, body)
    assert everything.total == 25 and len(everything.items) == 25
    assert [g.name for g in large.items] == ["g15", "g10"] and large.total == 5
    assert shiny.total == 13 and all(g.shiny for g in shiny.items) and len(shiny.items) == 3
    assert no_note.total == 25


def test_a_table_too_wide_for_one_json_object_still_reads_every_field(tmp_path: Path) -> None:
    fields = [(f"f{i}", int | None, None) for i in range(70)]
    wide_row = msgspec.defstruct("Wide", fields, bases=(Row,), kw_only=True)
    columns = ", ".join(f"f{i} INTEGER" for i in range(70))
    conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    conn.execute(
        "CREATE TABLE wide (id INTEGER PRIMARY KEY, uid TEXT, created_at TEXT, updated_at TEXT, "
        f"version INTEGER, {columns})"
    )
    conn.execute("INSERT INTO wide (id, uid, created_at, updated_at, version, f0, f69) "
                 "VALUES (1, 'u', 'a', 'b', 1, 0, 69)")  # fmt: skip
    wide: Table[Any] = Table("wide", wide_row)
    row = wide.get(conn, 1)
    assert row is not None and row.f0 == 0 and row.f69 == 69 and row.f30 is None
