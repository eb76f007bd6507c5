"""The migration runner on real files, and the daemon's refusals."""

from __future__ import annotations

import sqlite3
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import cast

import pytest

from daemon.store import migrations
from daemon.store.migrations import MigrationError
from tests.conftest import DaemonFactory


def folder(tmp_path: Path, files: dict[str, str]) -> Traversable:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (tmp_path / name).write_text(sql)
    return cast(Traversable, tmp_path)


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_shipped_migrations_apply_and_are_recorded(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    shipped = migrations.load()
    applied = migrations.migrate(conn, shipped)
    assert [m.version for m in applied] == [m.version for m in shipped] and applied
    ledger = conn.execute(
        "SELECT version, name, sha256, applied_at FROM schema_migrations"
    ).fetchall()
    assert [(v, n, s) for v, n, s, _ in ledger] == [(m.version, m.name, m.sha256) for m in shipped]
    assert all(at.endswith("Z") for *_, at in ledger)
    assert migrations.migrate(conn, shipped) == []  # idempotent
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"events", "kv", "schema_migrations"} <= tables


def test_statement_splitting_keeps_trigger_bodies_whole(tmp_path: Path) -> None:
    sql = """
    -- a comment
    CREATE TABLE t (x INTEGER);
    CREATE TRIGGER t_guard BEFORE UPDATE ON t BEGIN
        SELECT RAISE(ABORT, 'no; not allowed');
    END;
    INSERT INTO t VALUES (1);  -- trailing comment
    -- only a comment at the end
    """
    assert len(list(migrations.statements(sql))) == 3
    with pytest.raises(MigrationError, match="unterminated"):
        list(migrations.statements("CREATE TABLE u (x INTEGER)"))


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    source = folder(
        tmp_path / "m",
        {
            "0001_ok.sql": "CREATE TABLE a (x INTEGER);",
            "0002_bad.sql": "CREATE TABLE b (x INTEGER);\nINSERT INTO nowhere VALUES (1);",
        },
    )
    conn = connect(tmp_path / "b.db")
    with pytest.raises(MigrationError, match=r"0002_bad\.sql failed: no such table: nowhere"):
        migrations.migrate(conn, migrations.load(source))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "a" in tables and "b" not in tables  # 0001 committed on its own, 0002 not at all
    assert migrations.schema_version(conn) == 1


def test_edited_applied_migration_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "c.db")
    migrations.migrate(
        conn,
        migrations.load(
            folder(
                tmp_path / "v1",
                {
                    "0001_first.sql": "CREATE TABLE a (x INTEGER);",
                },
            )
        ),
    )
    edited = migrations.load(
        folder(
            tmp_path / "v2",
            {
                "0001_first.sql": "CREATE TABLE a (x INTEGER, y TEXT);",
            },
        )
    )
    with pytest.raises(MigrationError, match=r"0001_first\.sql was applied .* has changed since"):
        migrations.pending(conn, edited)


def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "d.db")
    newer = migrations.load(
        folder(
            tmp_path / "new",
            {
                "0001_a.sql": "CREATE TABLE a (x INTEGER);",
                "0002_b.sql": "CREATE TABLE b (x INTEGER);",
            },
        )
    )
    migrations.migrate(conn, newer)
    with pytest.raises(MigrationError, match="schema version 2, newer than this pm-agent"):
        migrations.pending(conn, newer[:1])


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    source = folder(tmp_path / "dup", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="two migrations share version 0001"):
        migrations.load(source)


def _first_run(make_daemon: DaemonFactory) -> Path:
    daemon = make_daemon()
    daemon.start()
    assert daemon.stop() == 0
    return daemon.db_path


def test_daemon_refuses_a_database_newer_than_itself(make_daemon: DaemonFactory) -> None:
    db_path = _first_run(make_daemon)
    conn = connect(db_path)
    conn.execute(
        "INSERT INTO schema_migrations VALUES (999, 'from_the_future', 'x', '2030-01-01T00:00:00Z')"
    )
    conn.close()
    daemon = make_daemon()
    daemon.start(wait=False)
    assert daemon.wait() == 1
    assert "newer than this pm-agent knows" in daemon.log()
    assert not Path(daemon.socket_path).exists()  # it cleaned up its socket on the way out


def test_daemon_refuses_an_edited_migration(make_daemon: DaemonFactory) -> None:
    db_path = _first_run(make_daemon)
    conn = connect(db_path)
    conn.execute("UPDATE schema_migrations SET sha256 = 'deadbeef' WHERE version = 1")
    conn.close()
    daemon = make_daemon()
    daemon.start(wait=False)
    assert daemon.wait() == 1
    assert "has changed since" in daemon.log()
