"""kv: namespaced JSON values with optional expiry (key_value_store, cached_state).

Its own rules: a key is (namespace, key), not an id; writing a key is one upsert; an expired
entry reads as absent, and writing it again makes a new entry (the old one is deleted, with its
event); `kv.clear` deletes a namespace or key prefix in chunks a cancellation can stop between.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec

from daemon.domain.app import App
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams, TooLarge
from daemon.rpc.registry import Methods, Params, ProgressParams
from daemon.store.batch import Tx
from daemon.store.clock import iso, utc_now
from daemon.store.events_catalogue import EventKind
from daemon.store.limits import Limit, Offset
from daemon.store.table import Page, Row, Table, Where
from daemon.store.uid import uuid7

MAX_VALUE_BYTES = 1024 * 1024
CLEAR_CHUNK = 1000

Namespace = Annotated[str, msgspec.Meta(min_length=1, max_length=256, description="namespace")]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=1024, description="key")]
Prefix = Annotated[str, msgspec.Meta(max_length=1024, description="only keys starting with this")]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True, description="ISO 8601 with a timezone")]
Ttl = Annotated[float, msgspec.Meta(gt=0, description="seconds from now until it expires")]


class KvEntry(Row, kw_only=True):
    namespace: Namespace
    key: Key
    value: msgspec.Raw
    expires_at: str | None = None


KV = Table("kv", KvEntry, orders={"key": "t.namespace, t.key"}, identity=("namespace", "key"))


class KvCleared(msgspec.Struct, kw_only=True):
    """`kv.cleared`: one chunk of a `kv.clear`, every entry it deleted."""

    namespace: str
    prefix: str | None
    keys: list[str]
    ids: list[int]
    uids: list[str]


CLEARED = EventKind("kv.cleared", KvCleared)

_LIVE = "t.expires_at IS NULL OR t.expires_at > ?"


# --- params and results -------------------------------------------------------------------------
class KvKeyParams(Params, frozen=True):
    namespace: Namespace
    key: Key


class KvSetParams(Params, frozen=True):
    namespace: Namespace
    key: Key
    value: msgspec.Raw
    expires_at: UtcTime | None = None
    ttl_s: Ttl | None = None


class KvListParams(Params, frozen=True):
    namespace: Namespace | None = None
    prefix: Prefix | None = None
    limit: Limit = 100
    offset: Offset = 0


class KvClearParams(ProgressParams, frozen=True):
    namespace: Namespace
    prefix: Prefix | None = None


class Value(msgspec.Struct, kw_only=True):
    value: msgspec.Raw | None
    updated_at: str | None = None
    expires_at: str | None = None


class SetOutcome(msgspec.Struct, kw_only=True):
    created: bool
    updated_at: str
    expires_at: str | None
    version: int


class Deleted(msgspec.Struct):
    deleted: bool


class Cleared(msgspec.Struct):
    deleted: int


# --- rules --------------------------------------------------------------------------------------
def expiry(expires_at: datetime | None, ttl_s: float | None) -> str | None:
    """The stored expiry for an `expires_at` or a `ttl_s` (never both), refusing the past."""
    if expires_at is not None and ttl_s is not None:
        raise InvalidParams("Invalid params: give expires_at or ttl_s, not both", field="ttl_s")
    now = datetime.now(UTC)
    if ttl_s is not None:
        return iso(now + timedelta(seconds=ttl_s))
    if expires_at is not None:
        if expires_at <= now:
            raise InvalidParams(
                f"Invalid params: expires_at {iso(expires_at)} is in the past", field="expires_at"
            )
        return iso(expires_at)
    return None


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with `prefix` (None: no bound).

    SQLite compares TEXT by its UTF-8 bytes, which orders like code points, so incrementing
    the last code point gives a bound that lets the (namespace, key) index do the range scan.
    """
    chars = list(prefix)
    while chars:
        nxt = ord(chars.pop()) + 1
        if 0xD800 <= nxt <= 0xDFFF:
            nxt = 0xE000  # surrogates cannot be encoded; the next encodable code point
        if nxt <= 0x10FFFF:
            return "".join(chars) + chr(nxt)
    return None


def scope(namespace: str | None, prefix: str | None) -> Where:
    where = Where(KV)
    if namespace is not None:
        where.eq("namespace", namespace)
        if prefix:
            where.sql("t.key >= ?", prefix)
            upper = prefix_upper_bound(prefix)
            if upper is not None:
                where.sql("t.key < ?", upper)
    return where


# kv.set is the hottest write there is: it finds the entry by its key and writes only what
# changes, and its events are built from what it already knows (an UPSERT returning the whole
# row as JSON, then decoded, cost twice as much on the event loop: bench/RESULTS.md).
_FIND = "SELECT id, uid, created_at, version, expires_at FROM kv WHERE namespace = ? AND key = ?"
_UPDATE = "UPDATE kv SET value = ?, updated_at = ?, expires_at = ?, version = ? WHERE id = ?"
_INSERT = (
    "INSERT INTO kv (uid, created_at, updated_at, version, namespace, key, value, expires_at) "
    "VALUES (?, ?, ?, 1, ?, ?, ?, ?)"
)


def put(tx: Tx, namespace: str, key: str, value: msgspec.Raw, expires: str | None) -> KvEntry:
    """Insert or replace one entry, with its event; an expired one is deleted first (its
    `kv.deleted`), so writing it again makes a new entry."""
    text = bytes(value).decode("utf-8")
    now = tx.now
    found = tx.conn.execute(_FIND, (namespace, key)).fetchone()
    if found is not None:
        row_id, uid, created_at, version, old_expiry = found
        entry = KvEntry(
            id=row_id, uid=uid, created_at=created_at, updated_at=now, version=version + 1,
            namespace=namespace, key=key, value=value, expires_at=expires,
        )  # fmt: skip
        if old_expiry is None or old_expiry > now:
            tx.conn.execute(_UPDATE, (text, now, expires, entry.version, row_id))
            tx.emit(KV.updated, KV.updated_event(entry, {"value": value, "expires_at": expires}))
            return entry
        tx.conn.execute("DELETE FROM kv WHERE id = ?", (row_id,))
        tx.emit(KV.deleted, KV.deleted_event(entry))
    uid = uuid7()
    row_id = tx.conn.execute(_INSERT, (uid, now, now, namespace, key, text, expires)).lastrowid
    assert row_id is not None  # an INSERT into a rowid table
    entry = KvEntry(
        id=row_id, uid=uid, created_at=now, updated_at=now, version=1,
        namespace=namespace, key=key, value=value, expires_at=expires,
    )  # fmt: skip
    tx.emit(KV.created, entry)
    return entry


def delete_chunk(tx: Tx, namespace: str, prefix: str | None) -> int:
    """Up to CLEAR_CHUNK entries of the scope (expired ones too), with one `kv.cleared`."""
    sql, args = scope(namespace, prefix).render()
    rows = tx.conn.execute(
        f"DELETE FROM kv WHERE id IN (SELECT t.id FROM kv AS t{sql} ORDER BY t.key LIMIT ?) "
        "RETURNING id, uid, key",
        (*args, CLEAR_CHUNK),
    ).fetchall()
    if rows:
        rows.sort(key=lambda r: r[2])
        tx.emit(
            CLEARED,
            KvCleared(
                namespace=namespace,
                prefix=prefix,
                keys=[r[2] for r in rows],
                ids=[r[0] for r in rows],
                uids=[r[1] for r in rows],
            ),
        )
    return len(rows)


# --- methods ------------------------------------------------------------------------------------
methods = Methods()


# kv.get is the hottest read there is: the three columns it answers with, not the whole row
# (half the time of the generic KV.first, ~4.5 µs of a ~40 µs request: bench/RESULTS.md).
_VALUE = f"SELECT value, updated_at, expires_at FROM kv AS t WHERE t.namespace = ? AND t.key = ? AND ({_LIVE})"  # noqa: E501


def read_value(conn: sqlite3.Connection, namespace: str, key: str, now: str) -> Value:
    row = conn.execute(_VALUE, (namespace, key, now)).fetchone()
    if row is None:
        return Value(value=None)
    return Value(value=msgspec.Raw(row[0].encode()), updated_at=row[1], expires_at=row[2])


@methods("kv.get")
async def get(app: App, call: Call, p: KvKeyParams) -> Value:
    """Read one value; `value` is null when the key is absent or expired."""
    return await app.db.read(read_value, p.namespace, p.key, utc_now())


@methods("kv.set")
async def set_(app: App, call: Call, p: KvSetParams) -> SetOutcome:
    """Store any JSON value under (namespace, key), optionally expiring.

    Acknowledged only once committed. `expires_at` (an absolute time) or `ttl_s` (seconds
    from now) make the entry read as absent after that moment.
    """
    if len(p.value) > MAX_VALUE_BYTES:
        raise TooLarge(
            f"value of {len(p.value)} bytes exceeds the limit of {MAX_VALUE_BYTES} bytes",
            limit=MAX_VALUE_BYTES,
        )
    expires = expiry(p.expires_at, p.ttl_s)
    entry = await app.db.write(lambda tx: put(tx, p.namespace, p.key, p.value, expires))
    return SetOutcome(
        created=entry.version == 1,
        updated_at=entry.updated_at,
        expires_at=entry.expires_at,
        version=entry.version,
    )


@methods("kv.delete")
async def delete(app: App, call: Call, p: KvKeyParams) -> Deleted:
    """Remove one entry; `deleted` says whether a live entry was there."""

    def op(tx: Tx) -> bool:
        row = tx.conn.execute(
            f"DELETE FROM kv WHERE namespace = ? AND key = ? {KV.returning}",
            (p.namespace, p.key),
        ).fetchone()
        if row is None:
            return False
        entry = KV.decode(row[0])
        tx.emit(KV.deleted, KV.deleted_event(entry))
        return entry.expires_at is None or entry.expires_at > tx.now

    return Deleted(await app.db.write(op))


@methods("kv.list")
async def list_(app: App, call: Call, p: KvListParams) -> Page[KvEntry]:
    """Live entries ordered by namespace and key, optionally one namespace or key prefix."""
    if p.prefix and p.namespace is None:
        raise InvalidParams("Invalid params: prefix needs a namespace", field="prefix")
    where = scope(p.namespace, p.prefix).sql(_LIVE, utc_now())
    return await app.db.read(KV.page, where, "key", p.limit, p.offset)


@methods("kv.clear")
async def clear(app: App, call: Call, p: KvClearParams) -> Cleared:
    """Delete a whole namespace, or the keys under `prefix`, reporting `$/progress`.

    Runs in chunks of 1000, each committed on its own; a `$/cancelRequest` stops it between
    chunks and the error's data says how many were already deleted.
    """
    call.progress("deleting", 0)
    total = await app.db.read(KV.count, scope(p.namespace, p.prefix))

    def report(done: int) -> None:
        of = max(total, done)
        call.progress(f"{done} of {of} deleted", 100 * done // of if of else 100)

    deleted = 0
    while True:
        call.check_cancelled()
        removed = await app.db.write(
            lambda tx: delete_chunk(tx, p.namespace, p.prefix),
            heavy=True,  # CLEAR_CHUNK rows
        )
        deleted += removed
        call.partial["deleted"] = deleted
        report(deleted)
        if removed < CLEAR_CHUNK:
            return Cleared(deleted)
