"""daemon.hello, daemon.status, daemon.shutdown, rpc.discover and $/cancelRequest."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgspec

from daemon import PROTOCOL_VERSION, __version__
from daemon.rpc import openrpc
from daemon.rpc.dispatcher import Call, State
from daemon.rpc.registry import NoParams, Params, Registry, rpc_method
from daemon.runtime.runtime_protocol import Runtime
from daemon.runtime.scan_plan import ScanSummary
from daemon.runtime.watcher import WatchStatus
from daemon.store.writer import WriterStats

CAPABILITIES = [
    "framing.ndjson",
    "framing.lsp",
    "batch",
    "progress",
    "cancel",
    "events",
]


class HelloParams(Params, frozen=True):
    client: str = ""
    client_version: str = ""
    protocol_version: int | None = None


class Hello(msgspec.Struct, kw_only=True):
    daemon_version: str
    protocol_version: int
    schema_version: int
    capabilities: list[str]
    pid: int
    state: State
    compatible: bool


class DevRoot(msgspec.Struct, kw_only=True):
    path: str
    exists: bool  # false: nothing is found or watched there (db.health says how to fix it)


def _dev_roots(paths: list[str]) -> list[DevRoot]:
    """In a thread: a Dev root on a network share that hangs must not stall the loop."""
    return [DevRoot(path=path, exists=os.path.isdir(path)) for path in paths]


class Status(msgspec.Struct, kw_only=True):
    state: State
    version: str
    protocol_version: int
    pid: int
    started_at: str
    uptime_s: float
    socket: str
    socket_activated: bool
    data_dir: str
    db_path: str
    dev_root: str
    dev_roots: list[DevRoot]  # the folders searched and watched for projects
    schema_version: int
    connections: int
    subscriptions: int
    queue_depth: int
    writer: WriterStats | None
    watcher: WatchStatus
    last_scan: ScanSummary | None


class Stopping(msgspec.Struct):
    stopping: bool


class CancelParams(Params, frozen=True):
    id: int | float | str | None


class DaemonApi:
    def __init__(self, runtime: Runtime, registry: Registry) -> None:
        self._runtime = runtime
        self._registry = registry
        self._discover: dict[str, Any] | None = None

    @rpc_method("daemon.hello", when_starting=True)
    async def hello(self, call: Call, params: HelloParams) -> Hello:
        """Exchange versions and capabilities.

        A client compares `protocol_version` with its own and refuses or restarts a
        mismatched daemon; `compatible` is the daemon's own verdict on the client's.
        """
        rt = self._runtime
        return Hello(
            daemon_version=__version__,
            protocol_version=PROTOCOL_VERSION,
            schema_version=rt.schema_version,
            capabilities=CAPABILITIES,
            pid=os.getpid(),
            state=rt.state,
            compatible=params.protocol_version in (None, PROTOCOL_VERSION),
        )

    @rpc_method("daemon.status", when_starting=True)
    async def status(self, call: Call, params: NoParams) -> Status:
        """State (starting, migrating, ready, stopping), pid, uptime, paths and queue figures."""
        rt = self._runtime
        stats = rt.writer_stats()
        return Status(
            state=rt.state,
            version=__version__,
            protocol_version=PROTOCOL_VERSION,
            pid=os.getpid(),
            started_at=rt.started_at,
            uptime_s=round(rt.uptime_s, 3),
            socket=rt.paths.socket_path,
            socket_activated=rt.socket_activated,
            data_dir=rt.paths.data_dir,
            db_path=rt.paths.db_path,
            dev_root=rt.paths.dev_root,
            dev_roots=await asyncio.to_thread(_dev_roots, [rt.paths.dev_root]),
            schema_version=rt.schema_version,
            connections=rt.connections,
            subscriptions=rt.subscriptions,
            queue_depth=stats.queue_depth if stats else 0,
            writer=stats,
            watcher=rt.watch_status(),
            last_scan=rt.last_scan,
        )

    @rpc_method("daemon.shutdown", when_starting=True)
    async def shutdown(self, call: Call, params: NoParams) -> Stopping:
        """Stop gracefully: finish what is in flight, commit what is queued, then exit."""
        call.after_reply(lambda: self._runtime.request_shutdown("daemon.shutdown"))
        return Stopping(stopping=True)

    @rpc_method("rpc.discover", when_starting=True)
    async def discover(self, call: Call, params: NoParams) -> dict[str, Any]:
        """The OpenRPC document of every method, generated from the method registry."""
        if self._discover is None:
            self._discover = openrpc.document(self._registry, version=__version__)
        return self._discover

    @rpc_method("$/cancelRequest", when_starting=True)
    async def cancel_request(self, call: Call, params: CancelParams) -> None:
        """Cancel an in-flight request of this connection (LSP); it answers -32800."""
        call.session.cancel(params.id, "client")
