"""Backup files: names, the online copy, verification, listing and what retention removes.

The copy runs on a read connection of its own and copies every page in ONE backup step:
it reads one snapshot while the writer goes on committing in WAL mode. A stepped copy from
another connection restarts whenever a write lands between steps (forever, under load), and
a copy on the writer's own connection would hold the writer for the whole copy.

A backup is written as `<name>.partial`, synced, checked with `integrity_check`, and only
then renamed to its name: a file called `pm-agent_*.db` in the backups folder is a verified
backup. One that fails its check — when it is made, or later when `verify` finds it damaged —
goes to `failed/` with the reason beside it and is never counted, rotated or restored. Backups
are self-contained files in rollback-journal mode.

The backups folder and `failed/` are used only once checked (daemon.platform.private_folders):
a link planted in their place is refused, never followed. Files found there (the reason files,
the note of the backup last restored) are read as untrusted: no link, no FIFO, a few bytes.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import sqlite3
import stat
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from daemon.platform import private_folders, untrusted
from daemon.store import connection
from daemon.store.clock import iso

PREFIX = "pm-agent_"
FAILED_DIR = "failed"
RESTORED_NOTE = ".restored-from"  # the name of the backup last restored; retention keeps it
_NOTE_MAX = 4096  # bytes read from a reason file or the note: they are a line each
_FAILED = "failed its integrity check"  # a failed backup's reason when none can be read
BACKUPS = "backups folder"  # what the folders are called in messages
FAILED = "failed backups folder"
# pm-agent_YYYYmmdd_HHMMSS[-N][_label].db: -N tells apart backups made within one second.
_NAME = re.compile(r"^pm-agent_(\d{8})_(\d{6})(?:-(\d{1,6}))?(?:_([a-z0-9-]+))?\.db$")


class BackupError(Exception):
    """A backup could not be made, read or verified; the message says which file and why."""


class BackupFile(msgspec.Struct, kw_only=True):
    name: str
    path: str
    created_at: str
    label: str  # "" for scheduled and on-demand ones; "before-migration-0005", "before-restore"…
    bytes: int
    ok: bool  # verified when it was made; False: kept aside in failed/, see `problem`
    problem: str | None = None
    schema_version: int | None = None  # None when it cannot be read


class Copied(msgspec.Struct, kw_only=True):
    name: str
    path: str
    bytes: int
    copy_ms: float  # the copy and its fsync
    verify_ms: float  # integrity_check


# --- names --------------------------------------------------------------------------------
def make_name(moment: datetime, label: str = "", sequence: int = 0) -> str:
    stamp = moment.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    return f"{PREFIX}{stamp}{f'-{sequence}' if sequence else ''}{'_' + label if label else ''}.db"


def sequence_of(name: str) -> int:
    """The -N of a name (0 without): the order of backups made within one second."""
    match = _NAME.match(name)
    return int(match[3]) if match and match[3] else 0


def parse_name(name: str) -> tuple[datetime, str] | None:
    """(when, label) for a backup's file name; None for anything else."""
    match = _NAME.match(name)
    if not match:
        return None
    try:
        moment = datetime.strptime(match[1] + match[2], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment, match[4] or ""


def check_name(name: str) -> str:
    """A name as given by a user: a bare file name of a backup, never a path."""
    if os.path.basename(name) != name or parse_name(name) is None:
        raise BackupError(
            f"{name!r} is not a backup name; names look like pm-agent_20261122_030000.db "
            "(see `pm backup list`)"
        )
    return name


def free_name(folder: str, moment: datetime, label: str = "") -> str:
    """A name not yet taken in `folder` (checked by the caller); a second backup within one
    second gets -1, -2… (its name still says when it was made, and sorts after the first)."""
    stamp = make_name(moment).removesuffix(".db")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        names = []
    same_second = [
        sequence_of(name.removesuffix(".partial")) for name in names if name.startswith(stamp)
    ]
    # Above every one kept from that second, never a gap retention left: a reused name
    # would sort before the newer ones and be the first to go.
    return make_name(moment, label, max(same_second) + 1 if same_second else 0)


# --- files --------------------------------------------------------------------------------
def sync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_database(path: str) -> None:
    """A database file and whatever SQLite keeps beside it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


def write_note(folder_fd: int, name: str, text: str) -> None:
    """A small 0600 file `name` in a checked folder, replacing whatever was there (a link or a
    FIFO in its place is replaced, never written through)."""
    temp = f".{name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp, dir_fd=folder_fd)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                 dir_fd=folder_fd)  # fmt: skip
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)


def read_note(path: str, default: str) -> str:
    """A note the daemon wrote in one of its folders, read as untrusted (a link, a FIFO or a
    device there is not read): its text, at most `_NOTE_MAX` bytes of it, or `default`."""
    try:
        text = untrusted.read_text(path, within=None, max_bytes=_NOTE_MAX, whole=False)
    except OSError:
        return default
    return text.strip() or default


# --- copy and verify ----------------------------------------------------------------------
def read_only(path: str) -> sqlite3.Connection:
    uri = pathlib.Path(os.path.abspath(path)).as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


def copy_online(source: str, dest: str, *, busy_timeout_ms: int = 5000) -> None:
    """Copy the database at `source` into a new file `dest` (0600, synced, journal_mode=DELETE),
    reading one consistent snapshot. Safe while the daemon's writer commits."""
    if os.path.exists(dest):
        raise BackupError(f"{dest} already exists")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        src = connection.open_reader(os.path.abspath(source), busy_timeout_ms=busy_timeout_ms)
        try:
            dst = sqlite3.connect(dest, isolation_level=None)
            try:
                src.backup(dst, pages=-1)  # all pages in one step: one snapshot, no restarts
                dst.execute("PRAGMA journal_mode = DELETE").fetchone()
            finally:
                dst.close()
        finally:
            src.close()
        sync_file(dest)
    except sqlite3.Error as e:
        remove_database(dest)
        raise BackupError(f"could not copy {source}: {e}") from e
    except BaseException:
        remove_database(dest)
        raise


def copy_connection(conn: sqlite3.Connection, dest: str) -> None:
    """Copy what `conn` sees into a new file `dest` (0600, synced, journal_mode=DELETE).
    For a file deleted under the daemon: its open connection is the only way left to it."""
    remove_database(dest)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            conn.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode = DELETE").fetchone()
        finally:
            dst.close()
        sync_file(dest)
    except BaseException:
        remove_database(dest)
        raise


def problems(path: str, *, quick: bool = False, limit: int = 20) -> list[str]:
    """What `integrity_check` (or `quick_check`) finds in the file; [] when it is sound.
    A file SQLite cannot open or read is one problem saying so."""
    if not os.path.exists(path):
        return [f"{path} does not exist"]
    pragma = "quick_check" if quick else "integrity_check"
    try:
        conn = read_only(path)
    except sqlite3.Error as e:
        return [f"SQLite cannot open it: {e}"]
    try:
        rows = conn.execute(f"PRAGMA {pragma}({int(limit)})").fetchall()
    except sqlite3.Error as e:
        return [f"{pragma} stopped: {e}"]
    finally:
        conn.close()
    found = [str(row[0]) for row in rows]
    return [] if found == ["ok"] else found


def schema_version_of(path: str) -> int | None:
    try:
        conn = read_only(path)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else 0
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def take(source: str, folder: str, moment: datetime, label: str = "") -> Copied:
    """Back up `source` into `folder`: copy, sync, verify, then (only then) name it.
    A copy that fails verification is moved to `folder/failed/` and BackupError says why."""
    with private_folders.opened(folder, what=BACKUPS) as fd:
        for stale in os.listdir(fd):  # what a crash in the middle of a backup left behind
            if stale.endswith(".partial"):
                for suffix in ("", "-wal", "-shm", "-journal"):
                    private_folders.remove_own_file(fd, stale + suffix)
        name = free_name(folder, moment, label)
    final = os.path.join(folder, name)
    partial = final + ".partial"
    started = time.perf_counter()
    copy_online(source, partial)
    copied = time.perf_counter()
    found = problems(partial)
    verified = time.perf_counter()
    if found:
        aside = keep_failed(folder, partial, name, "; ".join(found))
        raise BackupError(f"the backup failed its integrity check ({found[0]}); kept as {aside}")
    os.rename(partial, final)
    sync_dir(folder)
    return Copied(
        name=name,
        path=final,
        bytes=os.stat(final).st_size,
        copy_ms=round((copied - started) * 1000, 1),
        verify_ms=round((verified - copied) * 1000, 1),
    )


def keep_failed(folder: str, path: str, name: str, reason: str) -> str:
    """Move `path` (in `folder`) to `folder/failed/name`, with the reason beside it."""
    with (
        private_folders.opened(folder, what=BACKUPS, create=False) as src,
        private_folders.opened(os.path.join(folder, FAILED_DIR), what=FAILED) as dst,
    ):
        os.replace(os.path.basename(path), name, src_dir_fd=src, dst_dir_fd=dst)
        write_note(dst, name + ".txt", reason + "\n")
        os.fsync(dst)
    return os.path.join(folder, FAILED_DIR, name)


def mark_damaged(folder: str, name: str, found: list[str]) -> str:
    """A backup that a later check found damaged: moved to `failed/` with what was found, so
    it is listed as damaged, never restored and never counted by retention from then on."""
    with private_folders.opened(folder, what=BACKUPS, create=False) as fd:
        for suffix in ("-wal", "-shm", "-journal"):  # a backup has none; a leftover goes too
            private_folders.remove_own_file(fd, name + suffix)
    return keep_failed(folder, os.path.join(folder, name), name, "; ".join(found))


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def copy_file(source: str, dest: str) -> None:
    """A byte copy (for a file nobody has open), synced, 0600. The source is opened as a
    regular file only, never through a link (it may be a file found in the backups folder)."""
    with (
        untrusted.open_file(source, within=None, max_bytes=sys.maxsize) as src,
        open(dest, "wb", opener=_private_opener) as dst,
    ):
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())


# --- listing ------------------------------------------------------------------------------
def _entries(directory: str, what: str) -> list[tuple[str, os.stat_result]]:
    """The regular files in a checked folder ([] when it does not exist), by name."""
    try:
        with private_folders.opened(directory, what=what, create=False) as fd:
            entries = []
            for name in os.listdir(fd):
                try:
                    entries.append((name, os.lstat(name, dir_fd=fd)))
                except FileNotFoundError:
                    continue
            return entries
    except FileNotFoundError:
        return []


def listing(folder: str, *, with_versions: bool = True) -> list[BackupFile]:
    """Every backup, newest first; failed ones (in failed/) too, marked not ok.
    Raises FolderRefused when a folder is not one of ours (a link, say)."""
    found: list[BackupFile] = []
    for directory, ok, what in (
        (folder, True, BACKUPS),
        (os.path.join(folder, FAILED_DIR), False, FAILED),
    ):
        for name, st in _entries(directory, what):
            parsed = parse_name(name)
            if parsed is None or not stat.S_ISREG(st.st_mode):
                continue  # only files written here are backups: a link could point anywhere
            path = os.path.join(directory, name)
            found.append(
                BackupFile(
                    name=name,
                    path=path,
                    created_at=iso(parsed[0]),
                    label=parsed[1],
                    bytes=st.st_size,
                    ok=ok,
                    problem=None if ok else read_note(path + ".txt", _FAILED),
                    schema_version=schema_version_of(path) if with_versions else None,
                )
            )
    found.sort(key=lambda b: (b.created_at, sequence_of(b.name), b.name), reverse=True)
    return found


def find(folder: str, name: str) -> BackupFile:
    check_name(name)
    for backup in listing(folder):
        if backup.name == name:
            return backup
    raise FileNotFoundError(name)


# --- retention ----------------------------------------------------------------------------
def remember_restored(folder: str, name: str) -> None:
    """Note `name` as the backup just restored from: retention never removes it (until
    another backup is restored)."""
    with private_folders.opened(folder, what=BACKUPS) as fd:
        write_note(fd, RESTORED_NOTE, name + "\n")


def restored_from(folder: str) -> str | None:
    name = read_note(os.path.join(folder, RESTORED_NOTE), "")
    return name if parse_name(name) else None


def expired(
    backups: Iterable[tuple[str, datetime]],
    now: datetime,
    *,
    keep_last: int,
    keep_weeks: int,
    protected: frozenset[str] = frozenset(),
) -> list[str]:
    """Which backups retention removes.

    Regular backups (scheduled or on demand, no label): all but the newest `keep_last`, and
    the newest of each of the last `keep_weeks` weeks (counted back from `now`). Safety copies
    (a label: before-restore, before-import, before-reset, before-rollback, before-migration-N)
    are counted apart, so they never push a regular backup out: the newest `keep_last` of them
    are kept, and the newest one taken before a migration always (`pm db rollback` needs it).
    A `protected` name (the backup last restored) is never removed."""
    ordered = sorted(backups, key=lambda b: (b[1], sequence_of(b[0])), reverse=True)
    labelled = {name: parsed[1] for name, _ in ordered if (parsed := parse_name(name))}
    regular = [(n, m) for n, m in ordered if not labelled.get(n)]
    safety = [(n, m) for n, m in ordered if labelled.get(n)]
    keep = set(protected)
    keep |= {name for name, _ in regular[:keep_last]}
    keep |= {name for name, _ in safety[:keep_last]}
    weeks_seen: set[int] = set()
    for name, moment in regular:
        week = int((now - moment) / timedelta(weeks=1))
        if 0 <= week < keep_weeks and week not in weeks_seen:
            weeks_seen.add(week)
            keep.add(name)
    migrations = [n for n, _ in safety if labelled[n].startswith("before-migration")]
    keep.update(migrations[:1])
    return [name for name, _ in ordered if name not in keep]


def remove_expired(folder: str, names: Iterable[str]) -> list[str]:
    """Remove the named backups from the backups folder (checked now): only regular files of
    ours; returns the names removed."""
    gone = []
    with private_folders.opened(folder, what=BACKUPS, create=False) as fd:
        for name in names:
            check_name(name)
            if private_folders.remove_own_file(fd, name):
                gone.append(name)
            for suffix in ("-wal", "-shm", "-journal"):
                private_folders.remove_own_file(fd, name + suffix)
    return gone
