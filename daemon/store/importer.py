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

import base64
import contextlib
import mmap
import os
import re
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import msgspec

from daemon.platform import untrusted
from daemon.store import csvtext
from daemon.store import migrations as migrations_mod
from daemon.store.connection import quote
from daemon.store.export import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SPECIAL_TEXT,
    ExportError,
    Manifest,
    Value,
    fsync_dir,
    user_tables,
)
from daemon.store.import_limits import ColumnLimit, ImportRules, surely_over, within
from daemon.store.migrations import Migration, MigrationError

_MANIFEST_MAX = 16 << 20  # a manifest lists tables and their columns: a few KiB
_NAME_MAX = 1024  # bytes of a column name in a CSV header row

_JsonValue = int | float | str | None | dict[str, str]
_NESTED = "it nests too deeply to be a pm-agent export"


class ImportSummary(msgspec.Struct, frozen=True):
    source: str
    format: Literal["json", "csv"]
    schema_version: int
    migrated_to: int
    tables: dict[str, int]


class _Marker(msgspec.Struct):
    format: Any = None
    format_version: Any = None


class _JsonTable(msgspec.Struct, forbid_unknown_fields=True):
    columns: list[str]
    rows: list[msgspec.Raw]


class _JsonExport(msgspec.Struct, kw_only=True):
    schema_version: int
    sequences: dict[str, int] = {}
    tables: dict[str, _JsonTable]


# --- reading an export ------------------------------------------------------------------------


def _from_csv(text: str) -> Value:
    if text[:1] != "\\" or not SPECIAL_TEXT.match(text):
        return text
    if text == "\\N":
        return None
    if text[1] == "X":
        return bytes.fromhex(text[2:])
    return text[1:]


def _check_marker(where: str, marker: _Marker) -> None:
    if marker.format != FORMAT:
        raise ExportError(
            f"{where} is not a pm-agent export (its format is {marker.format!r}, "
            f"expected {FORMAT!r})"
        )
    version = marker.format_version
    if type(version) is not int or version < 1:
        raise ExportError(f"{where} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ExportError(
            f"{where} uses export format {version}, newer than this pm-agent reads "
            f"({FORMAT_VERSION}): the export was made by a newer pm-agent. Upgrade pm-agent "
            "and import again."
        )


def _row_error(where: str, table: str, row: int, problem: object) -> ExportError:
    return ExportError(f"{where}: table {table!r}, row {row}: {problem}")


def _untag(value: _JsonValue) -> Value:
    if not isinstance(value, dict):
        return value
    if value.keys() == {"$blob"}:
        return base64.b64decode(value["$blob"], validate=True)
    if value.keys() == {"$real"} and value["$real"] in ("inf", "-inf"):
        return float(value["$real"])
    raise ValueError(f"{value!r} is not a value (only $blob and $real objects are)")


def _cannot_read(shown: str, e: OSError) -> ExportError:
    why = str(e) if isinstance(e, untrusted.RefusedFile) else e.strerror or str(e)
    return ExportError(f"cannot read {shown}: {why}")


_raw_row = msgspec.json.Decoder(list[msgspec.Raw])
_whole_row = msgspec.json.Decoder(list[_JsonValue])
_value = msgspec.json.Decoder(_JsonValue)


class _JsonSource:
    kind: Literal["json", "csv"] = "json"

    def __init__(self, path: str, shown: str, within: Sequence[str] | None, rules: ImportRules):
        self.path, self.shown, self._rules = path, shown, rules
        try:
            with untrusted.open_file(path, within=within, max_bytes=sys.maxsize) as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise ExportError(f"{shown} is empty, not a pm-agent export") from None
        except OSError as e:
            raise _cannot_read(shown, e) from e
        try:
            _check_marker(shown, msgspec.json.decode(self._map, type=_Marker))
            doc = msgspec.json.decode(self._map, type=_JsonExport)
        except msgspec.DecodeError as e:
            self._map.close()
            raise ExportError(f"{shown} is not a readable pm-agent export: {e}") from e
        except RecursionError:
            self._map.close()
            raise ExportError(f"{shown} is not a readable pm-agent export: {_NESTED}") from None
        except BaseException:
            self._map.close()
            raise
        self.schema_version, self.sequences = doc.schema_version, doc.sequences
        self.columns = {name: t.columns for name, t in doc.tables.items()}
        self._rows = {name: t.rows for name, t in doc.tables.items()}

    def rows(self, table: str) -> Iterator[list[Value]]:
        columns = self.columns[table]
        limits = [self._rules.limit(table, c) for c in columns]
        smallest = min((limit.max_bytes for limit in limits), default=0)
        for number, raw in enumerate(self._rows[table], 1):
            try:
                if len(raw) <= smallest:  # no value in it can be over its limit: decoded whole
                    values: list[Any] = _whole_row.decode(raw)
                else:  # each value still encoded, a view of the file, measured first
                    values = _raw_row.decode(raw)
                if len(values) != len(columns):
                    raise ValueError(f"has {len(values)} values, expected {len(columns)}")
                yield [
                    self._value(column, limit, value)
                    for column, limit, value in zip(columns, limits, values, strict=True)
                ]
            except (msgspec.DecodeError, ValueError) as e:
                raise _row_error(self.shown, table, number, e) from e
            except RecursionError:
                raise _row_error(self.shown, table, number, _NESTED) from None

    @staticmethod
    def _value(column: str, limit: ColumnLimit, given: Any) -> Value:
        if isinstance(given, msgspec.Raw):
            if surely_over(given, limit.max_bytes):
                owner = f" ({limit.owner})" if limit.owner else ""
                raise ValueError(f"{column} holds over {limit.max_bytes} bytes, the limit{owner}")
            given = _value.decode(given)
        value = _untag(given)
        within(column, value, limit)
        return value

    def close(self) -> None:
        self._rows = {}  # the rows are views into the map: drop them before closing it
        with contextlib.suppress(BufferError):  # a bad row's traceback may still hold one:
            self._map.close()  # the map is then released when that is collected


class _CsvSource:
    kind: Literal["json", "csv"] = "csv"

    def __init__(self, folder: str, shown: str, rules: ImportRules) -> None:
        self.path, self.shown, self._rules = folder, shown, rules
        where, shown_where = os.path.join(folder, MANIFEST), os.path.join(shown, MANIFEST)
        try:
            text = untrusted.read(where, within=folder, max_bytes=_MANIFEST_MAX)
            _check_marker(shown_where, msgspec.json.decode(text, type=_Marker))
            manifest = msgspec.json.decode(text, type=Manifest)
        except OSError as e:
            raise ExportError(f"{shown} is not a CSV export: {_cannot_read(shown_where, e)}") from e
        except msgspec.DecodeError as e:
            raise ExportError(f"{shown_where} is not a readable pm-agent manifest: {e}") from e
        except RecursionError:
            raise ExportError(f"{shown_where} is not a readable manifest: {_NESTED}") from None
        for name, t in manifest.tables.items():
            if os.path.basename(t.file) != t.file or t.file in ("", ".", ".."):
                raise ExportError(f"{shown_where}: table {name!r} names an unsafe file {t.file!r}")
        self.schema_version, self.sequences = manifest.schema_version, manifest.sequences
        self.columns = {name: t.columns for name, t in manifest.tables.items()}
        self._tables = manifest.tables

    def rows(self, table: str) -> Iterator[list[Value]]:
        entry = self._tables[table]
        path, shown = os.path.join(self.path, entry.file), os.path.join(self.shown, entry.file)
        limits = [self._rules.limit(table, c) for c in entry.columns]
        try:
            with untrusted.open_file(path, within=self.path, max_bytes=sys.maxsize) as f:
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file: not even the header row
            mapped = None
        except OSError as e:
            why = e if isinstance(e, untrusted.RefusedFile) else e.strerror
            raise ExportError(
                f"{self.shown}: the manifest lists {entry.file} for table {table!r}, but it "
                f"cannot be read ({why}): the export is incomplete"
            ) from e
        count = 0
        found = csvtext.records(
            mapped if mapped is not None else b"",
            [limit.max_bytes for limit in limits],
            header=[_NAME_MAX] * len(entry.columns),
        )
        try:
            if next(found, None) != entry.columns:
                raise ExportError(f"{shown}: the header row is not the manifest's columns")
            for row in found:
                if len(row) != len(entry.columns):
                    raise ValueError(f"has {len(row)} values, expected {len(entry.columns)}")
                values = [_from_csv(v) for v in row]
                for column, limit, value in zip(entry.columns, limits, values, strict=True):
                    within(column, value, limit)
                yield values
                count += 1
        except csvtext.FieldTooLong as e:
            problem = f"{entry.columns[e.index]}: {e}"
            raise _row_error(shown, table, count + 1, problem) from e
        except ValueError as e:  # UnicodeDecodeError is a ValueError
            raise _row_error(shown, table, count + 1, e) from e
        finally:
            found.close()
            if mapped is not None:
                with contextlib.suppress(BufferError):  # a failed row's traceback may hold a
                    mapped.close()  # view: the map then goes when that is collected
        if count != entry.rows:
            raise ExportError(
                f"{shown} has {count} rows but the manifest says {entry.rows}: "
                "the file is truncated or was edited"
            )

    def close(self) -> None:
        pass


_Source = _JsonSource | _CsvSource


def _open_source(
    source: str, shown: str, within: Sequence[str] | None, rules: ImportRules
) -> _Source:
    try:
        real = source if within is None else untrusted.resolve_within(source, within)
    except untrusted.Outside as e:
        raise ExportError(f"cannot read {shown}: {e}") from e
    if os.path.isdir(real):
        return _CsvSource(real, shown, rules)
    if os.path.lexists(real):
        return _JsonSource(real, shown, within, rules)
    raise ExportError(f"{shown} does not exist: expected a JSON export file or a CSV folder")


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


def _validate_header(src: _Source, migrations: list[Migration]) -> None:
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


def _insert(conn: sqlite3.Connection, src: _Source, table: str) -> int:
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
        raise _row_error(src.shown, table, done, f"{e}; correct or remove the row") from e
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


def _load(conn: sqlite3.Connection, src: _Source, schema: _Schema) -> dict[str, int]:
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


def _finish(conn: sqlite3.Connection, src: _Source, rules: ImportRules) -> None:
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
    src: _Source, migrations: list[Migration], dest: str, rules: ImportRules
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
    src = _open_source(source, shown, within, rules)
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
