"""Projects' own SQL beside the generic table (row.py): finding one by path or name, the rows a
scan compares with the disk, a change written with the event that says what it meant, the
folders a user asked to forget, and what a merge of duplicate records needs."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from daemon.domain.projects.row import BOOKKEEPING, PROJECTS, Project
from daemon.store.batch import Tx
from daemon.store.connection import quote
from daemon.store.events_catalogue import EventKind
from daemon.store.table import Where, check_version


# --- reading -------------------------------------------------------------------------------
def get_by_path(conn: sqlite3.Connection, path: str) -> Project | None:
    return PROJECTS.first(conn, Where(PROJECTS).eq("path", path))


def find_by_name(conn: sqlite3.Connection, name: str) -> list[Project]:
    """The projects of that name (at most 50), by path."""
    return PROJECTS.rows(conn, Where(PROJECTS).eq("name", name), "name", limit=50)


def every(conn: sqlite3.Connection) -> list[Project]:
    """Every project, missing ones too, however long their descriptions: what a scan compares
    with the disk."""
    return PROJECTS.rows(conn, order="id", budget=False)


def present(conn: sqlite3.Connection) -> list[Project]:
    """Every project whose folder is there, by name (what the watcher watches)."""
    return PROJECTS.rows(conn, Where(PROJECTS).eq("present", True), "name", budget=False)


def paths(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """(id, path) of every project: all an import's check of paths needs."""
    return [(int(r[0]), r[1]) for r in conn.execute("SELECT id, path FROM projects ORDER BY id")]


def ignored_paths(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT path FROM ignored_paths").fetchall()}


def worktree_owner(conn: sqlite3.Connection, common_dir: str) -> int | None:
    """The project whose own repository lives in `common_dir` (a linked worktree's main)."""
    row = conn.execute(
        "SELECT id FROM projects WHERE git_common_dir = ? AND git_kind IN ('worktree', 'bare') "
        "ORDER BY present DESC, id LIMIT 1",
        (common_dir,),
    ).fetchone()
    return int(row[0]) if row else None


def duplicated_identities(conn: sqlite3.Connection) -> list[str]:
    """Identities held by several records of which exactly one is present: one checkout that
    older versions recorded twice (see merge.py)."""
    rows = conn.execute(
        "SELECT identity FROM projects WHERE identity IS NOT NULL GROUP BY identity "
        "HAVING count(*) > 1 AND sum(present) = 1 ORDER BY identity"
    ).fetchall()
    return [r[0] for r in rows]


def with_identity(conn: sqlite3.Connection, identity: str) -> list[Project]:
    """The records of one checkout, oldest first."""
    return PROJECTS.rows(conn, Where(PROJECTS).eq("identity", identity), "id", budget=False)


# --- writing (inside the writer's transaction) ---------------------------------------------
def write(
    tx: Tx,
    row: Project,
    values: Mapping[str, Any],
    kind: EventKind[Any] | None = None,
    *,
    expected_version: int | None = None,
    **extra: Any,
) -> Project:
    """Set `values` on `row` (as read in this transaction). The fields that differ are written
    with one event: `kind` (always, when given: it says what happened) with them and `extra`,
    else `projects.updated` when any differs. The scan's bookkeeping alone is written without
    a version or an event."""
    check_version(PROJECTS.namespace, row, expected_version)
    changed = {k: v for k, v in values.items() if getattr(row, k) != v}
    if kind is None and not changed.keys() - BOOKKEEPING:
        if changed:
            fingerprint = changed.get("fingerprint", row.fingerprint)
            note_scan(tx, row.id, changed.get("scanned_at", row.scanned_at), fingerprint)
        return row
    new = PROJECTS.update(tx, row.id, changed, emit=False, old=row) if changed else row
    if kind is None:
        tx.emit(PROJECTS.updated, PROJECTS.updated_event(new, changed))
    else:
        payload = kind.payload(
            id=new.id, uid=new.uid, version=new.version, changed=changed, path=new.path, **extra
        )
        tx.emit(kind, payload)
    return new


def note_scan(tx: Tx, project_id: int, scanned_at: str | None, fingerprint: str | None) -> None:
    """A scan looked and found nothing new: when, and what it saw (see BOOKKEEPING)."""
    tx.conn.execute(
        "UPDATE projects SET scanned_at = ?, fingerprint = ? WHERE id = ?",
        (scanned_at, fingerprint, project_id),
    )


def ignore_path(conn: sqlite3.Connection, path: str, now: str) -> None:
    conn.execute(
        "INSERT INTO ignored_paths (path, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (path, now),
    )


def unignore_path(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("DELETE FROM ignored_paths WHERE path = ?", (path,))


def _references(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(table, column) of every foreign key that points at a project: found in the schema,
    so a table added later is followed without being named here."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    ]
    found = []
    for table in tables:
        # (id, seq, table, from, to, on_update, on_delete, match); `to` NULL: the primary key
        for fk in conn.execute("SELECT * FROM pragma_foreign_key_list(?)", (table,)).fetchall():
            if fk[2] == "projects" and fk[4] in (None, "id"):
                found.append((table, fk[3]))
    return found


def repoint(conn: sqlite3.Connection, *, keep: int, drop: int) -> dict[str, int]:
    """Every row that refers to project `drop` refers to `keep` instead; how many, by
    `table.column`."""
    moved = {}
    for table, column in _references(conn):
        cursor = conn.execute(
            f"UPDATE {quote(table)} SET {quote(column)} = ? WHERE {quote(column)} = ?",
            (keep, drop),
        )
        if cursor.rowcount:
            moved[f"{table}.{column}"] = cursor.rowcount
    return moved
