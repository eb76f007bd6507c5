"""Opening SQLite connections the one way this daemon uses them."""

from __future__ import annotations

import pathlib
import sqlite3
from typing import Literal

import msgspec

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


def quote(name: str) -> str:
    """An SQL identifier (a table or column name read from the schema), quoted."""
    return '"' + name.replace('"', '""') + '"'


class DatabaseOpenError(Exception):
    """The database file cannot be opened the way the daemon needs it."""


def open_writer(path: str, *, synchronous: Synchronous, busy_timeout_ms: int) -> sqlite3.Connection:
    """The one read-write connection. Autocommit mode: the writer issues BEGIN/COMMIT itself."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=512
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatabaseOpenError(
                f"{path}: SQLite refused WAL mode (got {mode!r}); the data directory must be on "
                "a local filesystem that supports shared memory (not NFS)"
            )
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(path: str, *, busy_timeout_ms: int) -> sqlite3.Connection:
    """A read-only connection: `mode=ro` at the file level and `query_only` at the SQL level."""
    uri = pathlib.Path(path).as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA query_only = ON")
    return conn


class Pragmas(msgspec.Struct, kw_only=True):
    """The settings a connection really runs with, read back from SQLite."""

    journal_mode: str
    synchronous: str
    foreign_keys: bool
    busy_timeout_ms: int


_SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def pragmas(conn: sqlite3.Connection) -> Pragmas:
    return Pragmas(
        journal_mode=str(conn.execute("PRAGMA journal_mode").fetchone()[0]),
        synchronous=_SYNCHRONOUS_NAMES.get(conn.execute("PRAGMA synchronous").fetchone()[0], "?"),
        foreign_keys=bool(conn.execute("PRAGMA foreign_keys").fetchone()[0]),
        busy_timeout_ms=int(conn.execute("PRAGMA busy_timeout").fetchone()[0]),
    )
