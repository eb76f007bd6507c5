"""Schema migrations: `schema/NNNN_name.sql`, applied in order, one transaction per file.

Applied migrations are recorded with the sha256 of their text. An applied file that changed,
or a database that knows migrations this code does not, stops the daemon: it never guesses.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable, Iterable
from importlib import resources
from importlib.resources.abc import Traversable

import msgspec

from daemon.store.clock import utc_now
from daemon.store.uid import uuid7_at

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The schema cannot be brought up to date safely; the message says why and what to do."""


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


class Applied(msgspec.Struct, frozen=True):
    version: int
    name: str
    sha256: str
    applied_at: str


def load(source: Traversable | None = None) -> list[Migration]:
    """Every migration shipped in the `schema` package (or in `source`), ordered by version."""
    folder = source if source is not None else resources.files("schema")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        text = entry.read_bytes()
        migration = Migration(
            version=int(match[1]),
            name=match[2],
            sql=text.decode("utf-8"),
            sha256=hashlib.sha256(text).hexdigest(),
        )
        if migration.version in found:
            raise MigrationError(
                f"two migrations share version {migration.version:04d}: "
                f"{found[migration.version].filename} and {migration.filename}"
            )
        found[migration.version] = migration
    return [found[v] for v in sorted(found)]


_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


def applied(conn: sqlite3.Connection) -> list[Applied]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return []
    rows = conn.execute(
        "SELECT version, name, sha256, applied_at FROM schema_migrations ORDER BY version"
    ).fetchall()
    return [Applied(*row) for row in rows]


def schema_version(conn: sqlite3.Connection) -> int:
    done = applied(conn)
    return done[-1].version if done else 0


def pending(conn: sqlite3.Connection, migrations: Iterable[Migration]) -> list[Migration]:
    """The migrations still to run, after checking that the applied ones are what we ship."""
    known = {m.version: m for m in migrations}
    newest_known = max(known, default=0)
    done = applied(conn)
    for row in done:
        shipped = known.get(row.version)
        if shipped is None:
            if row.version > newest_known:
                raise MigrationError(
                    f"the database is at schema version {done[-1].version}, newer than this "
                    f"pm-agent knows (up to {newest_known}). Upgrade pm-agent, or go back to the "
                    "backup taken before that migration with `pm db rollback` (or pick one: "
                    "`pm backup list`, then `pm backup restore NAME`)."
                )
            raise MigrationError(
                f"migration {row.version:04d}_{row.name}.sql was applied to this database on "
                f"{row.applied_at} but this pm-agent does not ship it; reinstall pm-agent."
            )
        if shipped.sha256 != row.sha256 or shipped.name != row.name:
            raise MigrationError(
                f"migration {shipped.filename} was applied to this database on {row.applied_at}, "
                f"but the file has changed since (sha256 {row.sha256[:12]}… is now "
                f"{shipped.sha256[:12]}…). An applied migration must never change: restore the "
                "original file and put the change in a new migration."
            )
    applied_versions = {row.version for row in done}
    return [m for v, m in sorted(known.items()) if v not in applied_versions]


def statements(sql: str) -> Iterable[str]:
    """Split a script into complete statements (trigger bodies included), as SQLite parses them."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    rest = buffer.strip()
    # A trailing comment is not a statement; anything else unterminated is a mistake.
    if rest and not all(
        part.strip().startswith("--") for part in rest.splitlines() if part.strip()
    ):
        raise MigrationError(f"unterminated statement at the end of the migration: {rest[:80]!r}")


def apply(conn: sqlite3.Connection, migration: Migration) -> None:
    """Run one migration and record it, all in one transaction. Migrations may call
    `uuid7_at(time)` (a UUIDv7 of that moment) to give existing rows their uid."""
    conn.create_function("uuid7_at", 1, uuid7_at)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_CREATE_LEDGER)
        for statement in statements(migration.sql):
            try:
                conn.execute(statement)
            except sqlite3.Error as e:
                raise MigrationError(
                    f"migration {migration.filename} failed: {e} (in: {statement[:120]!r})"
                ) from e
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise MigrationError(
                f"migration {migration.filename} leaves {len(broken)} foreign-key violations "
                f"(first: {broken[0]!r})"
            )
        conn.execute(
            "INSERT INTO schema_migrations (version, name, sha256, applied_at) VALUES (?, ?, ?, ?)",
            (migration.version, migration.name, migration.sha256, utc_now()),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def migrate(
    conn: sqlite3.Connection,
    migrations: list[Migration],
    on_step: Callable[[Migration], None] | None = None,
) -> list[Migration]:
    """Apply what is pending; returns what was applied."""
    todo = pending(conn, migrations)
    for migration in todo:
        if on_step is not None:
            on_step(migration)
        apply(conn, migration)
    return todo
