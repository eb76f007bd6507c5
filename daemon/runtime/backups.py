"""Backups in the running daemon: take one (scheduled or on demand), list, verify, rotate,
and swap another file in under the paused writer (restore, reset, import, repair).

One backup or swap at a time (a lock). File work runs in threads; the event loop keeps
serving. Every swap is followed by an event (`db.restored`, `db.reset`, `db.imported`,
`db.repaired`) and by `on_swapped`, which the daemon uses to rescan the projects on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import structlog

from daemon.rpc.errors import InvalidState, NotFound, StorageError
from daemon.runtime import db_events
from daemon.runtime.config import Paths
from daemon.runtime.scheduler import Report
from daemon.store import backup, swap
from daemon.store.backup import BackupError, BackupFile
from daemon.store.batch import Tx
from daemon.store.database import Database
from daemon.store.events_catalogue import EventKind
from daemon.store.migrations import Migration
from daemon.store.salvage import SalvageError

log = structlog.get_logger("pm.backups")

Clock = Callable[[], datetime]
T = TypeVar("T")
S = TypeVar("S", bound=db_events.Swapped)
E = TypeVar("E", bound=msgspec.Struct)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _quiet(message: str, percentage: int | None = None) -> None:
    pass


class BackupMade(msgspec.Struct, kw_only=True):
    name: str
    path: str
    bytes: int
    copy_ms: float
    verify_ms: float
    removed: list[str]  # older backups retention deleted afterwards


class Verified(msgspec.Struct, kw_only=True):
    name: str
    ok: bool
    problems: list[str]
    schema_version: int | None
    moved_to: str | None = None  # a damaged backup goes to failed/: listed as damaged from then on


class Restored(msgspec.Struct, kw_only=True):
    name: str  # the backup (or file) now live
    safety_copy: str | None  # where the database it replaced was kept
    schema_version: int
    migrated: list[str]


class BackupService:
    def __init__(
        self,
        db: Database,
        paths: Paths,
        shipped: Callable[[], list[Migration]],
        *,
        keep_last: int = 7,
        keep_weeks: int = 8,
        clock: Clock = _utc_now,
        on_swapped: Callable[[str], None] | None = None,
    ) -> None:
        self._db = db
        self._paths = paths
        self._shipped = shipped
        self._keep_last = keep_last
        self._keep_weeks = keep_weeks
        self._clock = clock
        self._on_swapped = on_swapped
        self._lock = asyncio.Lock()
        self.last_failure: str | None = None

    @property
    def folder(self) -> str:
        return self._paths.backups_dir

    # --- backups --------------------------------------------------------------------------
    async def backup(self, report: Report = _quiet, label: str = "") -> BackupMade:
        async with self._lock:
            report("copying the database", 0)
            try:
                made = await asyncio.to_thread(
                    backup.take, self._db.path, self.folder, self._clock(), label
                )
            except (BackupError, OSError) as e:
                self.last_failure = str(e)
                await self._emit(db_events.BACKUP_FAILED, db_events.BackupFailed(error=str(e)))
                raise StorageError(f"the backup failed: {e}") from e
            self.last_failure = None
            report(f"copied and verified {made.name}", 90)
            try:
                removed = await asyncio.to_thread(self.prune)
            except OSError as e:  # the backup is made; retention waits for the next one
                log.error("retention could not run", error=str(e))
                removed = []
            await self._emit(
                db_events.BACKED_UP, db_events.BackedUp(name=made.name, bytes=made.bytes)
            )
            report("done", 100)
            log.info("backup made", name=made.name, bytes=made.bytes, removed=removed)
            return BackupMade(**msgspec.structs.asdict(made), removed=removed)

    def prune(self) -> list[str]:
        """Delete what the retention policy no longer keeps (never the backup last restored);
        returns the names deleted."""
        kept = [
            (b.name, datetime.fromisoformat(b.created_at.replace("Z", "+00:00")))
            for b in backup.listing(self.folder, with_versions=False)
            if b.ok
        ]
        restored = backup.restored_from(self.folder)
        gone = backup.expired(
            kept,
            self._clock(),
            keep_last=self._keep_last,
            keep_weeks=self._keep_weeks,
            protected=frozenset([restored] if restored else []),
        )
        return backup.remove_expired(self.folder, gone)

    async def list(self) -> list[BackupFile]:
        try:
            return await asyncio.to_thread(backup.listing, self.folder)
        except OSError as e:  # a folder that is not ours (a link planted there), unreadable
            raise StorageError(f"cannot list the backups: {e}") from e

    async def verify(self, name: str) -> Verified:
        """integrity_check now; a damaged backup is moved to failed/ with what was found, so
        it is listed as damaged (and never restored or counted) from then on."""
        async with self._lock:
            found = await self._find(name)
            problems = await asyncio.to_thread(backup.problems, found.path)
            moved = None
            if problems and found.ok:
                try:
                    moved = await asyncio.to_thread(
                        backup.mark_damaged, self.folder, name, problems
                    )
                except OSError as e:
                    raise StorageError(f"{name} is damaged but could not be set aside: {e}") from e
                log.warning("backup found damaged", name=name, problem=problems[0])
        return Verified(
            name=name,
            ok=not problems,
            problems=problems,
            schema_version=found.schema_version,
            moved_to=moved,
        )

    async def newest_good(self) -> BackupFile | None:
        for b in await self.list():
            if b.ok:
                return b
        return None

    async def _find(self, name: str) -> BackupFile:
        try:
            backup.check_name(name)
            return await asyncio.to_thread(backup.find, self.folder, name)
        except BackupError as e:
            raise NotFound(str(e)) from None
        except FileNotFoundError:
            raise NotFound(
                f"no backup named {name} in {self.folder}; `pm backup list` shows them"
            ) from None
        except OSError as e:
            raise StorageError(f"cannot read the backups: {e}") from e

    # --- swaps ----------------------------------------------------------------------------
    async def restore(self, name: str, report: Report = _quiet) -> Restored:
        found = await self._find(name)
        if not found.ok:
            raise InvalidState(f"{name} failed its check when it was made ({found.problem})")
        report(f"restoring {name}", 0)
        swapped = await self.swap_in(
            found.path, "before-restore", db_events.RESTORED, db_events.Restored(name=name)
        )
        try:
            await asyncio.to_thread(backup.remember_restored, self.folder, name)
        except OSError as e:  # restored all the same; only its protection from retention failed
            log.error("could not note the backup restored", name=name, error=str(e))
        report("done", 100)
        return Restored(
            name=name,
            safety_copy=swapped.safety_copy,
            schema_version=swapped.schema_version,
            migrated=swapped.migrated,
        )

    async def swap_in(
        self, incoming: str, label: str, kind: EventKind[S], event: S
    ) -> swap.Swapped:
        """Make `incoming` the live database under the paused writer (see daemon.store.swap)."""
        shipped = self._shipped()

        def run(events_seen: int) -> swap.Swapped:
            return swap.replace_live(
                self._db.path,
                incoming,
                backups_dir=self.folder,
                damaged_dir=self._paths.damaged_dir,
                now=self._clock(),
                shipped=shipped,
                migrate=True,
                label=label,
                events_seen=events_seen,
            )

        swapped = await self.exclusive(run)
        await self.announce(kind, msgspec.structs.replace(event, safety_copy=swapped.safety_copy))
        return swapped

    async def exclusive(self, fn: Callable[[int], T]) -> T:
        """Run `fn(events_seen)` with the database closed (Database.exclusive), one at a time
        with backups; a failure of the file work is a storage error saying what failed."""
        async with self._lock:
            try:
                return await self._db.exclusive(fn)
            except (swap.SwapError, BackupError, SalvageError, OSError) as e:
                raise StorageError(str(e)) from e

    async def announce(self, kind: EventKind[S], event: S) -> None:
        """Tell subscribers another file is live, and the daemon (which rescans projects)."""
        await self._emit(kind, event)
        log.info(kind.name, **msgspec.structs.asdict(event))
        if self._on_swapped is not None:
            self._on_swapped(kind.name)

    async def rescue_deleted(self) -> str:
        """The database file was deleted while the daemon had it open: write it out again
        from the writer's connection, which still holds every committed byte."""
        rescued = self._db.path + ".rescued"
        async with self._lock:
            if self._db.file_state() != "missing":  # a swap that held the lock put one there
                return self._db.path
            # A trial copy first, between two batches: if even that cannot be written (no
            # space), nothing is closed and the open file keeps everything for a later try.
            await self._db.maintain(lambda conn: backup.copy_connection(conn, rescued))
            await asyncio.to_thread(backup.remove_database, rescued)

            def last(conn: Any) -> None:  # after the final batch: everything is in the copy
                backup.copy_connection(conn, rescued)

            def put_back(events_seen: int) -> None:
                swap.reinstate(self._db.path, rescued)

            try:
                await self._db.exclusive(put_back, last=last)
            except (swap.SwapError, OSError) as e:
                raise StorageError(f"could not rescue the deleted database: {e}") from e
        await self.announce(db_events.RESCUED, db_events.Rescued(path=self._db.path))
        return self._db.path

    async def _emit(self, kind: EventKind[E], event: E) -> None:
        def op(tx: Tx) -> None:
            tx.emit(kind, event)

        try:
            await self._db.write(op)
        except Exception:  # the event is news, not data: a failure to record it is logged
            log.exception("could not record an event", type=kind.name)


def backup_job(service: BackupService) -> Callable[..., Any]:
    """The scheduler's `backup` kind."""

    async def run(report: Report) -> BackupMade:
        return await service.backup(report)

    return run
