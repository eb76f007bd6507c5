"""The key-value store: namespaced JSON values with optional expiry.

Every change is one write operation through the writer and emits an event (`kv.set`,
`kv.deleted`, `kv.cleared`) in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec

from daemon.domain.kv import sql as kv_db
from daemon.domain.kv.sql import KvEntry
from daemon.rpc.errors import InvalidParams, TooLarge
from daemon.store.clock import iso, utc_now
from daemon.store.database import Database
from daemon.store.writer import Tx

MAX_VALUE_BYTES = 1024 * 1024
CLEAR_CHUNK = 1000


class SetOutcome(msgspec.Struct, kw_only=True):
    created: bool
    updated_at: str
    expires_at: str | None


class Page(msgspec.Struct, kw_only=True):
    items: list[KvEntry]
    total: int


def expiry(expires_at: datetime | None, ttl_s: float | None) -> str | None:
    """The stored expiry for an `expires_at` or a `ttl_s` (never both), refusing the past."""
    if expires_at is None and ttl_s is None:
        return None
    now = datetime.now(UTC)
    if expires_at is not None and ttl_s is not None:
        raise InvalidParams("Invalid params: give expires_at or ttl_s, not both", field="ttl_s")
    if ttl_s is not None:
        if ttl_s <= 0:
            raise InvalidParams("Invalid params: ttl_s must be positive", field="ttl_s")
        return iso(now + timedelta(seconds=ttl_s))
    if expires_at is not None:
        if expires_at <= now:
            raise InvalidParams(
                f"Invalid params: expires_at {iso(expires_at)} is in the past", field="expires_at"
            )
        return iso(expires_at)
    return None


class KvService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, namespace: str, key: str) -> KvEntry | None:
        return await self._db.read(kv_db.get, namespace, key, utc_now())

    async def set(
        self,
        namespace: str,
        key: str,
        value: msgspec.Raw,
        expires_at: datetime | None = None,
        ttl_s: float | None = None,
    ) -> SetOutcome:
        if len(value) > MAX_VALUE_BYTES:
            raise TooLarge(
                f"value of {len(value)} bytes exceeds the limit of {MAX_VALUE_BYTES} bytes",
                limit=MAX_VALUE_BYTES,
            )
        expires = expiry(expires_at, ttl_s)
        value_json = bytes(value).decode("utf-8")

        def op(tx: Tx) -> SetOutcome:
            created = kv_db.put(tx.conn, namespace, key, value_json, tx.now, expires)
            tx.emit(
                "kv.set",
                {"namespace": namespace, "key": key, "value": value, "expires_at": expires},
            )
            return SetOutcome(created=created, updated_at=tx.now, expires_at=expires)

        return await self._db.write(op)

    async def delete(self, namespace: str, key: str) -> bool:
        def op(tx: Tx) -> bool:
            deleted = kv_db.delete(tx.conn, namespace, key, tx.now)
            if deleted:
                tx.emit("kv.deleted", {"namespace": namespace, "key": key})
            return deleted

        return await self._db.write(op)

    async def list(
        self, namespace: str | None, prefix: str | None, limit: int, offset: int
    ) -> Page:
        now = utc_now()

        def page(conn: sqlite3.Connection) -> Page:
            # One reader call; always counted: a page may stop short of `limit` at its byte
            # budget, so a short page is not proof it holds everything.
            items = kv_db.list_entries(conn, namespace, prefix, now, limit, offset)
            return Page(items=items, total=kv_db.count(conn, namespace, prefix, now))

        return await self._db.read(page)

    async def clear(
        self,
        namespace: str,
        prefix: str | None,
        report: Callable[[int, int], None],
        check_cancelled: Callable[[], None],
        deleted_so_far: dict[str, int],
    ) -> int:
        """Delete a namespace (or the keys under `prefix`) in chunks, each its own transaction,
        so other writers interleave and a cancellation stops between chunks."""
        total = await self._db.read(kv_db.count, namespace, prefix, None)

        def op(tx: Tx) -> int:
            keys = kv_db.delete_chunk(tx.conn, namespace, prefix, CLEAR_CHUNK)
            if keys:
                tx.emit("kv.cleared", {"namespace": namespace, "prefix": prefix, "keys": keys})
            return len(keys)

        deleted = 0
        while True:
            check_cancelled()
            removed = await self._db.write(op)
            deleted += removed
            deleted_so_far["deleted"] = deleted
            report(deleted, max(total, deleted))
            if removed < CLEAR_CHUNK:
                return deleted
