"""The `db.*` events: another file became the live database, or a backup was (not) made.

Subscribers (editors with cached state, sync) learn from these that what they read before
may no longer hold."""

from __future__ import annotations

import msgspec

from daemon.store.events_catalogue import EventKind


class BackedUp(msgspec.Struct, kw_only=True):
    name: str
    bytes: int


class BackupFailed(msgspec.Struct, kw_only=True):
    error: str


class Swapped(msgspec.Struct, kw_only=True):
    """Another file is live; `safety_copy` names the backup of the one it replaced."""

    safety_copy: str | None = None


class Restored(Swapped, kw_only=True):
    name: str


class Reset(Swapped, kw_only=True):
    pass


class Imported(Swapped, kw_only=True):
    source: str


class Repaired(Swapped, kw_only=True):
    action: str
    damaged_copy: str | None


class Rescued(Swapped, kw_only=True):
    path: str


BACKED_UP = EventKind("db.backed_up", BackedUp)
BACKUP_FAILED = EventKind("db.backup_failed", BackupFailed)
RESTORED = EventKind("db.restored", Restored)
RESET = EventKind("db.reset", Reset)
IMPORTED = EventKind("db.imported", Imported)
REPAIRED = EventKind("db.repaired", Repaired)
RESCUED = EventKind("db.rescued", Rescued)
