"""The daemon's writer over a load's window, read from daemon.status: batches, writes, CPU."""

from __future__ import annotations

import time
from typing import Any

from bench import common


class WriterProbe:
    """Over the window: the daemon's CPU per thread, and its writer's batches and writes (from
    daemon.status counters), so the mean batch and the batch cycle can be worked out."""

    def __init__(self, daemon: common.Daemon) -> None:
        assert daemon.process is not None
        self.daemon = daemon
        self.cpu = common.ThreadCpu(daemon.process.pid)
        self.at_begin: dict[str, Any] = {}
        self._started = 0.0
        self.batches = self.writes = 0
        self.elapsed = 0.0
        self.status: dict[str, Any] = {}  # the writer's figures at the end of the window

    def _writer(self) -> dict[str, Any]:
        status = self.daemon.call("daemon.status") or {}
        writer: dict[str, Any] = status.get("writer", {})
        return writer

    def begin(self) -> None:
        self.at_begin = self._writer()
        self._started = time.monotonic()
        self.cpu.begin()

    def end(self) -> None:
        self.cpu.end()
        self.elapsed = time.monotonic() - self._started
        self.status = self._writer()
        self.batches = self.status.get("batches", 0) - self.at_begin.get("batches", 0)
        self.writes = self.status.get("writes", 0) - self.at_begin.get("writes", 0)

    @property
    def mean_batch(self) -> float:
        return self.writes / self.batches if self.batches else 0.0

    @property
    def cycle_ms(self) -> float:
        """Wall time from one batch's start to the next's, on average."""
        return self.elapsed / self.batches * 1000 if self.batches else 0.0
