"""The daemon's writer over a load's window, read from daemon.status: batches, writes, CPU,
and where a batch's cycle goes, stage by stage, beside the same batches run alone."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench import common
from bench.common import Table, median, spread


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
    def loop_cpu_per_write_ms(self) -> float:
        """The event loop thread's CPU time over the window, per write acknowledged in it."""
        return self.cpu.main * self.elapsed / self.writes * 1000 if self.writes else 0.0

    @property
    def cycle_ms(self) -> float:
        """Wall time from one batch's start to the next's, on average."""
        return self.elapsed / self.batches * 1000 if self.batches else 0.0


@dataclass
class Ceiling:
    """The daemon's batch code alone, in-process: writes/s and a batch's medians (ms)."""

    rate: float
    statements_ms: float  # the operations and their events, BEGIN to COMMIT
    commit_ms: float


# (daemon.status stage, what it is): the stages of one batch, in order
STAGES = [
    ("queued_ms_p50", "its oldest write waits for the batch to start"),
    ("loop_ms_p50", "statements on the event loop"),
    ("to_thread_ms_p50", "hand-off to the writer's thread (a wake-up)"),
    ("thread_ms_p50", "statements left to the thread"),
    ("commit_ms_p50", "COMMIT (WAL write, fsync, the GIL taken back)"),
    ("to_loop_ms_p50", "hand-off back to the loop (call_soon_threadsafe)"),
]


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def stages_table(runs: list[tuple[WriterProbe, Ceiling]]) -> str:
    """Where a batch's time goes in the daemon (daemon.status stages at the window's end, p50
    per run) beside the same batches on one thread with nothing else to do."""
    table = Table(
        f"writes: a batch's cycle, stage by stage ({len(runs)} runs; p50 per run, median "
        "across runs)",
        ["stage", "daemon", "writer alone, in-process"],
    )
    alone = {
        "loop_ms_p50": spread([c.statements_ms for _, c in runs], _ms),
        "commit_ms_p50": spread([c.commit_ms for _, c in runs], _ms),
    }
    for key, label in STAGES:
        daemon = [float(p.status.get("stages", {}).get(key, 0.0)) for p, _ in runs]
        table.add(label, spread(daemon, _ms), alone.get(key, ""))
    batch = [float(p.status.get("batch_ms_p50", 0.0)) for p, _ in runs]
    table.add(
        "a batch, from its start until the loop has it back",
        spread(batch, _ms),
        spread([c.statements_ms + c.commit_ms for _, c in runs], _ms),
    )
    cycle = [p.cycle_ms for p, _ in runs]
    between = [p.cycle_ms - b for (p, _), b in zip(runs, batch, strict=True)]
    table.add("between two batches (replies out, requests in, the next batch taken)",
              spread(between, _ms), "")  # fmt: skip
    table.add("cycle: one batch's start to the next (the window over its batches)",
              spread(cycle, _ms), "")  # fmt: skip
    per_batch = [p.mean_batch for p, _ in runs]
    table.add("writes per batch", spread(per_batch, "{:.1f}".format), "")
    table.add("the event loop's CPU per acknowledged write (its thread's CPU time / writes)",
              spread([p.loop_cpu_per_write_ms for p, _ in runs], _ms), "")  # fmt: skip
    allowed = median(per_batch) / max(median(cycle), 1e-9) * 1000
    table.notes.append(
        "The stages partition a batch's time, each a median over the writer's last 1,024 "
        "batches (so their sum is near, not equal to, the batch's own median). The loop runs "
        "statements for at most 2 ms and only COMMIT goes to the thread otherwise: the two "
        "hand-offs and COMMIT's wait for the GIL are what a batch pays for being in a daemon "
        "whose loop also serves the clients. The rate the cycle allows, writes per batch over "
        f"the cycle: {allowed:,.0f}/s."
    )
    return table.render()
