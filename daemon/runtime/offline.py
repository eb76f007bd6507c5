"""The client's one door into the daemon's code: `answer(question, params)`.

`pm` never imports the daemon's modules (tests/test_client_imports.py holds it to that) but
this one, and from it only `answer` and `OfflineError`. Through it go what `pm doctor` reads
without a daemon (the config's paths, why the daemon last stopped, a quick_check) and the
database's care while the daemon is not running: when pm-agentd cannot start (a damaged file,
a schema from a newer pm-agent) nobody can ask it to restore a backup, so `pm backup
list|verify|restore|now` and `pm db check|repair|migrate|rollback` work on the files directly.
They hold the daemon's instance lock meanwhile: no daemon starts halfway through. Nothing here
migrates after a swap: the daemon does that at its next start (with a backup first).

Answers are plain data (dicts, lists, strings, numbers, None), never the daemon's types.
In-process, not `pm-agentd offline …` in a subprocess: both import the same modules, and a
second interpreter only adds its start-up (bench figures in the client's closing note).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from daemon.platform import private_folders
from daemon.runtime import start_failure
from daemon.runtime.config import (
    ConfigError,
    Paths,
    check_dev_root,
    dev_root_fix,
    load,
    resolve_paths,
    unknown_environment,
)
from daemon.runtime.startup import SUN_PATH_MAX, InstanceLock, StartupError
from daemon.store import backup, care, connection, export, migrations, swap
from daemon.store.backup import BackupFile


class OfflineError(Exception):
    """The question cannot be answered; the message says why, `fix` what to do instead, and
    `kind` what went wrong ("offline", or the config's "config" / "dev_root")."""

    def __init__(self, message: str, *, kind: str = "offline", fix: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.fix = fix


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


# --- the door -------------------------------------------------------------------------------
def _paths() -> Paths:
    return paths_from_config()


def _cannot_start() -> dict[str, str] | None:
    """What in the config stops the daemon from starting now, with its fix; or None."""
    try:
        check_dev_root(paths_from_config())
    except ConfigError as e:
        return {"message": str(e), "fix": e.fix, "kind": e.kind}
    return None


def _backup_list() -> dict[str, Any]:
    paths = paths_from_config()
    return {"folder": paths.backups_dir, "items": listing(paths)}


def _rollback_target(backups: list[Any], live_version: int | None) -> BackupFile:
    return rollback_target(msgspec.convert(backups, list[BackupFile]), live_version)


def _import_inbox(data_dir: str) -> str:
    """The folder below the data folder where `pm db import` puts a copy of what it imports:
    made (0700) and checked to be the daemon's own."""
    inbox = os.path.join(data_dir, export.IMPORTS_DIR)
    try:
        private_folders.check(inbox, what=export.IMPORTS)
    except OSError as e:
        raise OfflineError(str(e)) from None
    return inbox


def _on_files(operation: Callable[..., Any]) -> Callable[..., Any]:
    """`operation(paths, …)` on the files the config names."""

    def run(**params: Any) -> Any:
        return operation(paths_from_config(), **params)

    return run


QUESTIONS: dict[str, Callable[..., Any]] = {
    # what `pm doctor` reads when no daemon answers (and of the config at all times)
    "paths": _paths,
    "cannot_start": _cannot_start,
    "unknown_environment": unknown_environment,
    "dev_root_fix": dev_root_fix,
    "socket_path_max": lambda: SUN_PATH_MAX,
    "start_failure": start_failure.read,
    "quick_check": lambda db_path: backup.problems(db_path, quick=True),
    "backups_in": lambda folder: backup.listing(folder, with_versions=False),
    # the recovery commands with the daemon down
    "backup_list": _backup_list,
    "backup_now": _on_files(backup_now),
    "backup_verify": _on_files(verify),
    "backup_restore": _on_files(restore),
    "db_check": _on_files(check),
    "db_repair": _on_files(repair),
    "db_migrate": _on_files(migrate),
    "db_rollback": _on_files(rollback),
    # what they check with the daemon up
    "rollback_target": _rollback_target,
    "import_inbox": _import_inbox,
}


def answer(question: str, params: Mapping[str, Any] | None = None) -> Any:
    """The answer to `question` (a key of QUESTIONS) as plain data. OfflineError when it
    cannot be given (its message says why, its `fix` what to do); ValueError for a question
    that does not exist."""
    try:
        found = QUESTIONS[question]
    except KeyError:
        raise ValueError(f"no question {question!r}; there are {', '.join(QUESTIONS)}") from None
    try:
        return msgspec.to_builtins(found(**(params or {})))
    except ConfigError as e:
        raise OfflineError(str(e), kind=e.kind, fix=e.fix) from None
