"""How large an imported value may be: the limits an import holds every row to (given by the
caller: the API's own), and how a value is measured against them — before it is decoded when
it may be huge, so a refused value costs no more memory than its limit."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import msgspec

from daemon.store import jsontext
from daemon.store.export import Value

_SQLITE_VALUE_MAX = 1 << 30  # SQLite's own default limit on the length of a value
_ESCAPED = 6  # a JSON string's text is at most this many bytes per byte it stands for (\u0000)


class ColumnLimit(msgspec.Struct, frozen=True, kw_only=True):
    """How large one column's values may be (bytes of UTF-8 or of a BLOB; `max_chars`:
    characters, for a limit the API counts so), and for JSON text how deeply it may nest;
    `owner` names whose limit it is (for the message)."""

    max_bytes: int = _SQLITE_VALUE_MAX
    max_chars: int | None = None
    max_depth: int | None = None
    owner: str = ""


@dataclass(frozen=True)
class ImportRules:
    """What an imported row must satisfy beyond the schema: `value_bytes` for any value,
    `columns` (table → column → limit) for some, and `finish(conn, where)`, run on the new
    file at the newest schema inside a transaction, which may change rows or raise
    ExportError to refuse the import."""

    value_bytes: int = _SQLITE_VALUE_MAX
    value_owner: str = "SQLite's limit"
    columns: Mapping[str, Mapping[str, ColumnLimit]] = field(default_factory=dict)
    finish: Callable[[sqlite3.Connection, str], None] | None = None

    def limit(self, table: str, column: str) -> ColumnLimit:
        given = self.columns.get(table, {}).get(column)
        if given is None:
            return ColumnLimit(max_bytes=self.value_bytes, owner=self.value_owner)
        if given.max_bytes > self.value_bytes:
            return msgspec.structs.replace(given, max_bytes=self.value_bytes)
        return given


def _size(value: Value) -> int:
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    return 0


def within(column: str, value: Value, limit: ColumnLimit) -> None:
    """Raise ValueError when `value` breaks `limit`."""
    size = _size(value)
    owner = f" ({limit.owner})" if limit.owner else ""
    if size > limit.max_bytes:
        raise ValueError(
            f"{column} holds {size} bytes, over the limit of {limit.max_bytes} bytes{owner}"
        )
    if limit.max_chars is not None and isinstance(value, str) and len(value) > limit.max_chars:
        raise ValueError(
            f"{column} holds {len(value)} characters, over the limit of {limit.max_chars}{owner}"
        )
    if limit.max_depth is not None and isinstance(value, str):
        deep = jsontext.depth(value)
        if deep > limit.max_depth:
            raise ValueError(
                f"{column} nests {deep} levels deep, over the limit of {limit.max_depth}{owner}"
            )


_ESCAPE = re.compile(rb"\\.", re.DOTALL)


def surely_over(encoded: msgspec.Raw, limit: int) -> bool:
    """Does the JSON value `encoded` stand for more than `limit` bytes? Told without decoding
    it (so a huge one is never held twice): a string's text is its bytes plus two quotes and
    at most five more per escape (`\\u0041` for `A`); anything else (a `$blob` tag, base64)
    is at most `_ESCAPED` times what it stands for."""
    size = len(encoded)
    if size <= limit + 2:
        return False
    if bytes(memoryview(encoded)[:1]) != b'"':
        return size > _ESCAPED * limit + 2
    needed = (size - 2 - limit + 4) // 5  # escapes it would take to fit
    escapes = enumerate(_ESCAPE.finditer(memoryview(encoded)), 1)
    return all(count < needed for count, _ in escapes)  # stops at the `needed`-th
