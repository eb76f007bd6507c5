"""db.backup, db.backups, db.verify, db.restore."""

from __future__ import annotations

from typing import Annotated

import msgspec

from daemon.rpc.dispatcher import Call
from daemon.rpc.registry import NoParams, Params, ProgressParams, rpc_method
from daemon.runtime.backups import BackupMade, BackupService, Restored, Verified
from daemon.store.backup import BackupFile

BackupName = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=255, description="a backup's file name, as db.backups lists it"
    ),
]


class BackupNameParams(Params, frozen=True):
    name: BackupName


class RestoreParams(ProgressParams, frozen=True, kw_only=True):
    name: BackupName


class BackupList(msgspec.Struct, kw_only=True):
    folder: str
    items: list[BackupFile]  # newest first; failed ones have ok = false and a problem


class BackupApi:
    def __init__(self, backups: BackupService) -> None:
        self._backups = backups

    @rpc_method("db.backup")
    async def backup(self, call: Call, params: ProgressParams) -> BackupMade:
        """Back the database up now, with `$/progress`; answers once the copy is verified.

        The copy reads one snapshot from a connection of its own: writes go on meanwhile.
        Retention then removes what it no longer keeps (listed in `removed`): safety copies
        (`…_before-*.db`) are counted apart from regular backups, and the backup last restored
        is never removed.
        """
        return await self._backups.backup(call.progress)

    @rpc_method("db.backups")
    async def backups(self, call: Call, params: NoParams) -> BackupList:
        """Every backup, newest first, with its size, label and schema version; those that
        failed their check when they were made are listed with `ok: false`."""
        return BackupList(folder=self._backups.folder, items=await self._backups.list())

    @rpc_method("db.verify")
    async def verify(self, call: Call, params: BackupNameParams) -> Verified:
        """Run `integrity_check` on one backup now. A damaged one is set aside in `failed/`
        (`moved_to`): listed as damaged from then on, never restored or counted by retention."""
        return await self._backups.verify(params.name)

    @rpc_method("db.restore")
    async def restore(self, call: Call, params: RestoreParams) -> Restored:
        """Make a backup the live database, with `$/progress`.

        Writes and reads wait (they are not refused) while everything already queued is
        committed, the current file is kept as a `…_before-restore.db` backup, the backup is
        swapped in, checked and migrated. On any failure the current file is put back and the
        error says what failed. Subscribers get a `db.restored` event.
        """
        return await self._backups.restore(params.name, call.progress)
