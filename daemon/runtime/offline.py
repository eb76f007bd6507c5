"""The database's care while the daemon is not running, for `pm` to do itself.

When pm-agentd cannot start (a damaged file, a schema from a newer pm-agent) nobody can ask
it to restore a backup, so `pm backup restore`, `pm db rollback`, `pm db repair`, `pm db
check` and `pm db migrate` work on the files directly. They hold the daemon's instance lock
meanwhile: no daemon starts halfway through. Nothing here migrates after a swap: the daemon
does that at its next start (with a backup first).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

import msgspec

from daemon.runtime.config import Paths, load, resolve_paths
from daemon.runtime.startup import InstanceLock, StartupError
from daemon.store import backup, care, connection, migrations, swap
from daemon.store.backup import BackupFile


class OfflineError(Exception):
    """The operation cannot be done; the message says why and what to do instead."""


class Rolledback(msgspec.Struct, kw_only=True):
    backup: BackupFile
    swapped: swap.Swapped


class Migrated(msgspec.Struct, kw_only=True):
    schema_version: int
    applied: list[str]
    backup: str | None  # taken before migrating


def paths_from_config(env: Mapping[str, str] = os.environ) -> Paths:
    return resolve_paths(load({}, env), env)


@contextlib.contextmanager
def holding_lock(paths: Paths) -> Iterator[None]:
    """The daemon's instance lock: refuses if a daemon runs on this data directory."""
    if not os.path.isdir(paths.data_dir):
        raise OfflineError(f"there is no pm-agent data directory at {paths.data_dir}")
    lock = InstanceLock(paths.lock_path)
    try:
        lock.acquire()
    except StartupError as e:
        raise OfflineError(
            f"pm-agentd is running on {paths.data_dir} but does not answer ({e}); "
            "stop it (`pm daemon stop`) and try again"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _now() -> datetime:
    return datetime.now(UTC)


def _found(paths: Paths, name: str) -> BackupFile:
    try:
        return backup.find(paths.backups_dir, name)
    except backup.BackupError as e:
        raise OfflineError(str(e)) from None
    except FileNotFoundError:
        raise OfflineError(
            f"no backup named {name} in {paths.backups_dir}; `pm backup list` shows them"
        ) from None
    except OSError as e:
        raise OfflineError(f"cannot read the backups: {e}") from None


def _good(paths: Paths, name: str) -> BackupFile:
    found = _found(paths, name)
    if not found.ok:
        raise OfflineError(f"{name} failed its check when it was made ({found.problem})")
    return found


def listing(paths: Paths) -> list[BackupFile]:
    """Every backup, newest first (as `db.backups` lists them)."""
    try:
        return backup.listing(paths.backups_dir)
    except OSError as e:  # a folder that is not ours (a link planted there), unreadable
        raise OfflineError(f"cannot list the backups: {e}") from None


def restore(paths: Paths, name: str) -> swap.Swapped:
    with holding_lock(paths):
        found = _good(paths, name)
        swapped = _swap(paths, found.path, "before-restore")
        _remember(paths, name)
        return swapped


def verify(paths: Paths, name: str) -> dict[str, object]:
    """`integrity_check` on one backup; a damaged one goes to failed/ (listed as damaged
    from then on), as the daemon does."""
    with holding_lock(paths):
        found = _found(paths, name)
        problems = backup.problems(found.path)
        moved = None
        if problems and found.ok:
            try:
                moved = backup.mark_damaged(paths.backups_dir, name, problems)
            except OSError as e:
                raise OfflineError(f"{name} is damaged but could not be set aside: {e}") from None
        return {"name": name, "ok": not problems, "problems": problems,
                "schema_version": found.schema_version, "moved_to": moved}  # fmt: skip


def rollback_target(backups: list[BackupFile], live_version: int | None) -> BackupFile:
    """The backup `pm db rollback` restores: the newest good one taken before a migration,
    and only when the live database is at a newer schema than it (else there is nothing to
    roll back, and restoring it would only lose what was written since)."""
    for candidate in backups:
        if candidate.ok and candidate.label.startswith("before-migration"):
            older = candidate.schema_version
            if live_version is not None and older is not None and live_version <= older:
                raise OfflineError(
                    f"nothing to roll back: the database is at schema {live_version}, and the "
                    f"backup taken before the last migration ({candidate.name}) is at schema "
                    f"{older}; nothing was changed"
                )
            return candidate
    raise OfflineError(
        "no backup taken before a migration; nothing was changed (`pm backup list` shows the "
        "backups there are)"
    )


def rollback(paths: Paths) -> Rolledback:
    """Restore the backup taken before the last migration."""
    with holding_lock(paths):
        live = backup.schema_version_of(paths.db_path) if os.path.exists(paths.db_path) else None
        candidate = rollback_target(listing(paths), live)
        swapped = _swap(paths, candidate.path, "")
        _remember(paths, candidate.name)
        return Rolledback(backup=candidate, swapped=swapped)


def _remember(paths: Paths, name: str) -> None:
    with contextlib.suppress(OSError):  # restored all the same; only the note is missing
        backup.remember_restored(paths.backups_dir, name)


def _swap(paths: Paths, incoming: str, label: str) -> swap.Swapped:
    try:
        return swap.replace_live(
            paths.db_path,
            incoming,
            backups_dir=paths.backups_dir,
            damaged_dir=paths.damaged_dir,
            now=_now(),
            shipped=migrations.load(),
            migrate=False,
            label=label or "before-rollback",
        )
    except (swap.SwapError, OSError) as e:
        raise OfflineError(str(e)) from None


def repair(paths: Paths) -> care.RepairReport:
    with holding_lock(paths):
        _must_exist(paths)
        try:
            return care.repair_file(
                paths.db_path,
                backups_dir=paths.backups_dir,
                damaged_dir=paths.damaged_dir,
                now=_now(),
                shipped=migrations.load(),
                migrate=False,
            )
        except Exception as e:
            raise OfflineError(f"the repair failed: {e}") from e


def check(paths: Paths) -> care.CheckResult:
    with holding_lock(paths):
        _must_exist(paths)
        try:
            conn = backup.read_only(paths.db_path)
            try:
                return care.check(conn)
            finally:
                conn.close()
        except Exception as e:
            return care.CheckResult(
                ok=False, integrity=[f"cannot read the database: {e}"], foreign_keys=[],
                truncated=False,
            )  # fmt: skip


def backup_now(paths: Paths) -> backup.Copied:
    with holding_lock(paths):
        _must_exist(paths)
        try:
            return backup.take(paths.db_path, paths.backups_dir, _now())
        except (backup.BackupError, OSError) as e:
            raise OfflineError(str(e)) from None


def migrate(paths: Paths) -> Migrated:
    """Apply pending migrations now (a backup first), as the daemon would at start."""
    with holding_lock(paths):
        _must_exist(paths)
        found = backup.problems(paths.db_path, quick=True)
        if found:
            raise OfflineError(f"the database is damaged ({found[0]}); run `pm db repair` first")
        shipped = migrations.load()
        conn = connection.open_writer(paths.db_path, synchronous="FULL", busy_timeout_ms=5000)
        try:
            try:
                todo = migrations.pending(conn, shipped)
            except migrations.MigrationError as e:
                raise OfflineError(str(e)) from None
            made = None
            if todo and migrations.schema_version(conn) > 0:
                try:
                    made = backup.take(
                        paths.db_path, paths.backups_dir, _now(),
                        f"before-migration-{todo[0].version:04d}",
                    ).name  # fmt: skip
                except (backup.BackupError, OSError) as e:
                    raise OfflineError(
                        f"no backup could be taken, so nothing was migrated: {e}"
                    ) from None
            applied = migrations.migrate(conn, shipped)
            return Migrated(
                schema_version=migrations.schema_version(conn),
                applied=[m.filename for m in applied],
                backup=made,
            )
        finally:
            conn.close()


def _must_exist(paths: Paths) -> None:
    if not os.path.exists(paths.db_path):
        raise OfflineError(f"there is no database at {paths.db_path} yet")
