"""SQL for the key-value store. Expired entries read as absent; values are stored as JSON text."""

from __future__ import annotations

import sqlite3

import msgspec

from daemon.store.paging import fetch_page


class KvEntry(msgspec.Struct, frozen=True, kw_only=True):
    namespace: str
    key: str
    value: msgspec.Raw
    created_at: str
    updated_at: str
    expires_at: str | None


_COLUMNS = "namespace, key, value, created_at, updated_at, expires_at"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


def _entry(row: tuple[str, str, str, str, str, str | None]) -> KvEntry:
    namespace, key, value, created_at, updated_at, expires_at = row
    return KvEntry(
        namespace=namespace,
        key=key,
        value=msgspec.Raw(value.encode("utf-8")),
        created_at=created_at,
        updated_at=updated_at,
        expires_at=expires_at,
    )


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with `prefix` (None: no bound).

    SQLite compares TEXT by its UTF-8 bytes, which orders like code points, so incrementing
    the last code point gives a bound that lets the (namespace, key) index do the range scan.
    """
    chars = list(prefix)
    while chars:
        nxt = ord(chars.pop()) + 1
        if 0xD800 <= nxt <= 0xDFFF:
            nxt = 0xE000  # surrogates cannot be encoded; the next encodable code point
        if nxt <= 0x10FFFF:
            return "".join(chars) + chr(nxt)
    return None


def _scope(namespace: str | None, prefix: str | None) -> tuple[str, list[str]]:
    clauses: list[str] = []
    args: list[str] = []
    if namespace is not None:
        clauses.append("namespace = ?")
        args.append(namespace)
        if prefix:
            clauses.append("key >= ?")
            args.append(prefix)
            upper = prefix_upper_bound(prefix)
            if upper is not None:
                clauses.append("key < ?")
                args.append(upper)
    return " AND ".join(clauses) or "1", args


def get(conn: sqlite3.Connection, namespace: str, key: str, now: str) -> KvEntry | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM kv WHERE namespace = ? AND key = ? AND {_LIVE}",
        (namespace, key, now),
    ).fetchone()
    return _entry(row) if row else None


def put(
    conn: sqlite3.Connection,
    namespace: str,
    key: str,
    value_json: str,
    now: str,
    expires_at: str | None,
) -> bool:
    """Insert or replace one entry; True when no live entry was there before."""
    row = conn.execute(
        "INSERT INTO kv (namespace, key, value, created_at, updated_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (namespace, key) DO UPDATE SET "
        "  value = excluded.value, updated_at = excluded.updated_at, "
        "  expires_at = excluded.expires_at, "
        # An expired entry that is written again is a new entry: it gets a new created_at.
        "  created_at = CASE WHEN kv.expires_at <= excluded.updated_at "
        "               THEN excluded.created_at ELSE kv.created_at END "
        "RETURNING created_at = updated_at",
        (namespace, key, value_json, now, now, expires_at),
    ).fetchone()
    return bool(row[0])


def delete(conn: sqlite3.Connection, namespace: str, key: str, now: str) -> bool:
    """Remove one entry; True when a live one was removed."""
    row = conn.execute(
        f"DELETE FROM kv WHERE namespace = ? AND key = ? RETURNING {_LIVE}",
        (namespace, key, now),
    ).fetchone()
    return bool(row and row[0])


def list_entries(
    conn: sqlite3.Connection,
    namespace: str | None,
    prefix: str | None,
    now: str,
    limit: int,
    offset: int,
) -> list[KvEntry]:
    where, args = _scope(namespace, prefix)
    rows = fetch_page(
        conn.execute(
            f"SELECT {_COLUMNS} FROM kv WHERE {where} AND {_LIVE} "
            "ORDER BY namespace, key LIMIT ? OFFSET ?",
            (*args, now, limit, offset),
        )
    )
    return [_entry(row) for row in rows]


def count(
    conn: sqlite3.Connection, namespace: str | None, prefix: str | None, now: str | None
) -> int:
    """Live entries in scope; with `now` None, expired ones too."""
    where, args = _scope(namespace, prefix)
    if now is None:
        row = conn.execute(f"SELECT count(*) FROM kv WHERE {where}", args).fetchone()
    else:
        row = conn.execute(
            f"SELECT count(*) FROM kv WHERE {where} AND {_LIVE}", (*args, now)
        ).fetchone()
    return int(row[0])


def delete_chunk(
    conn: sqlite3.Connection, namespace: str, prefix: str | None, limit: int
) -> list[str]:
    """Remove up to `limit` entries of a namespace (expired ones too); returns their keys."""
    where, args = _scope(namespace, prefix)
    rows = conn.execute(
        f"DELETE FROM kv WHERE id IN (SELECT id FROM kv WHERE {where} ORDER BY key LIMIT ?) "
        "RETURNING key",
        (*args, limit),
    ).fetchall()
    return sorted(row[0] for row in rows)
