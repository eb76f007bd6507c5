"""Generated CRUD methods (daemon.domain.crud) on a scratch entity, through the real
dispatcher, registry and writer on a real SQLite file: params built from the row's own field
types, references checked, rules hooked into the write, versions and events."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest

from daemon.domain.app import App
from daemon.domain.crud import Crud, Ref, Rules
from daemon.domain.events.bus import EventBus
from daemon.rpc.dispatcher import Dispatcher, Session
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods, Registry
from daemon.store import migrations
from daemon.store.batch import Tx
from daemon.store.database import Database
from daemon.store.events import Event
from daemon.store.table import Row, Table

SCHEMA = """
CREATE TABLE shelves (id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, version INTEGER NOT NULL, label TEXT NOT NULL);
CREATE TABLE widgets (
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, version INTEGER NOT NULL,
    shelf_id INTEGER REFERENCES shelves (id) ON DELETE CASCADE,
    title TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('new', 'done')),
    done_at TEXT, tags TEXT NOT NULL CHECK (json_valid(tags))
);
"""


class Shelf(Row, kw_only=True):
    label: str


class Widget(Row, kw_only=True):
    shelf_id: int | None = None
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    state: Literal["new", "done"] = "new"
    done_at: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)


SHELVES = Table("shelves", Shelf)
WIDGETS = Table("widgets", Widget, orders={"title": "t.title, t.id"})


class WidgetRules(Rules[Widget]):
    """A widget's own rule: it records when it was done, and a done widget stays done."""

    def before_update(self, tx: Tx, old: Widget, changes: dict[str, Any]) -> None:
        if old.state == "done" and changes.get("state") == "new":
            raise InvalidParams("Invalid params: a done widget stays done", field="state")
        if changes.get("state") == "done" and old.state != "done":
            changes["done_at"] = tx.now


methods = Methods()
Crud(
    WIDGETS,
    refs=[Ref("shelf", "shelf_id", "shelves")],
    create=("title", "state", "tags"),
    change=("title", "state", "tags"),
    filters=("state",),
    rules=WidgetRules(),
).register(methods)


class Recorder(Session):
    def notify(self, method: str, params: Any) -> None:
        pass


class World:
    def __init__(self, tmp_path: Path) -> None:
        path = tmp_path / "w.db"
        conn = sqlite3.connect(path, isolation_level=None)
        migrations.migrate(conn, migrations.load())
        conn.executescript(SCHEMA)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            "INSERT INTO shelves (uid, created_at, updated_at, version, label) "
            "VALUES ('s1', 'a', 'a', 1, 'top')"
        )
        conn.close()
        self.path = path
        self.published: list[Event] = []

    def run(self, body: Any) -> Any:
        async def main() -> Any:
            db = Database(str(self.path), publish=self.published.extend)
            await db.start()
            registry = Registry()
            methods.bind(registry, App(db, EventBus(), data_dir=""))
            dispatcher = Dispatcher(registry, lambda: "ready", 10)
            session = Recorder()

            async def call(method: str, params: dict[str, Any]) -> Any:
                frame = msgspec.json.encode(
                    {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
                )
                reply, _ = await dispatcher.handle(frame, session)
                assert reply is not None
                return msgspec.json.decode(reply)

            try:
                return await body(call)
            finally:
                await db.close()

        return asyncio.run(main())


def test_add_get_list_update_delete_with_rules_and_events(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def body(call: Any) -> list[Any]:
        made = (await call("widgets.add", {"title": "a", "shelf": 1, "tags": ["x"]}))["result"]
        await call("widgets.add", {"title": "b"})
        done = await call("widgets.update", {"id": made["id"], "state": "done"})
        back = await call("widgets.update", {"id": made["id"], "state": "new"})
        stale = await call("widgets.update", {"id": made["id"], "title": "c",
                                              "expected_version": 1})  # fmt: skip
        listed = await call("widgets.list", {"state": "done"})
        by_shelf = await call("widgets.list", {"shelf": 1, "order": "title"})
        got = await call("widgets.get", {"id": made["id"]})
        gone = await call("widgets.delete", {"id": made["id"]})
        missing = await call("widgets.get", {"id": made["id"]})
        return [made, done, back, stale, listed, by_shelf, got, gone, missing]

    made, done, back, stale, listed, by_shelf, got, gone, missing = world.run(body)
    assert (made["title"], made["shelf_id"], made["state"], made["version"]) == ("a", 1, "new", 1)
    assert done["result"]["state"] == "done" and done["result"]["done_at"] is not None
    assert back["error"]["data"] == {"kind": "invalid_params", "field": "state"}
    assert stale["error"]["data"]["kind"] == "conflict"
    assert [w["title"] for w in listed["result"]["items"]] == ["a"]
    assert by_shelf["result"]["total"] == 1
    assert got["result"] == done["result"]
    assert gone["result"] == {"id": made["id"], "uid": made["uid"]}
    assert missing["error"]["data"]["kind"] == "not_found"
    types = [e.type for e in world.published]
    assert types == ["widgets.created", "widgets.created", "widgets.updated", "widgets.deleted"]
    changed = msgspec.json.decode(world.published[2].data)["changed"]
    assert changed == {"state": "done", "done_at": done["result"]["done_at"]}


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("widgets.add", {"title": ""}, "title"),
        ("widgets.add", {"title": "x", "state": "lost"}, "state"),
        ("widgets.add", {"title": "x", "colour": "red"}, "colour"),
        ("widgets.add", {"title": "x", "shelf_id": 1}, "shelf_id"),
        ("widgets.add", {"title": "x", "version": 5}, "version"),
        ("widgets.update", {"id": 1, "done_at": "now"}, "done_at"),
        ("widgets.list", {"order": "colour"}, "order"),
    ],
)
def test_bad_params_name_the_field(
    tmp_path: Path, method: str, params: dict[str, Any], field: str
) -> None:
    reply = World(tmp_path).run(lambda call: call(method, params))
    assert reply["error"]["code"] == -32602
    assert field in reply["error"]["message"]


def test_a_reference_to_nothing_is_not_found(tmp_path: Path) -> None:
    reply = World(tmp_path).run(lambda call: call("widgets.add", {"title": "x", "shelf": 9}))
    assert reply["error"]["data"] == {"kind": "not_found", "field": "shelf", "id": 9}
