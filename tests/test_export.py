"""Export to JSON and CSV and a new database built back from it, on real SQLite files."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from daemon.store import connection, migrations
from daemon.store.export import ExportError, ExportSummary, export_csv, export_json
from daemon.store.importer import build_from_export

SHIPPED = migrations.load()
NEWEST = SHIPPED[-1].version
NOW = "2024-05-01T10:00:00.000000Z"
TRICKY_TEXT = [
    "",
    "\\N",
    "\\\\N",
    "\\X00FF",
    "N",
    'a, "quoted", comma',
    "line one\nline two\r\nthree",
    "ünïcødé ✓ 日本語 🚀",
    '{"$blob": "AAAA"}',
    "nul\x00inside",
]
Export = Callable[[sqlite3.Connection, str], ExportSummary]
EXPORTERS: dict[str, Export] = {"json": export_json, "csv": export_csv}


def new_db(path: Path, upto: int = NEWEST) -> sqlite3.Connection:
    conn = connection.open_writer(str(path), synchronous="NORMAL", busy_timeout_ms=1000)
    migrations.migrate(conn, [m for m in SHIPPED if m.version <= upto])
    return conn


def fill_core(conn: sqlite3.Connection) -> None:
    """events and kv (0001), projects and ignored_paths (0002)."""
    for i in range(1, 8):
        conn.execute(
            "INSERT INTO events (ts, topic, type, data) VALUES (?, 'kv', 'kv.set', ?)",
            (NOW, f'{{"key": "k{i}", "note": "ünï, \\n {i}"}}'),
        )
    conn.execute("DELETE FROM events WHERE seq >= 6")  # retention: the high-water stays at 7
    for i, text in enumerate(TRICKY_TEXT):
        conn.execute(
            "INSERT INTO kv (namespace, key, value, created_at, updated_at, expires_at) "
            "VALUES ('ns', ?, ?, ?, ?, ?)",
            (text or "empty", msgspec.json.encode(text).decode(), NOW, NOW, None if i % 2 else ""),
        )
    conn.execute(
        "INSERT INTO projects (id, name, path, description, created_at, updated_at, present, "
        "missing_since, device, inode, head_sha) VALUES (2, 'wt, \"b\"', '/src/wt\nx', NULL, "
        "?, ?, 0, ?, ?, ?, ?)",
        (NOW, NOW, NOW, 1.5, float("inf"), b"\x00\xffblob"),
    )
    conn.execute(
        "INSERT INTO projects (id, name, path, description, created_at, updated_at, device, "
        "inode, worktree_of, remotes, languages) VALUES (1, 'main', '/src/main', '', ?, ?, ?, ?, "
        "2, '[\"origin\"]', '{\"Python\": 0.75}')",  # a row exported after this one
        (NOW, NOW, 2**63 - 1, -(2**63)),
    )
    for path in ("/tmp/z", "/tmp/a", "\\N"):
        conn.execute("INSERT INTO ignored_paths (path, created_at) VALUES (?, ?)", (path, NOW))
    conn.execute("DELETE FROM ignored_paths WHERE path = '/tmp/a'")  # a gap in the rowids


def fill_all(conn: sqlite3.Connection) -> None:
    fill_core(conn)
    conn.execute(
        "INSERT INTO quality_metrics (project_id, quality_score, test_coverage, calculated_at, "
        "tests_component, ci_component, docs_component, metrics_version, detected, gains, "
        "error) VALUES (1, 87, NULL, ?, 33.333333333333336, 0.1, 100.0, 3, "
        "'{\"ci\": [\"github\"]}', '[]', '')",
        (NOW,),
    )
    conn.execute(
        "INSERT INTO quality_metrics (project_id, calculated_at, metrics_version, error) "
        "VALUES (2, ?, 3, ?)",
        (NOW, "\\N"),
    )
    conn.execute(
        "INSERT INTO jobs (kind, source, status, project_id, prompt, response, metadata, "
        "attempts, created_at, updated_at, finished_at) VALUES ('scan', 'daemon', 'completed', "
        "1, ?, ?, '{\"n\": 1}', 2, ?, ?, ?)",
        ('say "hi",\nplease', "x" * 200_000, NOW, NOW, NOW),  # beyond csv's default limit
    )
    conn.execute(
        "INSERT INTO jobs (kind, source, session_id, prompt, created_at, updated_at) "
        "VALUES ('api', 'client', '', '\\\\\\N', ?, ?)",
        (NOW, NOW),
    )
    conn.execute(  # a line longer than the CSV reader copies whole, quotes and commas in it
        "INSERT INTO jobs (kind, source, prompt, created_at, updated_at) "
        "VALUES ('long', 'client', ?, ?, ?)",
        ('say "hi", ' * 150_000 + "\nand a last line", NOW, NOW),
    )


def user_tables(conn: sqlite3.Connection) -> list[str]:
    """Tables of rows (no full-text index: a virtual table, nor its shadow tables)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' "
            "AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name"
        )
    ]


def contents(path: Path) -> dict[str, list[list[tuple[str, Any]]]]:
    """Every table's rows with each value's type (1 == 1.0 must not pass for equal)."""
    conn = sqlite3.connect(path)
    try:
        return {
            table: [
                [(type(v).__name__, v) for v in row]
                for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
            ]
            for table in user_tables(conn)
        }
    finally:
        conn.close()


def schema_objects(path: Path) -> set[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return set(conn.execute("SELECT type, name, sql FROM sqlite_schema WHERE sql NOT NULL"))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def source_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "pm.db"
    conn = new_db(path)
    fill_all(conn)
    conn.close()
    return path


@pytest.fixture(scope="module")
def exports(source_db: Path) -> dict[str, Path]:
    out = source_db.parent
    conn = connection.open_reader(str(source_db), busy_timeout_ms=1000)
    try:
        export_json(conn, str(out / "export.json"))
        export_csv(conn, str(out / "export-csv"))
    finally:
        conn.close()
    return {"json": out / "export.json", "csv": out / "export-csv"}


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if p.name.startswith(dest.name))


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_round_trip_is_exact(
    kind: str, source_db: Path, exports: dict[str, Path], tmp_path: Path
) -> None:
    dest = tmp_path / "new.db"
    summary = build_from_export(str(exports[kind]), SHIPPED, str(dest))

    assert (summary.format, summary.schema_version, summary.migrated_to) == (kind, NEWEST, NEWEST)
    assert contents(dest) == contents(source_db)
    assert summary.tables == {t: len(rows) for t, rows in contents(source_db).items()}
    assert schema_objects(dest) == schema_objects(source_db)  # triggers are back
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert leftovers(dest) == ["new.db"]
    conn = sqlite3.connect(dest, isolation_level=None)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert migrations.schema_version(conn) == NEWEST
        assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone() == (
            7,
        )
        conn.execute("INSERT INTO events (ts, topic, type) VALUES (?, 'kv', 'kv.set')", (NOW,))
        assert conn.execute("SELECT max(seq) FROM events").fetchone() == (8,)  # never reused
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE events SET ts = ts")
    finally:
        conn.close()


def test_json_file_format(exports: dict[str, Path], source_db: Path) -> None:
    path = exports["json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not Path(str(path) + ".partial").exists()
    doc = msgspec.json.decode(path.read_bytes())
    assert (doc["format"], doc["format_version"], doc["schema_version"]) == (
        "pm-agent-export",
        1,
        NEWEST,
    )
    assert doc["exported_at"].endswith("Z") and doc["sequences"] == {"events": 7}
    assert "schema_migrations" not in doc["tables"] and "quality_latest" not in doc["tables"]
    projects = doc["tables"]["projects"]
    row = dict(zip(projects["columns"], projects["rows"][1], strict=True))
    assert row["head_sha"] == {"$blob": "AP9ibG9i"} and row["inode"] == {"$real": "inf"}
    assert row["description"] is None and row["device"] == 1.5
    texts = {r[2] for r in doc["tables"]["kv"]["rows"]}
    assert '{"$blob": "AAAA"}' in texts  # a text that looks like a tag stays a string


def test_csv_folder_format(exports: dict[str, Path]) -> None:
    folder = exports["csv"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    manifest = msgspec.json.decode((folder / "manifest.json").read_bytes())
    assert manifest["format"] == "pm-agent-export" and manifest["schema_version"] == NEWEST
    assert manifest["tables"]["kv"]["rows"] == len(TRICKY_TEXT)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json", *(t["file"] for t in manifest["tables"].values())]
    )
    kv = (folder / "kv.csv").read_bytes().decode("utf-8")
    # NULL (the expires_at before uid and version), then "\N" and "\\N" as text, then ""
    assert re.search(r",\\N,[0-9a-f-]{36},1\r\n", kv) and ",\\\\N," in kv
    assert ",\\\\\\N," in kv and re.search(r"Z,,[0-9a-f-]{36},1\r\n", kv)


def test_csv_export_wants_a_new_or_empty_folder(source_db: Path, tmp_path: Path) -> None:
    conn = connection.open_reader(str(source_db), busy_timeout_ms=1000)
    try:
        (tmp_path / "empty").mkdir()
        assert export_csv(conn, str(tmp_path / "empty")).tables["events"] == 5
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "keep.txt").write_text("mine")
        with pytest.raises(ExportError, match="not an empty folder"):
            export_csv(conn, str(tmp_path / "full"))
        assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    finally:
        conn.close()


def test_export_is_one_snapshot_while_a_writer_commits(source_db: Path, tmp_path: Path) -> None:
    """Between the export's first and later tables, another connection commits to all of them."""
    writer = connection.open_writer(str(source_db), synchronous="NORMAL", busy_timeout_ms=1000)
    reader = connection.open_reader(str(source_db), busy_timeout_ms=1000)
    before = contents(source_db)
    wrote: list[str] = []

    def write_once(statement: str) -> None:
        if not wrote and 'FROM "events"' in statement:
            wrote.append(statement)
            writer.execute("INSERT INTO events (ts, topic, type) VALUES (?, 'kv', 'kv.x')", (NOW,))
            writer.execute("INSERT INTO ignored_paths VALUES ('/tmp/late', ?)", (NOW,))
            writer.execute("DELETE FROM quality_metrics")

    reader.set_trace_callback(write_once)
    try:
        summary = export_json(reader, str(tmp_path / "snap.json"))
    finally:
        reader.close()
        writer.execute("DELETE FROM ignored_paths WHERE path = '/tmp/late'")
        writer.close()
    assert wrote
    assert summary.tables == {t: len(rows) for t, rows in before.items()}
    build_from_export(str(tmp_path / "snap.json"), SHIPPED, str(tmp_path / "snap.db"))
    assert contents(tmp_path / "snap.db") == before


def test_an_older_export_is_imported_and_migrated(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    conn = new_db(old, upto=2)
    fill_core(conn)
    conn.close()
    reader = connection.open_reader(str(old), busy_timeout_ms=1000)
    try:
        export_json(reader, str(tmp_path / "old.json"))
        export_csv(reader, str(tmp_path / "old-csv"))
    finally:
        reader.close()
    for kind, source in (("json", "old.json"), ("csv", "old-csv")):
        dest = tmp_path / f"{kind}.db"
        summary = build_from_export(str(tmp_path / source), SHIPPED, str(dest))
        assert (summary.schema_version, summary.migrated_to) == (2, NEWEST)
        assert set(summary.tables) == {"events", "kv", "projects", "ignored_paths"}
        got, want = contents(dest), contents(old)
        # Migrated: every old column as it was, then what later migrations added (a uid
        # for every row, version 1).
        for table, rows in want.items():
            assert len(got[table]) == len(rows)
            kept = [row[: len(old)] for row, old in zip(got[table], rows, strict=True)]
            assert kept == rows
        for table in ("kv", "projects"):
            added = [row[len(want[table][0]) :] for row in got[table]]  # (uid, version)
            assert len(added) == len(want[table]) > 0
            assert all(a[1] == ("int", 1) and len(a[0][1]) == 36 for a in added)
            assert len({a[0][1] for a in added}) == len(added)
        assert got["quality_metrics"] == got["jobs"] == []


def edited_json(exports: dict[str, Path], tmp_path: Path, edit: Callable[[Any], None]) -> str:
    doc = msgspec.json.decode(exports["json"].read_bytes())
    edit(doc)
    path = tmp_path / "edited.json"
    path.write_bytes(msgspec.json.encode(doc))
    return str(path)


def drop_column(doc: Any, table: str, column: str) -> None:
    t = doc["tables"][table]
    i = t["columns"].index(column)
    del t["columns"][i]
    for row in t["rows"]:
        del row[i]


def set_value(doc: Any, table: str, row: int, column: str, value: Any) -> None:
    t = doc["tables"][table]
    t["rows"][row][t["columns"].index(column)] = value


JSON_EDITS: dict[str, tuple[Callable[[Any], None], str]] = {
    "marker": (lambda d: d.update(format="something-else"), "not a pm-agent export"),
    "format version": (lambda d: d.update(format_version=2), "made by a newer pm-agent"),
    "newer schema": (lambda d: d.update(schema_version=NEWEST + 1), "made by a newer pm-agent"),
    "schema type": (lambda d: d.update(schema_version="4"), r"Expected `int`.*schema_version"),
    "unknown table": (
        lambda d: d["tables"].update(extra={"columns": ["a"], "rows": []}),
        r"unknown: \['extra'\]",
    ),
    "missing table": (lambda d: d["tables"].pop("jobs"), r"missing: \['jobs'\]"),
    "missing column": (
        lambda d: drop_column(d, "kv", "expires_at"),
        r"'kv' has the wrong columns.*missing: \['expires_at'\]",
    ),
    "unknown column": (
        lambda d: d["tables"]["kv"]["columns"].__setitem__(6, "expiry"),
        r"unknown: \['expiry'\]; missing: \['expires_at'\]",
    ),
    "row length": (
        lambda d: d["tables"]["kv"]["rows"][3].pop(),
        "table 'kv', row 4: has 8 values, expected 9",
    ),
    "bad value": (
        lambda d: set_value(d, "kv", 0, "key", [1]),
        r"table 'kv', row 1: Expected `int \| float \| str \| object \| null`, got `array`",
    ),
    "bad tag": (
        lambda d: set_value(d, "kv", 1, "key", {"$blob": "not base64!"}),
        "table 'kv', row 2",
    ),
    "check constraint": (
        lambda d: set_value(d, "jobs", 1, "status", "exploded"),
        "table 'jobs', row 2: CHECK constraint failed",
    ),
    "not null": (
        lambda d: set_value(d, "projects", 0, "name", None),
        "table 'projects', row 1: NOT NULL constraint failed: projects.name",
    ),
    "unique": (
        lambda d: set_value(d, "kv", 1, "key", d["tables"]["kv"]["rows"][0][2]),
        "table 'kv', row 2: UNIQUE constraint failed",
    ),
    "foreign key": (
        lambda d: set_value(d, "quality_metrics", 1, "project_id", 99),
        r"1 rows refer to rows missing.*quality_metrics rowid 2: project_id → no such projects",
    ),
    "huge integer": (lambda d: set_value(d, "projects", 0, "device", 2**64), "row 1: .*too large"),
    "sequence": (lambda d: d["sequences"].update(kv=3), "invalid sequence 'kv'"),
}


@pytest.mark.parametrize("case", JSON_EDITS)
def test_a_bad_json_export_is_refused_and_leaves_nothing(
    case: str, exports: dict[str, Path], tmp_path: Path
) -> None:
    edit, message = JSON_EDITS[case]
    source = edited_json(exports, tmp_path, edit)
    dest = tmp_path / "new.db"
    with pytest.raises(ExportError, match=message):
        build_from_export(source, SHIPPED, str(dest))
    assert leftovers(dest) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "truncated"),
        (b"{not json", "malformed"),
        (b"", "is empty"),
        (b"[1, 2]", "Expected `object`, got `array`"),
    ],
)
def test_an_unreadable_json_file_is_refused(
    text: bytes | None, message: str, exports: dict[str, Path], tmp_path: Path
) -> None:
    whole = exports["json"].read_bytes()
    source = tmp_path / "bad.json"
    source.write_bytes(whole[: len(whole) // 2] if text is None else text)
    dest = tmp_path / "new.db"
    with pytest.raises(ExportError, match=message):
        build_from_export(str(source), SHIPPED, str(dest))
    assert leftovers(dest) == []


def copied_csv(exports: dict[str, Path], tmp_path: Path) -> Path:
    folder = tmp_path / "csv"
    folder.mkdir()
    for f in exports["csv"].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def test_a_bad_csv_export_is_refused_and_leaves_nothing(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    folder = copied_csv(exports, tmp_path)
    dest = tmp_path / "new.db"
    kv = (folder / "kv.csv").read_bytes()

    def refused(message: str) -> None:
        with pytest.raises(ExportError, match=message):
            build_from_export(str(folder), SHIPPED, str(dest))
        assert leftovers(dest) == []

    (folder / "jobs.csv").unlink()
    refused("lists jobs.csv for table 'jobs', but it cannot be read.*incomplete")
    (folder / "jobs.csv").write_bytes((exports["csv"] / "jobs.csv").read_bytes())
    (folder / "kv.csv").write_bytes(kv.replace(b"ns,", b"ns,extra,", 1))
    refused(r"kv.csv: table 'kv', row 1: has more than 9 values, expected 9")
    (folder / "kv.csv").write_bytes(kv[: kv.rindex(b"\r\n10,ns,") + 2])
    refused(r"kv.csv has 9 rows but the manifest says 10")
    (folder / "kv.csv").write_bytes(kv.replace(b"namespace", b"space", 1))
    refused("header row")
    (folder / "kv.csv").write_bytes(kv.replace(b"ns,", b",", 1))
    refused("table 'kv', row 1: CHECK constraint failed")
    (folder / "kv.csv").write_bytes(kv)
    manifest = (folder / "manifest.json").read_bytes()
    (folder / "manifest.json").write_bytes(manifest.replace(b'"kv.csv"', b'"../kv.csv"'))
    refused("unsafe file")
    (folder / "manifest.json").unlink()
    refused("not a CSV export")
    (folder / "manifest.json").write_bytes(manifest)
    assert build_from_export(str(folder), SHIPPED, str(dest)).tables["kv"] == len(TRICKY_TEXT)


def test_an_existing_destination_is_never_touched(exports: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "pm.db"
    dest.write_bytes(b"precious")
    with pytest.raises(ExportError, match="already exists"):
        build_from_export(str(exports["json"]), SHIPPED, str(dest))
    assert dest.read_bytes() == b"precious"
    with pytest.raises(ExportError, match="does not exist"):
        build_from_export(str(tmp_path / "nowhere"), SHIPPED, str(tmp_path / "x.db"))


def test_an_export_with_no_migrations_known_is_refused(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match="made by a newer pm-agent"):
        build_from_export(str(exports["json"]), SHIPPED[:2], str(tmp_path / "x.db"))
    assert not os.path.exists(tmp_path / "x.db")
