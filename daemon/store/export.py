"""Export of every table to JSON or CSV; the format, which daemon/store/importer.py reads back.

JSON: one file, ``{"format": "pm-agent-export", "format_version": 1, "schema_version": N,
"exported_at": ISO-UTC, "sequences": {table: AUTOINCREMENT high-water}, "tables": {name:
{"columns": [...], "rows": [[...], ...]}}}``. A value is a JSON number, string or null; the only
JSON objects are tags for what JSON cannot say: ``{"$blob": base64}`` for a BLOB and
``{"$real": "inf"|"-inf"}`` for an infinite REAL. TEXT is always a JSON string, so a text that
looks like a tag is never mistaken for one.

CSV: a folder with ``manifest.json`` (the same header; per table its columns, row count and file)
and one ``<table>.csv`` per table (header row = column names). NULL is written ``\\N`` and a BLOB
``\\X`` + hex; a text of one or more backslashes followed by ``N`` or ``X``+hex gets one more
backslash, taken off on reading. Numbers come back through the columns' type affinity.

Exports exclude ``schema_migrations`` (the new database records its own), ``sqlite_*``, views
and virtual tables.

The daemon's own exports go to ``<data>/exports/`` as ``pm-agent_<UTC time>[.json]``; only the
newest `KEEP` are kept there (an export is a copy to take elsewhere, not a backup).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import math
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any, Literal, NoReturn

import msgspec

from daemon.platform import private_folders
from daemon.store import migrations as migrations_mod
from daemon.store.clock import utc_now
from daemon.store.connection import quote

FORMAT = "pm-agent-export"
FORMAT_VERSION = 1
_BATCH = 1000
MANIFEST = "manifest.json"
SPECIAL_TEXT = re.compile(r"\\+(?:N|X[0-9A-F]*)\Z")  # what a text must be escaped from
KEEP = 3  # exports kept in <data>/exports: each new one removes those older than the newest 3
EXPORTS = "exports folder"  # what it is called in messages
IMPORTS_DIR = "imports"  # below the data folder: where `pm db import` puts a copy to import
IMPORTS = "imports folder"
_OWN_NAME = re.compile(r"^pm-agent_\d{8}_\d{6}_\d{6}(?:\.json)?$")

Value = int | float | str | bytes | None


class ExportError(Exception):
    """An export or import cannot be done; the message says why and what to do."""


class ExportSummary(msgspec.Struct, frozen=True):
    path: str
    format: Literal["json", "csv"]
    schema_version: int
    tables: dict[str, int]
    bytes: int


class CsvTable(msgspec.Struct, forbid_unknown_fields=True):
    columns: list[str]
    rows: int
    file: str


class Manifest(msgspec.Struct, kw_only=True):
    format: str
    format_version: int
    schema_version: int
    exported_at: str
    sequences: dict[str, int] = {}
    tables: dict[str, CsvTable]


def user_tables(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """User tables (no views, virtual or shadow tables) → their insertable columns."""
    names = sorted(
        str(name)
        for _schema, name, kind, *_ in conn.execute("PRAGMA main.table_list")
        if kind == "table" and not str(name).startswith("sqlite_") and name != "schema_migrations"
    )
    return {
        name: [
            str(col[1]) for col in conn.execute(f"PRAGMA table_xinfo({quote(name)})") if col[6] == 0
        ]
        for name in names
    }


def _has_rowid(conn: sqlite3.Connection, table: str) -> bool:
    return any(row[1] == table and not row[4] for row in conn.execute("PRAGMA main.table_list"))


def _sequences(conn: sqlite3.Connection) -> dict[str, int]:
    if not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'").fetchone():
        return {}
    return {str(n): int(s) for n, s in conn.execute("SELECT name, seq FROM sqlite_sequence")}


def _select(conn: sqlite3.Connection, table: str, columns: list[str]) -> sqlite3.Cursor:
    order = " ORDER BY rowid" if _has_rowid(conn, table) else ""
    return conn.execute(f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)}{order}")


def _batches(cursor: sqlite3.Cursor) -> Iterator[list[tuple[Value, ...]]]:
    while batch := cursor.fetchmany(_BATCH):
        yield batch


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: str) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # a leftover from an interrupted export may have had another mode
    return fd


def _finish(out: IO[Any]) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every table as of the same moment, even with a writer running."""
    if conn.in_transaction:
        raise ExportError("cannot export on a connection that is already inside a transaction")
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


# --- JSON -------------------------------------------------------------------------------------


def _json_value(value: Value) -> object:
    if isinstance(value, bytes):
        return {"$blob": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and math.isinf(value):
        return {"$real": "inf" if value > 0 else "-inf"}
    return value


def _json_row(row: tuple[Value, ...]) -> object:
    if any(isinstance(v, bytes | float) for v in row):
        return [_json_value(v) for v in row]
    return row


def export_json(conn: sqlite3.Connection, path: str) -> ExportSummary:
    """Every table, as of one snapshot, into one JSON file (written aside, then renamed)."""
    partial = path + ".partial"
    enc = msgspec.json.encode
    counts: dict[str, int] = {}
    try:
        with _snapshot(conn), open(_create(partial), "wb", buffering=1 << 20) as out:
            version = migrations_mod.schema_version(conn)
            out.write(b'{"format":' + enc(FORMAT) + b',"format_version":' + enc(FORMAT_VERSION))
            out.write(b',"schema_version":' + enc(version) + b',"exported_at":' + enc(utc_now()))
            names = user_tables(conn)
            sequences = {t: s for t, s in _sequences(conn).items() if t in names}
            out.write(b',"sequences":' + enc(sequences) + b',"tables":{')
            for i, (table, columns) in enumerate(names.items()):
                out.write(b",\n" * bool(i) + enc(table) + b':{"columns":' + enc(columns))
                out.write(b',"rows":[')
                counts[table] = 0
                for batch in _batches(_select(conn, table, columns)):
                    out.write(b",\n" * bool(counts[table]) + b"\n")
                    out.write(b",\n".join(enc(_json_row(row)) for row in batch))
                    counts[table] += len(batch)
                out.write(b"]}")
            out.write(b"}}\n")
            _finish(out)
        os.replace(partial, path)
        fsync_dir(os.path.dirname(os.path.abspath(path)))
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        _reraise(e, path)
    return ExportSummary(path, "json", version, counts, os.stat(path).st_size)


def _reraise(error: BaseException, path: str) -> NoReturn:
    if isinstance(error, sqlite3.Error | OSError):
        raise ExportError(f"could not export to {path}: {error}") from error
    raise error


# --- CSV --------------------------------------------------------------------------------------


def _csv_value(value: Value) -> object:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return "\\" + value if value[:1] == "\\" and SPECIAL_TEXT.match(value) else value
    if isinstance(value, bytes):
        return "\\X" + value.hex().upper()
    if isinstance(value, float) and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"  # SQLite reads these back as ±Inf
    return value


def _prepare_folder(folder: str) -> str:
    if os.path.lexists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
        raise ExportError(f"{folder} already exists and is not an empty folder; choose a new one")
    partial = folder.rstrip(os.sep) + ".partial"
    if os.path.lexists(partial):  # left by an export that was interrupted: only our own files
        if not os.path.isdir(partial) or os.path.islink(partial):
            raise ExportError(f"{partial} is in the way; move it elsewhere and export again")
        entries = os.listdir(partial)
        if any(e != MANIFEST and not e.endswith(".csv") for e in entries):
            raise ExportError(f"{partial} holds files that are not an export's; move it away")
        for entry in entries:
            os.unlink(os.path.join(partial, entry))
        os.rmdir(partial)
    os.mkdir(partial, 0o700)
    os.chmod(partial, 0o700)
    return partial


def export_csv(conn: sqlite3.Connection, folder: str) -> ExportSummary:
    """Every table, as of one snapshot, as CSV files and a manifest in a new 0700 folder."""
    partial = _prepare_folder(folder)
    tables: dict[str, CsvTable] = {}
    try:
        with _snapshot(conn):
            version = migrations_mod.schema_version(conn)
            exported_at, names = utc_now(), user_tables(conn)
            sequences = {t: s for t, s in _sequences(conn).items() if t in names}
            for table, columns in names.items():
                name = f"{table}.csv"
                fd = _create(os.path.join(partial, name))
                with open(fd, "w", encoding="utf-8", newline="", buffering=1 << 20) as text:
                    writer = csv.writer(text)
                    writer.writerow(columns)
                    count = 0
                    for batch in _batches(_select(conn, table, columns)):
                        writer.writerows([_csv_value(v) for v in row] for row in batch)
                        count += len(batch)
                    _finish(text)
                tables[table] = CsvTable(columns, count, name)
        manifest = Manifest(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            schema_version=version,
            exported_at=exported_at,
            sequences=sequences,
            tables=tables,
        )
        with open(_create(os.path.join(partial, MANIFEST)), "wb") as out:
            out.write(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
            _finish(out)
        fsync_dir(partial)
        os.rename(partial, folder)  # replaces an empty folder, never one with files in it
        fsync_dir(os.path.dirname(os.path.abspath(folder)))
    except BaseException as e:
        _remove_folder(partial)
        _reraise(e, folder)
    size = sum(os.path.getsize(os.path.join(folder, e)) for e in os.listdir(folder))
    counts = {name: t.rows for name, t in tables.items()}
    return ExportSummary(folder, "csv", version, counts, size)


# --- the daemon's exports folder ---------------------------------------------------------------
def own_name(moment: datetime, fmt: Literal["json", "csv"]) -> str:
    return moment.astimezone(UTC).strftime("pm-agent_%Y%m%d_%H%M%S_%f") + (
        ".json" if fmt == "json" else ""
    )


def prune(folder: str, keep: int = KEEP) -> list[str]:
    """Remove all but the newest `keep` exports the daemon made in `folder` (checked now):
    only its own names, regular files or folders of export files; returns the names removed."""
    removed = []
    with private_folders.opened(folder, what=EXPORTS, create=False) as fd:
        mine = sorted((n for n in os.listdir(fd) if _OWN_NAME.match(n)), reverse=True)
        for name in mine[keep:]:
            if _remove_own_export(fd, name):
                removed.append(name)
    return removed


def _remove_own_export(folder_fd: int, name: str) -> bool:
    try:
        st = os.lstat(name, dir_fd=folder_fd)
    except FileNotFoundError:
        return False
    if stat.S_ISREG(st.st_mode):
        return private_folders.remove_own_file(folder_fd, name)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return False  # a link or another user's: not an export of ours
    inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
    try:
        for entry in os.listdir(inner):
            if entry == MANIFEST or entry.endswith(".csv"):
                private_folders.remove_own_file(inner, entry)
    finally:
        os.close(inner)
    try:
        os.rmdir(name, dir_fd=folder_fd)
    except OSError:  # something else in it: left alone
        return False
    return True


def _remove_folder(folder: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(folder):
            os.unlink(os.path.join(folder, entry))
        os.rmdir(folder)
