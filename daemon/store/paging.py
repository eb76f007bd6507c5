"""Pages of rows with a size budget as well as a count: `limit` rows of up to a megabyte
each would otherwise make one reply of gigabytes."""

from __future__ import annotations

import sqlite3
from typing import Any

PAGE_BYTES = 8 * 1024 * 1024  # text and blobs in one page; the page ends after the row passing it


def fetch_page(cursor: sqlite3.Cursor, max_bytes: int | None = PAGE_BYTES) -> list[Any]:
    """The cursor's rows until their text and blobs pass `max_bytes` (at least one row; None:
    all). A short page is not the end: callers page on with `offset + len(items)` to `total`."""
    if max_bytes is None:
        try:
            return cursor.fetchall()
        finally:
            cursor.close()
    rows: list[Any] = []
    size = 0
    try:
        for row in cursor:
            rows.append(row)
            size += sum(len(v) for v in row if isinstance(v, str | bytes))
            if size >= max_bytes:
                break
    finally:
        cursor.close()  # a statement left part-read would hold its read snapshot open
    return rows
