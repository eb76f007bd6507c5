"""Run pm-agentd with one more entity, `gadgets`, added as any entity is (README: "How to add
an entity"): a migration, a row Struct, its table, generated CRUD, registered in MODULES.

tests/test_cli_generated.py uses it to show that `pm` grows the noun's commands from the
daemon's `rpc.discover` alone: nothing in client/ names it. Everything else is the real daemon.
"""

from __future__ import annotations

import sys
import tempfile
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import msgspec

from daemon.domain import modules
from daemon.domain.crud import Crud, Rules
from daemon.domain.projects.ref import PROJECT
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods
from daemon.runtime.main import main
from daemon.store import migrations
from daemon.store.batch import Tx
from daemon.store.table import Row, Table

MIGRATION = """
CREATE TABLE gadgets (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    project_id INTEGER REFERENCES projects (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('new', 'done')),
    urgent INTEGER NOT NULL CHECK (urgent IN (0, 1)),
    weight REAL,
    note TEXT,
    command TEXT,
    tags TEXT NOT NULL CHECK (json_valid(tags)),
    extra TEXT NOT NULL CHECK (json_valid(extra))
);
CREATE INDEX gadgets_project ON gadgets (project_id);
"""


class Gadget(Row, kw_only=True):
    project_id: int | None = None
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=80, description="what it is")]
    state: Literal["new", "done"] = "new"
    urgent: bool = False
    weight: float | None = None
    note: str | None = None
    command: str | None = None  # named as pm's own `command`: it must not get in the way
    tags: list[str] = msgspec.field(default_factory=list)
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


GADGETS = Table("gadgets", Gadget, orders={"title": "t.title, t.id"})


class GadgetRules(Rules[Gadget]):
    """Its one rule of its own: a done gadget stays done."""

    def before_update(self, tx: Tx, old: Gadget, changes: dict[str, Any]) -> None:
        if old.state == "done" and changes.get("state") == "new":
            raise InvalidParams("Invalid params: a done gadget stays done", field="state")


methods = Methods()
Crud(
    GADGETS,
    refs=[PROJECT],
    create=("title", "state", "urgent", "weight", "note", "command", "tags", "extra"),
    filters=("state", "urgent"),
    rules=GadgetRules(),
).register(methods)


if __name__ == "__main__":
    folder = Path(tempfile.mkdtemp(prefix="gadgets-"))
    (folder / "9000_gadgets.sql").write_text(MIGRATION)
    shipped = migrations.load() + migrations.load(cast(Traversable, folder))
    modules.MODULES = (*modules.MODULES, sys.modules[__name__])
    sys.exit(main(sys.argv[1:], migrations=shipped))
