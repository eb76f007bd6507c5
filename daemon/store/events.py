"""SQL for the change log."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence

import msgspec

from daemon.store.paging import fetch_page


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


# SQLite keeps a cached statement's last bound values until it runs again (20 multi-row
# statements of 1 MiB values held 212 MiB in a test), and there were 200 statement shapes of
# up to 200 rows. Events with big data go alone; the rest in chunks of a few power-of-two
# sizes: few statement shapes, each holding at most 128 small rows.
_BIG_DATA = 4096
_CHUNKS = (128, 64, 32, 16, 8, 4, 2, 1)


@functools.cache
def _insert_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO events (seq, ts, topic, type, data) VALUES {values}"


def insert_many(conn: sqlite3.Connection, events: Sequence[Event]) -> None:
    """All of a batch's events in a few statements: each statement is one trip into SQLite,
    and every trip hands the GIL to the event loop and back."""
    small: list[tuple[object, ...]] = []
    for e in events:
        row = (e.seq, e.ts, e.topic, e.type, bytes(e.data).decode("utf-8"))
        if len(e.data) > _BIG_DATA:
            conn.execute(_insert_sql(1), row)
        else:
            small.append(row)
    start = 0
    for size in _CHUNKS:
        while len(small) - start >= size:
            args = [value for row in small[start : start + size] for value in row]
            conn.execute(_insert_sql(size), args)
            start += size


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
