"""daemon.hello, daemon.status, daemon.shutdown, rpc.discover and $/cancelRequest."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import msgspec

from daemon import PROTOCOL_VERSION, __version__
from daemon.domain.projects.scanning import ScanSummary
from daemon.rpc.dispatcher import Call, State
from daemon.rpc.registry import Methods, NoParams, Params
from daemon.runtime.watcher import WatchStatus
from daemon.store.inline_reads import ReadStats
from daemon.store.writer_stats import WriterStats

if TYPE_CHECKING:
    from daemon.runtime.lifecycle import Daemon

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
    reads: ReadStats | None  # where reads ran: the loop's own connection or reader threads
    watcher: WatchStatus
    last_scan: ScanSummary | None


class Stopping(msgspec.Struct):
    stopping: bool


class CancelParams(Params, frozen=True):
    id: int | float | str | None


methods = Methods()


@methods("daemon.hello", when_starting=True)
async def hello(d: Daemon, call: Call, params: HelloParams) -> Hello:
    """Exchange versions and capabilities.

    A client compares `protocol_version` with its own and refuses or restarts a
    mismatched daemon; `compatible` is the daemon's own verdict on the client's.
    """
    return Hello(
        daemon_version=__version__,
        protocol_version=PROTOCOL_VERSION,
        schema_version=d.db.schema_version,
        capabilities=CAPABILITIES,
        pid=os.getpid(),
        state=d.state,
        compatible=params.protocol_version in (None, PROTOCOL_VERSION),
    )


@methods("daemon.status", when_starting=True)
async def status(d: Daemon, call: Call, params: NoParams) -> Status:
    """State (starting, migrating, ready, stopping), pid, uptime, paths and queue figures."""
    stats = d.db.writer_stats() if d.db_started else None
    return Status(
        state=d.state,
        version=__version__,
        protocol_version=PROTOCOL_VERSION,
        pid=os.getpid(),
        started_at=d.started_at,
        uptime_s=round(d.uptime_s, 3),
        socket=d.paths.socket_path,
        socket_activated=d.socket_activated,
        data_dir=d.paths.data_dir,
        db_path=d.paths.db_path,
        dev_root=d.paths.dev_root,
        dev_roots=await asyncio.to_thread(_dev_roots, [d.paths.dev_root]),
        schema_version=d.db.schema_version,
        connections=len(d.server.connections),
        subscriptions=d.bus.count,
        queue_depth=stats.queue_depth if stats else 0,
        writer=stats,
        reads=d.db.read_stats(),
        watcher=d.watcher.status(),
        last_scan=d.scanner.last_full_scan,
    )


@methods("daemon.shutdown", when_starting=True)
async def shutdown(d: Daemon, call: Call, params: NoParams) -> Stopping:
    """Stop gracefully: finish what is in flight, commit what is queued, then exit."""
    call.after_reply(lambda: d.request_shutdown("daemon.shutdown"))
    return Stopping(stopping=True)


@methods("rpc.discover", when_starting=True)
async def discover(d: Daemon, call: Call, params: NoParams) -> dict[str, Any]:
    """The OpenRPC document of every method, generated from the method registry."""
    return d.discover_document()


@methods("$/cancelRequest", when_starting=True)
async def cancel_request(d: Daemon, call: Call, params: CancelParams) -> None:
    """Cancel an in-flight request of this connection (LSP); it answers -32800."""
    call.session.cancel(params.id, "client")
