"""The change log read as Project Memory's update and event logs: `events.list` by project,
topic and time range (getEventsSince, getUpdateLog).

Time bounds become sequence bounds: events are numbered in the order they are committed and
stamped as they are, so the first event at or after a moment is found by a binary search over
the primary key (a few dozen lookups), never a scan of the log. A project is matched by the
project its event names: `project_id` in the payload (documents, tasks, plans… carry it), or
the project itself for the `projects` topic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from daemon.store.events import Event
from daemon.store.paging import fetch_page

_SEARCH_STEPS = 64


def first_seq_at(conn: sqlite3.Connection, moment: str) -> int:
    """The seq of the first event stamped at or after `moment` (one past the last when none)."""
    low_row = conn.execute("SELECT min(seq), max(seq) FROM events").fetchone()
    if low_row is None or low_row[0] is None:
        return 1
    low, high = int(low_row[0]), int(low_row[1]) + 1
    for _ in range(_SEARCH_STEPS):
        if low >= high:
            break
        middle = (low + high) // 2
        row = conn.execute(
            "SELECT seq, ts FROM events WHERE seq >= ? ORDER BY seq LIMIT 1", (middle,)
        ).fetchone()
        if row is None or row[1] >= moment:
            high = middle if row is None else min(middle, int(row[0]))
        else:
            low = int(row[0]) + 1
    return low


def _where(
    since: int, topics: Sequence[str], project: int | None, before_seq: int | None
) -> tuple[str, list[object]]:
    clauses = ["seq > ?"]
    args: list[object] = [since]
    if before_seq is not None:
        clauses.append("seq < ?")
        args.append(before_seq)
    if topics:
        marks = ", ".join("?" for _ in topics)
        clauses.append(f"(topic IN ({marks}) OR type IN ({marks}))")
        args += [*topics, *topics]
    if project is not None:
        clauses.append(
            "(json_extract(data, '$.project_id') = ? "
            "OR (topic = 'projects' AND json_extract(data, '$.id') = ?))"
        )
        args += [project, project]
    return " AND ".join(clauses), args


def page(
    conn: sqlite3.Connection,
    since: int,
    topics: Sequence[str],
    project: int | None,
    after: str | None,
    before: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Event], int]:
    """(events, total) after `since` (and from `after`, before `before`), oldest first."""
    if after is not None:
        since = max(since, first_seq_at(conn, after) - 1)
    before_seq = first_seq_at(conn, before) if before is not None else None
    where, args = _where(since, topics, project, before_seq)
    rows = fetch_page(
        conn.execute(
            f"SELECT seq, ts, type, topic, data FROM events WHERE {where} "
            "ORDER BY seq LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
    )
    total = conn.execute(f"SELECT count(*) FROM events WHERE {where}", args).fetchone()[0]
    items = [
        Event(seq, ts, type_, topic, msgspec.Raw(data.encode()))
        for seq, ts, type_, topic, data in rows
    ]
    return items, int(total)
