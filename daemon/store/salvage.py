"""Salvage: copy what can still be read from a damaged database into a new file.

The damaged file is only opened read-only. The new file gets the schema from the shipped
migrations (up to the version the damaged file was at), then every row that can be read (each
table by a TableReader, daemon/store/salvage_read.py); rows whose parent was lost are settled as
the schema's ON DELETE says, and AUTOINCREMENT sequences never go backwards.
"""

from __future__ import annotations

import collections
import os
import pathlib
import sqlite3

import msgspec

from daemon.store import migrations
from daemon.store.connection import quote
from daemon.store.migrations import Migration
from daemon.store.salvage_read import TableReader

_SQLITE_NOTADB = 26


class SalvageError(Exception):
    """Nothing could be salvaged (or the new file could not be built); the message says why."""


class TableRecovery(msgspec.Struct, kw_only=True):
    table: str
    recovered: int
    lost: int | None  # None when the damaged file's row count could not be read
    orphaned: int = 0
    unreadable_ranges: list[tuple[int, int]] = msgspec.field(default_factory=list)


class Recovery(msgspec.Struct, kw_only=True):
    damaged_path: str
    dest_path: str
    schema_version: int
    tables: list[TableRecovery]
    recovered_rows: int
    lost_rows: int | None
    notes: list[str]


def damaged(path: str) -> list[str]:
    """What `PRAGMA quick_check` finds wrong with the file, read-only; [] when it is fine."""
    try:
        conn = _open_damaged(path, [])
    except SalvageError as e:
        return [str(e)]
    try:
        lines = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as e:
        return [f"{path}: quick_check failed: {e}"]
    finally:
        conn.close()
    return [] if lines == ["ok"] else lines


def recover(damaged_path: str, dest_path: str, shipped: list[Migration]) -> Recovery:
    """Build `dest_path` (which must not exist) from what `damaged_path` still holds."""
    notes: list[str] = []
    try:
        src = _open_damaged(damaged_path, notes)
    except SalvageError as e:
        raise SalvageError(f"{e}; nothing can be recovered") from None
    try:
        if not _tables(src):
            raise SalvageError(f"{damaged_path} holds no tables; nothing can be recovered")
        version, applied_at = _ledger(src, shipped, notes)
        dst = _create(dest_path)
        try:
            for migration in (m for m in shipped if m.version <= version):
                migrations.apply(dst, migration)
            tables = _copy_all(src, dst, applied_at, notes)
            _finish(dst, dest_path)
        except BaseException as e:
            dst.close()
            _remove(dest_path)
            if isinstance(e, SalvageError) or not isinstance(e, Exception):
                raise
            raise SalvageError(f"salvaging {damaged_path} failed: {e}") from e
    finally:
        src.close()
    known = [t.lost for t in tables]
    return Recovery(
        damaged_path=damaged_path,
        dest_path=dest_path,
        schema_version=version,
        tables=tables,
        recovered_rows=sum(t.recovered for t in tables),
        lost_rows=None if None in known else sum(n or 0 for n in known),
        notes=notes,
    )


def _open_damaged(path: str, notes: list[str]) -> sqlite3.Connection:
    """Read-only. `immutable=1` unless a -wal or -journal holds something SQLite must read."""
    if not os.path.isfile(path):
        raise SalvageError(f"{path}: no such file")
    live = [s for s in ("-wal", "-journal") if os.path.isfile(path + s)]
    live = [s for s in live if os.path.getsize(path + s)]
    uri = pathlib.Path(path).absolute().as_uri()
    modes = (["mode=ro"] if live else []) + ["mode=ro&immutable=1"]
    error: sqlite3.Error | None = None
    for mode in modes:
        try:
            conn = sqlite3.connect(f"{uri}?{mode}", uri=True, isolation_level=None)
        except sqlite3.Error as e:
            error = e
            continue
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA cell_size_check = ON")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as e:
            conn.close()
            error = e
            if (e.sqlite_errorcode & 0xFF) == _SQLITE_NOTADB:
                break
            continue
        if live and "immutable" in mode:
            notes.append(f"read without its {' and '.join(live)} file (SQLite could not use it)")
        return conn
    raise SalvageError(f"{path} cannot be read as a SQLite database: {error}")


def _ledger(
    src: sqlite3.Connection, shipped: list[Migration], notes: list[str]
) -> tuple[int, dict[int, str]]:
    """The schema version the damaged file was at, and when each migration was applied."""
    if not shipped:
        raise SalvageError("no shipped migrations: the new file would have no schema")
    newest = shipped[-1].version
    sql = "SELECT version, sha256, applied_at FROM schema_migrations NOT INDEXED"
    try:
        rows = src.execute(sql).fetchall()
    except sqlite3.Error:  # the ledger's page is damaged: look each version up by rowid
        rows = []
        for m in shipped:
            try:
                rows += src.execute(f"{sql} WHERE version = ?", (m.version,)).fetchall()
            except sqlite3.Error:
                continue
    if not rows:
        notes.append(f"the schema_migrations ledger is unreadable: assumed version {newest}")
        return newest, {}
    version = max(int(r[0]) for r in rows)
    if version > newest:
        raise SalvageError(
            f"the damaged file is at schema version {version}, newer than this pm-agent knows "
            f"({newest}); salvage it with the pm-agent that wrote it"
        )
    by_version = {m.version: m for m in shipped}
    for v, sha, _ in rows:
        if v in by_version and by_version[v].sha256 != sha:
            notes.append(f"migration {v} had sha256 {sha[:12]}… there; the new file has ours")
    return version, {int(r[0]): str(r[2]) for r in rows}


def _create(dest_path: str) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.lexists(dest_path + suffix):
            raise SalvageError(f"{dest_path}{suffix} already exists; choose a new destination")
    try:
        os.close(os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise SalvageError(f"cannot create {dest_path}: {e.strerror}") from e
    try:
        dst = sqlite3.connect(dest_path, isolation_level=None)
        dst.execute("PRAGMA journal_mode = DELETE")
        dst.execute("PRAGMA synchronous = FULL")
        dst.execute("PRAGMA foreign_keys = OFF")  # lost parents are settled at the end
    except sqlite3.Error as e:
        _remove(dest_path)
        raise SalvageError(f"cannot create {dest_path}: {e}") from e
    return dst


def _copy_all(
    src: sqlite3.Connection, dst: sqlite3.Connection, applied_at: dict[int, str], notes: list[str]
) -> list[TableRecovery]:
    names = _tables(dst)
    old_names = set(_tables(src))
    for extra in sorted(old_names - set(names) - {"schema_migrations"}):
        notes.append(f"table {extra} is not in the schema; not copied")
    dst.execute("BEGIN IMMEDIATE")
    for version, at in applied_at.items():
        dst.execute("UPDATE schema_migrations SET applied_at = ? WHERE version = ?", (at, version))
    results: dict[str, tuple[int | None, list[tuple[int, int]]]] = {}
    highs: dict[str, int] = {}
    for name in names:
        if name == "schema_migrations":
            continue
        if name not in old_names:
            notes.append(f"table {name} is missing from the damaged file")
            results[name] = (None, [])
            continue
        reader = TableReader(src, dst, name, notes)
        results[name] = reader.read()
        for reason, n in sorted(reader.rejected.items()):
            notes.append(f"{name}: {n} rows rejected by the new file ({reason})")
        if reader.high is not None:
            highs[name] = reader.high
    orphaned = _remove_orphans(dst, notes)
    _keep_sequences(src, dst, highs, notes)
    dst.execute("COMMIT")
    tables = []
    for name, (expected, unreadable) in results.items():
        recovered = int(dst.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0])
        lost = None if expected is None else expected - recovered
        if lost is not None and lost < 0:
            notes.append(f"{name}: {recovered} rows recovered but {expected} counted; lost unknown")
            lost = None
        tables.append(
            TableRecovery(
                table=name,
                recovered=recovered,
                lost=lost,
                orphaned=orphaned[name],
                unreadable_ranges=unreadable,
            )
        )
    return tables


def _remove_orphans(dst: sqlite3.Connection, notes: list[str]) -> collections.Counter[str]:
    """Settle rows whose parent was lost, as the schema's ON DELETE says; repeat until clean.

    ON DELETE SET NULL keeps the row with the reference cleared; anything else removes it.
    """
    removed: collections.Counter[str] = collections.Counter()
    cleared: collections.Counter[str] = collections.Counter()
    while broken := dst.execute("PRAGMA foreign_key_check").fetchall():
        for table, rowid, _, fkid in broken:
            if rowid is None:
                raise SalvageError(f"{table} (WITHOUT ROWID) has rows whose parent was lost")
            fk = [
                r for r in dst.execute(f"PRAGMA foreign_key_list({quote(table)})") if r[0] == fkid
            ]
            if fk[0][6] == "SET NULL":
                sets = ", ".join(f"{quote(r[3])} = NULL" for r in fk)
                try:
                    dst.execute(f"UPDATE {quote(table)} SET {sets} WHERE rowid = ?", (rowid,))
                    cleared[table] += 1
                    continue
                except sqlite3.IntegrityError:
                    pass
            gone = dst.execute(f"DELETE FROM {quote(table)} WHERE rowid = ?", (rowid,)).rowcount
            removed[table] += gone
    for table, n in sorted(cleared.items()):
        notes.append(f"{table}: {n} references to lost rows set to NULL (ON DELETE SET NULL)")
    return removed


def _keep_sequences(
    src: sqlite3.Connection, dst: sqlite3.Connection, highs: dict[str, int], notes: list[str]
) -> None:
    """AUTOINCREMENT high-water marks never go backwards, whatever rows were lost."""
    try:
        old = {str(n): int(s) for n, s in src.execute("SELECT name, seq FROM sqlite_sequence")}
    except sqlite3.Error:
        old = {}
        notes.append("sqlite_sequence is unreadable: sequences continue from the highest seen")
    auto = "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'"
    for (name,) in dst.execute(auto).fetchall():
        floor = max(old.get(name, 0), highs.get(name, 0))
        row = dst.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (name,)).fetchone()
        if row is None:
            dst.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, floor))
        elif int(row[0]) < floor:
            dst.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (floor, name))


def _finish(dst: sqlite3.Connection, dest_path: str) -> None:
    check = [str(r[0]) for r in dst.execute("PRAGMA integrity_check").fetchall()]
    if check != ["ok"]:
        raise SalvageError(f"the new file fails integrity_check: {check[:3]}")
    if dst.execute("PRAGMA foreign_key_check").fetchone() is not None:
        raise SalvageError("the new file still has foreign-key violations")
    dst.close()
    os.chmod(dest_path, 0o600)
    for path in (dest_path, os.path.dirname(os.path.abspath(dest_path))):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _tables(conn: sqlite3.Connection) -> list[str]:
    """The tables whose rows are copied: not SQLite's own, not a virtual table (a full-text
    index) nor its shadow tables — the new file's triggers index the copied rows again."""
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid"
    ).fetchall()
    virtual = [str(n) for n, sql in rows if str(sql or "").upper().startswith("CREATE VIRTUAL")]
    return [
        str(name)
        for name, _ in rows
        if name not in virtual and not any(str(name).startswith(f"{v}_") for v in virtual)
    ]


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            continue
