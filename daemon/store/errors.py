"""SQLite's errors, translated into the kinds a client can act on."""

from __future__ import annotations

import sqlite3

from daemon.rpc.errors import Busy, Conflict, DiskFull, RpcError, StorageError

# Primary result codes (the low byte of extended codes).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL = 10, 11, 13
_SQLITE_CONSTRAINT, _SQLITE_NOTADB = 19, 26


def translate(error: BaseException) -> RpcError:
    if isinstance(error, RpcError):
        return error
    if not isinstance(error, sqlite3.Error):
        raise error
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    text = str(error)
    if code == _SQLITE_FULL:
        return DiskFull(
            "the disk holding the database is full; nothing was written. Free some space and "
            "retry.",
            detail=text,
        )
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return Busy(
            f"the database is locked by another process ({text}); retry shortly", detail=text
        )
    if code == _SQLITE_CONSTRAINT:
        return Conflict(f"the change breaks a rule of the database: {text}", detail=text)
    if code in (_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_READONLY):
        return StorageError(
            f"the database failed: {text}. Run `pm doctor` to check it.", detail=text
        )
    return StorageError(f"database error: {text}", detail=text)
