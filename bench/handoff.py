"""The hand-off tax, before and after in the same run: a daemon of another commit (its daemon/
and schema/ trees from `git archive`, first on its PYTHONPATH) against this tree's, in turn,
on the same machine, with the same loads: durable kv.set from 64 clients (the writes
benchmark's load), kv.get round trips idle and during those writes, kv.get from 32 clients,
tasks.add from 64 clients (the domain part of the writes benchmark).

PM_BENCH_BEFORE=<commit> names the other commit (default: 1c5cb89^, main just before issue
18: the writer's batches on its own thread, every read on a reader thread, a task for every
request).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import common, load, rpc, writes, writes_domain
from bench.cli import before_tree
from bench.common import Table, fmt_rate, fmt_us, median, spread

BEFORE_ENV = "PM_BENCH_BEFORE"
DEFAULT_BEFORE = "1c5cb89^"


@dataclass
class Figures:
    writes: float
    rtt: list[float]
    rtt_during_writes: list[float]
    reads: float
    tasks: float  # tasks.add/s from 64 clients (nan: that tree has no tasks.add)


def measure(tree: Path | None, warmup: float, duration: float, count: int) -> Figures:
    daemon = common.Daemon({"synchronous": "FULL"})
    if tree is not None:
        daemon.env["PYTHONPATH"] = str(tree)
    try:
        daemon.start()
        daemon.call("kv.set", {"namespace": "bench", "key": "hot", "value": rpc.VALUE})
        path = daemon.socket_path
        writing = load.socket_load(
            path, writes.set_requests, processes=writes.DAEMON_PROCESSES,
            connections=writes.CLIENTS, warmup=warmup, duration=duration,
        )  # fmt: skip
        rtt = rpc.round_trips(path, count, warmup)
        during, _ = rpc.read_under_writes(path, warmup, duration)
        reads = load.socket_load(
            path, rpc.get_requests, processes=rpc.PROCESSES, connections=rpc.CLIENTS,
            warmup=warmup, duration=duration,
        )  # fmt: skip
        try:
            tasks = writes_domain.tasks_rate(daemon, warmup, duration)
        except RuntimeError:  # a tree from before work tracking (issue 15)
            tasks = math.nan
        daemon.stop_cleanly()
        return Figures(writing.rate, rtt, during, reads.rate, tasks)
    finally:
        daemon.cleanup()


def main(runs: int, quick: bool) -> int:
    commit = os.environ.get(BEFORE_ENV, DEFAULT_BEFORE)
    warmup, duration, count = (0.2, 1.0, 2_000) if quick else (0.5, 3.0, 10_000)
    folder = Path(tempfile.mkdtemp(prefix="pm-bench-before-"))
    try:
        tree = before_tree(commit, folder)
        before: list[Figures] = []
        after: list[Figures] = []
        for i in range(runs):
            pair = [(before, tree), (after, None)]
            for sink, where in pair if i % 2 == 0 else pair[::-1]:
                sink.append(measure(where, warmup, duration, count))
            print(f"run {i + 1}/{runs}: writes {fmt_rate(before[-1].writes)} -> "
                  f"{fmt_rate(after[-1].writes)}; kv.get 32 clients "
                  f"{fmt_rate(before[-1].reads)} -> {fmt_rate(after[-1].reads)}",
                  flush=True)  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(report(commit, before, after, duration))
    return 0


def report(commit: str, before: list[Figures], after: list[Figures], duration: float) -> str:
    p = common.percentile
    table = Table(
        f"hand-off: {commit} (before) and this tree (after), {len(before)} runs each, "
        f"in turn; {duration:g} s loads",
        ["metric", f"before ({commit})", "after", "after/before"],
    )

    def add(label: str, b: list[float], a: list[float], fmt: Callable[[float], str]) -> None:
        table.add(label, spread(b, fmt), spread(a, fmt), f"{median(a) / median(b):.2f}x")

    add("durable kv.set, 64 clients: acked/s", [f.writes for f in before],
        [f.writes for f in after], fmt_rate)  # fmt: skip
    for q in (50, 99):
        add(f"kv.get round trip, idle: p{q}", [p(f.rtt, q) for f in before],
            [p(f.rtt, q) for f in after], fmt_us)  # fmt: skip
    for q in (50, 99):
        add(f"kv.get round trip during the 64 writers: p{q}",
            [p(f.rtt_during_writes, q) for f in before],
            [p(f.rtt_during_writes, q) for f in after], fmt_us)  # fmt: skip
    add("kv.get, 32 clients: requests/s", [f.reads for f in before],
        [f.reads for f in after], fmt_rate)  # fmt: skip
    add("tasks.add into a phase, 64 clients: acked/s", [f.tasks for f in before],
        [f.tasks for f in after], fmt_rate)  # fmt: skip
    table.notes.append(
        "Unpinned. Each run measures both daemons back to back (which goes first alternates), "
        "each in a fresh data folder, with the loads of `bench writes` and `bench rpc` and "
        "the tasks.add load of `bench writes` (its domain part)."
    )
    return table.render()
