"""Writing a row of a table whose columns are checked against a whitelist first.

Column names cannot be SQL parameters, so they come only from the caller's whitelist; every
value is a parameter. Every such table has created_at/updated_at kept here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

Encode = Callable[[str, Any], Any]  # (column, python value) → what the column stores


def _checked(table: str, values: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"not a writable {table} column: {sorted(unknown)}")


def insert(
    conn: sqlite3.Connection,
    table: str,
    values: Mapping[str, Any],
    now: str,
    *,
    allowed: frozenset[str],
    encode: Encode,
) -> int:
    _checked(table, values, allowed)
    columns = [*values, "created_at", "updated_at"]
    row = conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)}) RETURNING id",
        (*(encode(c, v) for c, v in values.items()), now, now),
    ).fetchone()
    return int(row[0])


def update(
    conn: sqlite3.Connection,
    table: str,
    row_id: int,
    values: Mapping[str, Any],
    now: str,
    *,
    allowed: frozenset[str],
    encode: Encode,
) -> None:
    """Set `values` and updated_at (nothing at all when `values` is empty)."""
    _checked(table, values, allowed)
    if not values:
        return
    assignments = "".join(f"{c} = ?, " for c in values)
    conn.execute(
        f"UPDATE {table} SET {assignments}updated_at = ? WHERE id = ?",
        (*(encode(c, v) for c, v in values.items()), now, row_id),
    )
