"""A new database built from an export (the format is described in daemon/store/export.py).

Everything is checked before the new file is created: the marker, the schema version, every
table's columns against the shipped migrations, every row readable and of the right length,
every value within the limits the caller gives (`ImportRules`: the API's own, so a row could
have come from the API). The build then runs the migrations up to the export's version, loads
the rows (triggers set aside, foreign keys checked once at the end), runs the newer migrations
and the caller's `finish` (which may settle or refuse rows, daemon/store/imported.py).

An export is read as untrusted (daemon/platform/untrusted.py): confined to `within`, never a
FIFO or a device, a link only if it stays inside; no value is decoded whole before its size is
known to be within its limit, so a huge value costs no more memory than the limit.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Literal

import msgspec

from daemon.store import migrations as migrations_mod
from daemon.store.connection import quote
from daemon.store.export import (
    ExportError,
    Value,
    fsync_dir,
    user_tables,
)
from daemon.store.import_limits import ImportRules
from daemon.store.import_sources import Source, open_source, row_error
from daemon.store.migrations import Migration, MigrationError


class ImportSummary(msgspec.Struct, frozen=True):
    source: str
    format: Literal["json", "csv"]
    schema_version: int
    migrated_to: int
    tables: dict[str, int]


# --- validating and building ------------------------------------------------------------------


class _Schema(msgspec.Struct, frozen=True):
    tables: dict[str, list[str]]
    autoincrement: frozenset[str]


def _schema(conn: sqlite3.Connection) -> _Schema:
    autoinc = frozenset(
        str(name)
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table'")
        if sql and re.search(r"\bAUTOINCREMENT\b", sql, re.IGNORECASE)
    )
    return _Schema(user_tables(conn), autoinc)


def _schema_at(migrations: list[Migration]) -> _Schema:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrations_mod.migrate(conn, migrations)
        return _schema(conn)
    except MigrationError as e:
        raise ExportError(f"this pm-agent's own migrations fail ({e}); reinstall it") from e
    finally:
        conn.close()


def _validate_header(src: Source, migrations: list[Migration]) -> None:
    version, shipped = src.schema_version, {m.version for m in migrations}
    if version > max(shipped, default=0):
        raise ExportError(
            f"{src.shown} is at schema version {version}, but this pm-agent knows only up to "
            f"{max(shipped, default=0)}: the export was made by a newer pm-agent. Upgrade "
            "pm-agent and import again."
        )
    if version < 0 or (version and version not in shipped):
        raise ExportError(f"{src.shown}: schema version {version} is not one pm-agent ever had")
    schema = _schema_at([m for m in migrations if m.version <= version])
    unknown, missing = set(src.columns) - set(schema.tables), set(schema.tables) - set(src.columns)
    if unknown or missing:
        raise ExportError(
            f"{src.shown}: the tables do not match schema version {version} "
            f"(unknown: {sorted(unknown) or 'none'}; missing: {sorted(missing) or 'none'})"
        )
    for table, columns in src.columns.items():
        want = schema.tables[table]
        extra, absent = [c for c in columns if c not in want], [c for c in want if c not in columns]
        if extra or absent or len(set(columns)) != len(columns):
            raise ExportError(
                f"{src.shown}: table {table!r} has the wrong columns for schema version {version} "
                f"(unknown: {extra or 'none'}; missing: {absent or 'none'}; "
                f"each exactly once: {want})"
            )
    for table, seq in src.sequences.items():
        if table not in schema.autoincrement or seq < 0:
            raise ExportError(f"{src.shown}: invalid sequence {table!r} = {seq}")


def _insert(conn: sqlite3.Connection, src: Source, table: str) -> int:
    columns = src.columns[table]
    sql = (
        f"INSERT INTO {quote(table)} ({', '.join(map(quote, columns))}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    done = 0

    def counted() -> Iterator[list[Value]]:
        nonlocal done
        for row in src.rows(table):
            done += 1
            yield row

    try:
        conn.executemany(sql, counted())  # a failure is always on the row counted last
    except (sqlite3.Error, OverflowError) as e:
        raise row_error(src.shown, table, done, f"{e}; correct or remove the row") from e
    return done


def _check_foreign_keys(conn: sqlite3.Connection, where: str) -> None:
    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
    if not broken:
        return
    described = []
    for table, rowid, parent, fk in broken[:3]:
        columns = [
            r[3] for r in conn.execute(f"PRAGMA foreign_key_list({quote(table)})") if r[0] == fk
        ]
        described.append(f"{table} rowid {rowid}: {', '.join(columns)} → no such {parent} row")
    raise ExportError(
        f"{where}: {len(broken)} rows refer to rows missing from the export "
        f"({'; '.join(described)}); the export is incomplete or was edited"
    )


def _load(conn: sqlite3.Connection, src: Source, schema: _Schema) -> dict[str, int]:
    """Every row in one transaction, triggers set aside (a restore is not a new change)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("PRAGMA defer_foreign_keys = ON")
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY rowid"
        ).fetchall()
        for name, _sql in triggers:
            conn.execute(f"DROP TRIGGER {quote(name)}")
        counts = {table: _insert(conn, src, table) for table in src.columns}
        for table, seq in src.sequences.items():
            if not conn.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, table)
            ).rowcount:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, seq))
        for _name, sql in triggers:
            conn.execute(sql)
        _check_foreign_keys(conn, src.shown)
        for table in schema.autoincrement:
            top = conn.execute(f"SELECT max(rowid) FROM {quote(table)}").fetchone()[0]
            high = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))
            if top is not None and (high.fetchone() or (0,))[0] < top:
                raise ExportError(f"{table}: the AUTOINCREMENT high-water is below its rows")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return counts


def _finish(conn: sqlite3.Connection, src: Source, rules: ImportRules) -> None:
    if rules.finish is None:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        rules.finish(conn, src.shown)
        _check_foreign_keys(conn, src.shown)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _build(
    src: Source, migrations: list[Migration], dest: str, rules: ImportRules
) -> ImportSummary:
    conn = sqlite3.connect(dest, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrations_mod.migrate(conn, [m for m in migrations if m.version <= src.schema_version])
        counts = _load(conn, src, _schema(conn))
        try:
            migrations_mod.migrate(conn, migrations)
        except MigrationError as e:
            raise ExportError(f"{src.shown} imported, but upgrading its schema failed: {e}") from e
        _finish(conn, src, rules)
        check = conn.execute("PRAGMA integrity_check").fetchall()
        if check != [("ok",)]:
            raise ExportError(f"the imported database fails its integrity check: {check[:3]}")
        migrated_to = migrations_mod.schema_version(conn)
    finally:
        conn.close()
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o600)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(os.path.dirname(os.path.abspath(dest)))
    return ImportSummary(src.shown, src.kind, src.schema_version, migrated_to, counts)


def _discard(dest: str) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest + suffix)


def build_from_export(
    source: str,
    migrations: list[Migration],
    dest_path: str,
    *,
    rules: ImportRules | None = None,
    within: Sequence[str] | None = None,
    shown_as: str | None = None,
) -> ImportSummary:
    """A new database file at `dest_path` holding an export's rows, at the newest schema.

    Everything is checked before `dest_path` is created; on any failure it is removed again.
    The file is left closed, fsynced, 0600 and in rollback-journal mode, for the caller to
    move into place. `within`: the folders the export (and every file of it) must lie in;
    `shown_as`: how messages name the export (the file a user gave, when `source` is a copy).
    """
    if os.path.lexists(dest_path):
        raise ExportError(f"{dest_path} already exists; an import builds a new file")
    rules = rules or ImportRules()
    shown = shown_as or source
    src = open_source(source, shown, within, rules)
    try:
        _validate_header(src, migrations)
        for table in src.columns:
            for _row in src.rows(table):  # every row readable and of the right length
                pass
        try:
            os.close(os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            raise ExportError(f"cannot create {dest_path}: {e.strerror}") from e
        try:
            return _build(src, migrations, dest_path, rules)
        except BaseException as e:
            _discard(dest_path)
            if isinstance(e, sqlite3.Error | OSError | MigrationError):
                raise ExportError(f"building the new database from {shown} failed: {e}") from e
            raise
    finally:
        src.close()
