"""What the daemon-level methods need to know about the running daemon."""

from __future__ import annotations

from typing import Protocol

from daemon.rpc.dispatcher import State
from daemon.runtime.config import Paths
from daemon.runtime.scan_plan import ScanSummary
from daemon.runtime.watcher import WatchStatus
from daemon.store.writer import WriterStats


class Runtime(Protocol):
    @property
    def state(self) -> State: ...

    @property
    def paths(self) -> Paths: ...

    @property
    def started_at(self) -> str: ...

    @property
    def uptime_s(self) -> float: ...

    @property
    def schema_version(self) -> int: ...

    @property
    def connections(self) -> int: ...

    @property
    def subscriptions(self) -> int: ...

    @property
    def socket_activated(self) -> bool: ...

    def writer_stats(self) -> WriterStats | None: ...

    def watch_status(self) -> WatchStatus: ...

    @property
    def last_scan(self) -> ScanSummary | None: ...

    def request_shutdown(self, reason: str) -> None: ...

    def database_warnings(self) -> list[str]: ...
