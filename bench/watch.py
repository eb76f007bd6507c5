"""Change on disk → event at a subscribed client, over a generated Dev folder of 1,000 projects.

Changes go one at a time to random projects, cycling through four kinds: a commit
(`git commit --allow-empty` in the repository), a rewritten manifest (a new description), a new
project moved into a grouping folder (built in a staging folder outside the Dev folder, so it
appears at once), and a rename of that project. The time is taken from the change's completion
on disk (git has exited, the write or rename has returned) to the arrival of the matching event
at an `events.subscribe(["projects"])` client: `projects.updated` with the new head_sha or
description, `projects.created`, `projects.moved`. The daemon runs with its default settle.

The baseline is watchfiles alone, in-process: `awatch` over the same folders the daemon watches
(grouping folders, and per project its folder, `.git` and `refs/heads`), non-recursive, with
debounce 50 ms and step 10 ms, timed from completion to the first batch naming the change. It
does no scanning, no database write and no RPC: it is the floor under the daemon's latency.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import watchfiles

from bench import common, devtree
from bench.common import Table, median, percentile, spread
from bench.watch_changes import (
    GAP_S,
    KINDS,
    MATCH_TIMEOUT_S,
    Changer,
    Inbox,
    Side,
    drive,
    project_events,
)
from daemon.runtime.watcher import count_inotify_watches

GOAL_P95_S = 0.2
GOAL_WATCHES_PER_PROJECT = 8.0
GOAL_RSS_MB = 80.0


# --- the baseline ----------------------------------------------------------------------------


def watched_folders(tree: devtree.DevTree) -> list[str]:
    """The daemon's watch set, worked out the same way: groups, then 3 folders per project."""
    groups = [str(tree.dev), *sorted({str(p.path.parent) for p in tree.projects})]
    per_project = [
        str(folder)
        for p in tree.projects
        for folder in (p.path, p.path / ".git", p.path / ".git" / "refs" / "heads")
    ]
    return groups + per_project


async def baseline_side(tree: devtree.DevTree, seed: int, count: int) -> tuple[Side, int]:
    paths = watched_folders(tree)
    inbox = Inbox()
    stop = asyncio.Event()

    async def consume() -> None:
        async for batch in watchfiles.awatch(
            *paths, watch_filter=None, debounce=50, step=10, recursive=False, stop_event=stop
        ):
            inbox.put(batch)

    task = asyncio.get_running_loop().create_task(consume())
    changer = Changer(tree, seed, "base")
    try:
        watches = await _settled(count_inotify_watches, len(paths))
        side = await drive(changer, inbox, count, lambda c: c.batch)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        changer.remove_created()
    return side, watches


async def _settled(count: Callable[[], int | None], want: int, timeout: float = 30) -> int:
    for _ in range(int(timeout / 0.02)):  # nothing to await but /proc: poll it
        if (n := count() or 0) >= want:
            return n
        await asyncio.sleep(0.02)
    return count() or 0


# --- the daemon ------------------------------------------------------------------------------


@dataclass
class DaemonSide:
    side: Side
    watches: int  # OS inotify watches once the watch set had settled
    peak_watches: int  # the most sampled during the changes (old and new sets overlap)
    rss_mb: float  # VmRSS then
    rss_after_mb: float  # VmRSS after the changes
    hwm_mb: float  # VmHWM (peak) after the changes
    watcher: dict[str, Any]  # daemon.status's watcher figures
    found: int


def proc_status_mb(pid: int, field_name: str) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _watching(daemon: common.Daemon) -> dict[str, Any] | None:
    status = daemon.call("daemon.status")
    if not status or status["last_scan"] is None:
        return None
    return status if status["watcher"]["mode"] in ("watching", "degraded", "polling") else None


def daemon_side(tree: devtree.DevTree, seed: int, count: int) -> DaemonSide:
    config = {"dev_root": str(tree.dev), "rescan_interval_s": "0"}
    changer = Changer(tree, seed, "daemon")
    try:
        with common.Daemon(config) as daemon:
            assert daemon.process is not None
            pid = daemon.process.pid
            status = common.wait_for(lambda: _watching(daemon), 600, "the daemon to be watching")
            want = status["watcher"]["watched_paths"]
            common.wait_for(lambda: count_inotify_watches(pid) == want, 30, "the watches to settle")
            watches, rss = count_inotify_watches(pid) or 0, proc_status_mb(pid, "VmRSS")
            with WatchSampler(pid) as sampler:
                side = asyncio.run(_drive_daemon(daemon.socket_path, changer, count))
            result = DaemonSide(
                side=side,
                watches=watches,
                peak_watches=sampler.peak,
                rss_mb=rss,
                rss_after_mb=proc_status_mb(pid, "VmRSS"),
                hwm_mb=proc_status_mb(pid, "VmHWM"),
                watcher=_after_settling(daemon).get("watcher", {}),
                found=status["last_scan"]["found"],
            )
            daemon.stop_cleanly()
    finally:
        changer.remove_created()
    return result


class WatchSampler:
    """The daemon's OS watch count every 50 ms, on a thread: a rebuilt watch set overlaps
    the old one for a moment."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, count_inotify_watches(self.pid) or 0)

    def __enter__(self) -> WatchSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _after_settling(daemon: common.Daemon) -> dict[str, Any]:
    """daemon.status once no rebuilt watch set overlaps the old one (or after 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        status: dict[str, Any] = daemon.call("daemon.status") or {}
        watcher = status.get("watcher", {})
        if watcher.get("os_watches") == watcher.get("watched_paths"):
            return status
        if time.monotonic() > deadline:
            return status
        time.sleep(0.05)


async def _drive_daemon(socket_path: str, changer: Changer, count: int) -> Side:
    async with project_events(socket_path, "bench-watch") as inbox:
        return await drive(changer, inbox, count, lambda c: c.event)


# --- the benchmark ---------------------------------------------------------------------------


@dataclass
class Run:
    daemon: DaemonSide
    baseline: Side
    baseline_watches: int


def main(runs: int, quick: bool) -> int:
    count = 20 if quick else 100
    with devtree.generated(devtree.Spec()) as tree:
        print(f"tree: {tree.describe()}", flush=True)
        results: list[Run] = []
        for i in range(runs):
            seed = 1000 + i
            base, base_watches = asyncio.run(baseline_side(tree, seed, count))
            d = daemon_side(tree, seed, count)
            results.append(Run(d, base, base_watches))
            print(
                f"run {i + 1}/{runs}: daemon p50 {_ms(percentile(d.side.seen(), 50))}, "
                f"p95 {_ms(percentile(d.side.seen(), 95))}, missed {d.side.missed}; watchfiles "
                f"p50 {_ms(percentile(base.seen(), 50))}, p95 "
                f"{_ms(percentile(base.seen(), 95))}, missed {base.missed}; OS watches "
                f"{d.watches:,}, RSS {d.rss_mb:.0f} MB",
                flush=True,
            )
        print()
        print(report(results, tree, count))
    ok = all(r.daemon.side.missed == 0 and r.daemon.found == len(tree.projects) for r in results)
    return 0 if ok else 1


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _pooled(sides: Sequence[Side], p: float, kind: str | None = None) -> float:
    return percentile([x for s in sides for x in s.seen(kind)], p)


def _rows(results: list[Run]) -> Iterator[list[str]]:
    ours = [r.daemon.side for r in results]
    base = [r.baseline for r in results]
    for label, p in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("max", 100.0)):
        b = [percentile(s.seen(), p) for s in base]
        d = [percentile(s.seen(), p) for s in ours]
        yield [
            f"change -> event {label}",
            spread(b, _ms),
            spread(d, _ms),
            f"{median(d) / median(b):.1f}x",
        ]
    for kind in KINDS:
        b95, d95 = _pooled(base, 95, kind), _pooled(ours, 95, kind)
        yield [
            f"{kind}: p50 / p95 (all runs)",
            f"{_ms(_pooled(base, 50, kind))} / {_ms(b95)}",
            f"{_ms(_pooled(ours, 50, kind))} / {_ms(d95)}",
            f"{d95 / b95:.1f}x",
        ]
    yield [
        "changes without a matching event in 5 s",
        str(sum(s.missed for s in base)),
        str(sum(s.missed for s in ours)),
        "",
    ]


def report(results: list[Run], tree: devtree.DevTree, count: int) -> str:
    projects = len(tree.projects)
    table = Table(
        f"watch: {projects:,} projects watched, {len(results)} runs x {count} changes",
        ["metric", "watchfiles alone (same folders)", "daemon", "daemon/baseline"],
    )
    for row in _rows(results):
        table.add(*row)
    d_watches = [float(r.daemon.watches) for r in results]
    b_watches = [float(r.baseline_watches) for r in results]
    table.add("OS inotify watches", spread(b_watches, "{:,.0f}".format),
              spread(d_watches, "{:,.0f}".format), "")  # fmt: skip
    table.add(
        "OS watches per project",
        f"{median(b_watches) / projects:.2f}",
        f"{median(d_watches) / projects:.2f}",
        "",
    )
    table.add(
        "daemon OS watches, peak while changes were made",
        "",
        spread([float(r.daemon.peak_watches) for r in results], "{:,.0f}".format),
        "",
    )
    rss = [r.daemon.rss_mb for r in results]
    table.add("daemon RSS, watching, before the changes", "", spread(rss, "{:.1f} MB".format), "")
    table.add(
        "daemon RSS after the changes / peak (VmHWM)",
        "",
        f"{median([r.daemon.rss_after_mb for r in results]):.1f} MB / "
        f"{median([r.daemon.hwm_mb for r in results]):.1f} MB",
        "",
    )
    table.notes += notes(results, tree)
    return table.render()


def notes(results: list[Run], tree: devtree.DevTree) -> list[str]:
    projects = len(tree.projects)
    ours = [r.daemon.side for r in results]
    p95 = _pooled(ours, 95)
    per_project = median([float(r.daemon.watches) for r in results]) / projects
    rss = max(max(r.daemon.rss_mb, r.daemon.rss_after_mb) for r in results)
    w = results[-1].daemon.watcher
    missed = sum(s.missed for s in ours)
    return [
        f"Tree: {tree.describe()}.",
        "Per-run percentiles (nearest rank), median across runs with the range in brackets; "
        "the per-kind rows pool every run. Changes are made one at a time, each after the "
        f"previous one's event (or {MATCH_TIMEOUT_S:g} s), {GAP_S * 1000:.0f} ms apart; the "
        "baseline side runs first with no daemon up, the same seed picking the same projects. "
        "The daemon runs with settle_ms 100 (the default) and no periodic rescan.",
        "daemon.status watcher after the last run's changes had settled: mode "
        f"{w.get('mode')}, watched_paths {w.get('watched_paths')}, polled_paths "
        f"{w.get('polled_paths')}, os_watches {w.get('os_watches')}, max_user_watches "
        f"{w.get('max_user_watches')}, problem {w.get('problem')}.",
        f"Goal: change -> event p95 <= {GOAL_P95_S * 1000:.0f} ms: "
        + ("met" if p95 <= GOAL_P95_S and missed == 0 else "NOT met")
        + f" (p95 over all {sum(len(s.seen()) for s in ours)} changes: {_ms(p95)}; "
        f"{missed} without an event). Goal <= {GOAL_WATCHES_PER_PROJECT:g} OS watches per "
        "project: "
        + ("met" if per_project <= GOAL_WATCHES_PER_PROJECT else "NOT met")
        + f" ({per_project:.2f}). Goal daemon RSS <= {GOAL_RSS_MB:g} MB with "
        f"{projects:,} projects watched: "
        + ("met" if rss <= GOAL_RSS_MB else "NOT met")
        + f" ({rss:.1f} MB, the highest VmRSS of any run, before or after the changes).",
    ]
