"""kv.get, kv.set, kv.delete, kv.list, kv.clear."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from daemon.domain.kv.service import KvService, Page, SetOutcome
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Params, ProgressParams, rpc_method
from daemon.store.limits import Limit, Offset

Namespace = Annotated[str, msgspec.Meta(min_length=1, max_length=256, description="namespace")]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=1024, description="key")]
Prefix = Annotated[str, msgspec.Meta(max_length=1024, description="only keys starting with this")]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True, description="ISO 8601 with a timezone")]
Ttl = Annotated[float, msgspec.Meta(gt=0, description="seconds from now until it expires")]


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


class Deleted(msgspec.Struct):
    deleted: bool


class Cleared(msgspec.Struct):
    deleted: int


class KvApi:
    def __init__(self, kv: KvService) -> None:
        self._kv = kv

    @rpc_method("kv.get")
    async def get(self, call: Call, params: KvKeyParams) -> Value:
        """Read one value; `value` is null when the key is absent or expired."""
        entry = await self._kv.get(params.namespace, params.key)
        if entry is None:
            return Value(value=None)
        return Value(value=entry.value, updated_at=entry.updated_at, expires_at=entry.expires_at)

    @rpc_method("kv.set")
    async def set(self, call: Call, params: KvSetParams) -> SetOutcome:
        """Store any JSON value under (namespace, key), optionally expiring.

        Acknowledged only once committed. `expires_at` (an absolute time) or `ttl_s`
        (seconds from now) make the entry read as absent after that moment.
        """
        return await self._kv.set(
            params.namespace, params.key, params.value, params.expires_at, params.ttl_s
        )

    @rpc_method("kv.delete")
    async def delete(self, call: Call, params: KvKeyParams) -> Deleted:
        """Remove one entry; `deleted` says whether a live entry was there."""
        return Deleted(await self._kv.delete(params.namespace, params.key))

    @rpc_method("kv.list")
    async def list(self, call: Call, params: KvListParams) -> Page:
        """Live entries ordered by namespace and key, optionally one namespace or key prefix."""
        if params.prefix and params.namespace is None:
            raise InvalidParams("Invalid params: prefix needs a namespace", field="prefix")
        return await self._kv.list(params.namespace, params.prefix, params.limit, params.offset)

    @rpc_method("kv.clear")
    async def clear(self, call: Call, params: KvClearParams) -> Cleared:
        """Delete a whole namespace, or the keys under `prefix`, reporting `$/progress`.

        Runs in chunks of 1000, each committed on its own; a `$/cancelRequest` stops it
        between chunks and the error's data says how many were already deleted.
        """
        call.progress("deleting", 0)

        def report(done: int, total: int) -> None:
            call.progress(f"{done} of {total} deleted", 100 * done // total if total else 100)

        deleted = await self._kv.clear(
            params.namespace, params.prefix, report, call.check_cancelled, call.partial
        )
        return Cleared(deleted)
