"""An import is read back before it is swapped in (daemon/store/imported.py): every row of
every table the caller names, through the table's own reader, a page at a time, and a row no
method could serve is named by its id. On a real file at the shipped schema, its rows written
by hand as an export from elsewhere would hold them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.domain.kv import KV
from daemon.domain.projects.row import NAME_MAX, PROJECTS
from daemon.store import imported, migrations
from daemon.store.export import ExportError

NOW = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    made = sqlite3.connect(tmp_path / "import.db", isolation_level=None)
    migrations.migrate(made, migrations.load())
    yield made
    made.close()


def add_projects(conn: sqlite3.Connection, count: int, bad: frozenset[int] = frozenset()) -> None:
    """`count` projects; those whose position is in `bad` have a name longer than a project's
    may be (the schema only asks for one character)."""
    start = conn.execute("SELECT count(*) FROM projects").fetchone()[0]
    conn.executemany(
        "INSERT INTO projects (uid, name, path, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        [
            (f"u{n}", "n" * (NAME_MAX + 1) if i in bad else f"p{n}", f"/dev/p{n}", NOW, NOW)
            for i, n in ((i, start + i) for i in range(count))
        ],
    )


def test_every_page_is_read_and_a_bad_row_is_named_by_its_id(conn: sqlite3.Connection) -> None:
    add_projects(conn, 2 * imported.PAGE + 5, frozenset({imported.PAGE + 3}))  # in page two
    bad_id = conn.execute("SELECT id FROM projects WHERE length(name) > 255").fetchone()[0]
    with pytest.raises(ExportError) as refused:
        imported.read_back(conn, "the-export.json", [KV, PROJECTS])
    message = str(refused.value)
    assert message.startswith(f"the-export.json: table 'projects', the row with id {bad_id}: ")
    assert "read it back" in message and f"length <= {NAME_MAX}" in message


def test_a_sound_file_reads_back_and_the_last_page_is_read_too(conn: sqlite3.Connection) -> None:
    add_projects(conn, imported.PAGE + 1)
    conn.execute(
        "INSERT INTO kv (uid, namespace, key, value, created_at, updated_at) "
        "VALUES ('k', 'ns', 'k', '1', ?, ?)",
        (NOW, NOW),
    )
    imported.read_back(conn, "the-export.json", [KV, PROJECTS])  # nothing to refuse
    conn.execute("UPDATE projects SET languages = '\"python\"' WHERE id = 7")
    with pytest.raises(ExportError, match=r"table 'projects', the row with id 7: .*languages"):
        imported.read_back(conn, "the-export.json", [KV, PROJECTS])
    conn.execute("UPDATE projects SET languages = '{}'")
    add_projects(conn, 1, frozenset({0}))  # the very last row, alone in its page
    last = conn.execute("SELECT max(id) FROM projects").fetchone()[0]
    with pytest.raises(ExportError, match=f"table 'projects', the row with id {last}: "):
        imported.read_back(conn, "the-export.json", [KV, PROJECTS])
