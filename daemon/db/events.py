"""SQL for the change log."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence

import msgspec

from daemon.db.paging import fetch_page


class Event(msgspec.Struct, frozen=True):
    """One committed change. `data` is the JSON the operation recorded, kept encoded."""

    seq: int
    ts: str
    type: str
    topic: str
    data: msgspec.Raw


def last_seq(conn: sqlite3.Connection) -> int:
    """The highest sequence number ever handed out (AUTOINCREMENT's high-water mark)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return int(row[0]) if row else 0


_INSERT_CHUNK = 200  # rows per statement: 1000 parameters, far below SQLite's limit


@functools.cache
def _insert_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO events (seq, ts, topic, type, data) VALUES {values}"


def insert_many(conn: sqlite3.Connection, events: Sequence[Event]) -> None:
    """All of a batch's events in a few statements: each statement is one trip into SQLite,
    and every trip hands the GIL to the event loop and back."""
    for start in range(0, len(events), _INSERT_CHUNK):
        chunk = events[start : start + _INSERT_CHUNK]
        args: list[object] = []
        for e in chunk:
            args += (e.seq, e.ts, e.topic, e.type, bytes(e.data).decode("utf-8"))
        conn.execute(_insert_sql(len(chunk)), args)


def _topic_filter(topics: Sequence[str]) -> tuple[str, list[str]]:
    if not topics:
        return "", []
    marks = ", ".join("?" for _ in topics)
    return f" AND (topic IN ({marks}) OR type IN ({marks}))", [*topics, *topics]


def list_since(
    conn: sqlite3.Connection, since: int, topics: Sequence[str], limit: int, offset: int = 0
) -> list[Event]:
    where, args = _topic_filter(topics)
    rows = fetch_page(
        conn.execute(
            f"SELECT seq, ts, type, topic, data FROM events WHERE seq > ?{where} "
            "ORDER BY seq LIMIT ? OFFSET ?",
            (since, *args, limit, offset),
        )
    )
    return [
        Event(seq, ts, type_, topic, msgspec.Raw(data.encode()))
        for seq, ts, type_, topic, data in rows
    ]


def count_since(conn: sqlite3.Connection, since: int, topics: Sequence[str]) -> int:
    where, args = _topic_filter(topics)
    row = conn.execute(
        f"SELECT count(*) FROM events WHERE seq > ?{where}", (since, *args)
    ).fetchone()
    return int(row[0])


def oldest_seq(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT min(seq) FROM events").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def raise_high_water(conn: sqlite3.Connection, seq: int) -> None:
    """Make the next event's seq greater than `seq`: after a restore or an import, numbers
    clients have already seen are never handed out again."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    ).fetchone()
    if not exists or seq <= last_seq(conn):
        return
    updated = conn.execute(
        "UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'", (seq,)
    ).rowcount
    if not updated:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (seq,))
