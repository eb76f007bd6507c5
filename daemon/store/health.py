"""SQL for the figures `db.health` reports."""

from __future__ import annotations

import os
import sqlite3

import msgspec


class FileFigures(msgspec.Struct, kw_only=True):
    tables: list[str]
    page_size: int
    page_count: int
    freelist_count: int
    file_bytes: int
    wal_bytes: int
    sqlite_version: str


def figures(conn: sqlite3.Connection, path: str) -> FileFigures:
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        ).fetchall()
    ]
    return FileFigures(
        tables=tables,
        page_size=int(conn.execute("PRAGMA page_size").fetchone()[0]),
        page_count=int(conn.execute("PRAGMA page_count").fetchone()[0]),
        freelist_count=int(conn.execute("PRAGMA freelist_count").fetchone()[0]),
        file_bytes=_size(path),
        wal_bytes=_size(path + "-wal"),
        sqlite_version=sqlite3.sqlite_version,
    )


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
