"""Reading an export as untrusted input: the JSON file or the CSV folder (the format is in
daemon/store/export.py), its marker and manifest checked, its rows yielded with every value
checked against its limit before it is decoded whole (daemon/store/importer.py builds the new
database from them)."""

from __future__ import annotations

import base64
import contextlib
import mmap
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import msgspec

from daemon.platform import untrusted
from daemon.store import csvtext
from daemon.store.export import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SPECIAL_TEXT,
    ExportError,
    Manifest,
    Value,
)
from daemon.store.import_limits import ColumnLimit, ImportRules, surely_over, within

_MANIFEST_MAX = 16 << 20  # a manifest lists tables and their columns: a few KiB
_NAME_MAX = 1024  # bytes of a column name in a CSV header row

_JsonValue = int | float | str | None | dict[str, str]
_NESTED = "it nests too deeply to be a pm-agent export"


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


def row_error(where: str, table: str, row: int, problem: object) -> ExportError:
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
                raise row_error(self.shown, table, number, e) from e
            except RecursionError:
                raise row_error(self.shown, table, number, _NESTED) from None

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
            raise row_error(shown, table, count + 1, problem) from e
        except ValueError as e:  # UnicodeDecodeError is a ValueError
            raise row_error(shown, table, count + 1, e) from e
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


Source = _JsonSource | _CsvSource


def open_source(
    source: str, shown: str, within: Sequence[str] | None, rules: ImportRules
) -> Source:
    try:
        real = source if within is None else untrusted.resolve_within(source, within)
    except untrusted.Outside as e:
        raise ExportError(f"cannot read {shown}: {e}") from e
    if os.path.isdir(real):
        return _CsvSource(real, shown, rules)
    if os.path.lexists(real):
        return _JsonSource(real, shown, within, rules)
    raise ExportError(f"{shown} does not exist: expected a JSON export file or a CSV folder")
