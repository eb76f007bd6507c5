"""SQL for projects. Rows go out as `Project` structs; scans read lighter `ScanRow`s."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from daemon.store import rows
from daemon.store.connection import quote
from daemon.store.paging import PAGE_BYTES, fetch_page

Order = Literal["last_worked_on", "name", "quality"]

# Columns a scan maintains from what it reads on disk.
FACT_COLUMNS: tuple[str, ...] = (
    "name", "description", "status", "origin_type", "ownership", "last_worked_on",
    "repository_url", "root", "vcs", "git_kind", "git_common_dir", "branch", "head_sha",
    "detached", "default_branch", "remotes", "languages", "manifests", "archived_marker",
    "identity", "device", "inode", "scan_error",
)  # fmt: skip
# Columns a user may set by hand; a value set by hand wins over inference from then on.
USER_COLUMNS: tuple[str, ...] = (
    "name", "description", "status", "origin_type", "ownership", "repository_url",
    "deployed_url",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"remotes", "languages", "manifests", "user_set"})
_KNOWN = frozenset(FACT_COLUMNS) | frozenset(USER_COLUMNS) | {
    "path", "present", "missing_since", "scanned_at", "fingerprint", "user_set", "source",
    "worktree_of",
}  # fmt: skip


class RemoteRow(msgspec.Struct, frozen=True):
    name: str
    url: str


class Project(msgspec.Struct, kw_only=True):
    id: int
    name: str
    path: str
    description: str | None
    status: str
    origin_type: str | None
    ownership: str | None
    created_at: str
    updated_at: str
    last_worked_on: str | None
    repository_url: str | None
    deployed_url: str | None
    present: bool
    missing_since: str | None
    source: str
    root: str | None
    vcs: str
    git_kind: str | None
    branch: str | None
    head_sha: str | None
    detached: bool
    default_branch: str | None
    remotes: list[RemoteRow]
    languages: dict[str, int]
    manifests: list[str]
    archived_marker: bool
    worktree_of: int | None
    scanned_at: str | None
    scan_error: str | None
    user_set: list[str]
    quality_score: int | None  # from the latest quality assessment, when there is one


_PROJECT_COLUMNS = tuple(Project.__struct_fields__)
_SELECT = (
    "SELECT "
    + ", ".join(f"p.{c}" for c in _PROJECT_COLUMNS if c != "quality_score")
    + ", q.quality_score FROM projects AS p "
    "LEFT JOIN quality_latest AS q ON q.project_id = p.id"
)
_remotes = msgspec.json.Decoder(list[RemoteRow])
_languages = msgspec.json.Decoder(dict[str, int])
_strings = msgspec.json.Decoder(list[str])
_encode = msgspec.json.Encoder().encode


def _project(row: Sequence[Any]) -> Project:
    values = dict(zip(_PROJECT_COLUMNS, row, strict=True))
    values["present"] = bool(values["present"])
    values["detached"] = bool(values["detached"])
    values["archived_marker"] = bool(values["archived_marker"])
    values["remotes"] = _remotes.decode(values["remotes"])
    values["languages"] = _languages.decode(values["languages"])
    values["manifests"] = _strings.decode(values["manifests"])
    values["user_set"] = _strings.decode(values["user_set"])
    return Project(**values)


def encode_value(column: str, value: Any) -> Any:
    """Python value → what the column stores (JSON text for the JSON columns)."""
    if column in _JSON_COLUMNS:
        return _encode(value).decode()
    if isinstance(value, bool):
        return int(value)
    return value


# --- reading -------------------------------------------------------------------------------
def get(conn: sqlite3.Connection, project_id: int) -> Project | None:
    row = conn.execute(f"{_SELECT} WHERE p.id = ?", (project_id,)).fetchone()
    return _project(row) if row else None


def get_by_path(conn: sqlite3.Connection, path: str) -> Project | None:
    row = conn.execute(f"{_SELECT} WHERE p.path = ?", (path,)).fetchone()
    return _project(row) if row else None


def find_by_name(conn: sqlite3.Connection, name: str) -> list[Project]:
    rows = conn.execute(f"{_SELECT} WHERE p.name = ? ORDER BY p.path LIMIT 50", (name,)).fetchall()
    return [_project(r) for r in rows]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filters(
    status: Sequence[str], query: str | None, include_missing: bool
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if status:
        status = sorted(set(status))  # one statement shape per set of statuses, not per list
        clauses.append(f"p.status IN ({', '.join('?' for _ in status)})")
        args += status
    if query:
        clauses.append(
            "(p.name LIKE ? ESCAPE '\\' OR p.path LIKE ? ESCAPE '\\' "
            "OR p.description LIKE ? ESCAPE '\\')"
        )
        args += [_like(query)] * 3
    if not include_missing:
        clauses.append("p.present = 1")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def list_projects(
    conn: sqlite3.Connection,
    *,
    status: Sequence[str],
    query: str | None,
    order: Order,
    include_missing: bool,
    limit: int,
    offset: int,
    max_bytes: int | None = PAGE_BYTES,
) -> list[Project]:
    where, args = _filters(status, query, include_missing)
    order_by = {
        "last_worked_on": "p.last_worked_on DESC NULLS LAST, p.name",
        "name": "p.name COLLATE NOCASE, p.path",
        "quality": "q.quality_score DESC NULLS LAST, p.name COLLATE NOCASE",
    }[order]
    rows = fetch_page(
        conn.execute(
            f"{_SELECT}{where} ORDER BY {order_by} LIMIT ? OFFSET ?", (*args, limit, offset)
        )
    )
    return [_project(r) for r in rows]


def count_projects(
    conn: sqlite3.Connection, *, status: Sequence[str], query: str | None, include_missing: bool
) -> int:
    where, args = _filters(status, query, include_missing)
    return int(conn.execute(f"SELECT count(*) FROM projects AS p{where}", args).fetchone()[0])


class ScanRow(msgspec.Struct, frozen=True, kw_only=True):
    """What a scan needs to know of a stored project to compare it with the disk."""

    id: int
    path: str
    source: str
    root: str | None
    present: bool
    identity: str | None
    device: int | None
    inode: int | None
    fingerprint: str | None
    git_kind: str | None
    git_common_dir: str | None
    user_set: frozenset[str]
    facts: dict[str, Any]  # the stored FACT_COLUMNS, as stored


def scan_rows(conn: sqlite3.Connection) -> list[ScanRow]:
    columns = (
        "id", "path", "source", "present", "fingerprint", "user_set", *FACT_COLUMNS,
    )  # fmt: skip
    rows = conn.execute(f"SELECT {', '.join(columns)} FROM projects").fetchall()
    out = []
    for row in rows:
        v = dict(zip(columns, row, strict=True))
        facts = {c: v[c] for c in FACT_COLUMNS}
        out.append(
            ScanRow(
                id=v["id"],
                path=v["path"],
                source=v["source"],
                root=v["root"],
                present=bool(v["present"]),
                identity=v["identity"],
                device=v["device"],
                inode=v["inode"],
                fingerprint=v["fingerprint"],
                git_kind=v["git_kind"],
                git_common_dir=v["git_common_dir"],
                user_set=frozenset(_strings.decode(v["user_set"])),
                facts=facts,
            )
        )
    return out


def user_set_of(conn: sqlite3.Connection, project_id: int) -> frozenset[str] | None:
    """The fields set by hand (None: no such project); read inside a write to see the latest."""
    row = conn.execute("SELECT user_set FROM projects WHERE id = ?", (project_id,)).fetchone()
    return frozenset(_strings.decode(row[0])) if row else None


def duplicated_identities(conn: sqlite3.Connection) -> list[str]:
    """Identities held by several records of which exactly one is present: one checkout that
    older versions recorded twice (see services/project_merge)."""
    rows = conn.execute(
        "SELECT identity FROM projects WHERE identity IS NOT NULL GROUP BY identity "
        "HAVING count(*) > 1 AND sum(present) = 1 ORDER BY identity"
    ).fetchall()
    return [r[0] for r in rows]


def records_with_identity(conn: sqlite3.Connection, identity: str) -> list[dict[str, Any]]:
    """Every column of the records with this identity, as stored, oldest first."""
    cursor = conn.execute("SELECT * FROM projects WHERE identity = ? ORDER BY id", (identity,))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


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


def ignored_paths(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT path FROM ignored_paths").fetchall()}


# --- writing (called inside the writer's transaction) ---------------------------------------
def insert(conn: sqlite3.Connection, values: Mapping[str, Any], now: str) -> int:
    return rows.insert(conn, "projects", values, now, allowed=_KNOWN, encode=encode_value)


def update(conn: sqlite3.Connection, project_id: int, values: Mapping[str, Any], now: str) -> None:
    rows.update(conn, "projects", project_id, values, now, allowed=_KNOWN, encode=encode_value)


def update_stored(
    conn: sqlite3.Connection, project_id: int, values: Mapping[str, Any], now: str
) -> None:
    """`update` with values as stored (JSON columns as text), e.g. read by
    `records_with_identity`."""
    rows.update(conn, "projects", project_id, values, now, allowed=_KNOWN, encode=_as_stored)


def _as_stored(column: str, value: Any) -> Any:
    return value


def touch_scanned(conn: sqlite3.Connection, project_id: int, fingerprint: str, now: str) -> None:
    """A scan looked and found nothing new: remember when, without a change event."""
    conn.execute(
        "UPDATE projects SET scanned_at = ?, fingerprint = ? WHERE id = ?",
        (now, fingerprint, project_id),
    )


def delete(conn: sqlite3.Connection, project_id: int) -> None:
    conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))


def ignore_path(conn: sqlite3.Connection, path: str, now: str) -> None:
    conn.execute(
        "INSERT INTO ignored_paths (path, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (path, now),
    )


def unignore_path(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("DELETE FROM ignored_paths WHERE path = ?", (path,))


def worktree_owner(conn: sqlite3.Connection, common_dir: str) -> int | None:
    """The project whose own repository lives in `common_dir` (a linked worktree's main)."""
    row = conn.execute(
        "SELECT id FROM projects WHERE git_common_dir = ? AND git_kind IN ('worktree', 'bare') "
        "ORDER BY present DESC, id LIMIT 1",
        (common_dir,),
    ).fetchone()
    return int(row[0]) if row else None
