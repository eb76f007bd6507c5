"""Quality scans of the generated 1,000-project Dev folder, and reads while one runs.

Per run, two fresh daemons (watching off, no periodic rescan, every schedule off, and the
per-project settle delay pushed out of reach, so nothing but the benchmark's own calls assesses
anything) on a fresh database each, started only after the tree was generated and walked:
"warm" means the page cache holds the tree, and "from scratch" means no project has an
assessment yet, so `quality.scan` reads every one.

- Daemon A: after its start-up project scan lists every project, the baseline runs in this
  process on one thread, over the very inputs the daemon will use (its `scan_states`, read
  from its database): `score.fingerprint` + `score.assess` per project (a full scan's work
  without the database), then `score.fingerprint` + `score.maintenance` alone (a rescan's).
  Then `quality.scan` from scratch, timed (RPC wall time) with the daemon's per-thread CPU;
  then `quality.scan` again and again with nothing changed; then the daemon's RSS.
- Daemon B: a separate client process does sequential `kv.get` round trips on one connection
  of the daemon's socket (one request on the wire at a time): first with the daemon idle (the
  baseline), then throughout a second from-scratch `quality.scan`, which is timed too.

A diagnostic beside the baseline: its work on a thread pool of the daemon's size in this
process (no database, no event loop), to tell the pool's cost from the daemon's own.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common, devtree
from bench.common import Table, fmt_ratio, median, percentile, spread
from bench.quality_baseline import Baseline, baseline, pool_size
from bench.sequential_client import SequentialClient
from client.sync import Client
from daemon.domain.quality.sql import ScanState, scan_states

GOAL_FULL_S = 2.0
GOAL_RESCAN_S = 0.3
GOAL_RTT_P99_S = 5e-3
SETTLE_OUT_OF_REACH_S = 86_400.0  # quality_settle_s: no deferred one-project assessments
_GET = b'{"jsonrpc":"2.0","id":%d,"method":"kv.get","params":{"namespace":"bench","key":"hot"}}\n'
VALUE = {"answer": 42, "text": "a small JSON value"}


def _get(n: int) -> bytes:
    return _GET % n


def config_toml() -> str:
    """Every schedule off (the daemon's own jobs: none run during a measurement), and the
    settle delay of the one-project assessments that project events defer out of reach."""
    from daemon.runtime.config import Schedules

    lines = [f"quality_settle_s = {SETTLE_OUT_OF_REACH_S}", "", "[schedule]"]
    lines += [f'{name} = "off"' for name in Schedules.__struct_fields__]
    return "\n".join(lines) + "\n"


# fork: the parent is single-threaded here, and a forked reader starts in milliseconds.


class QualityDaemon(common.Daemon):
    """A bench daemon over the generated tree, with a config.toml for what the environment
    cannot carry (the [schedule] table)."""

    def __init__(self, tree: devtree.DevTree) -> None:
        super().__init__({"dev_root": str(tree.dev), "watch": "false", "rescan_interval_s": "0"})
        config = self.root / "config.toml"
        config.write_text(config_toml())
        self.env["PM_AGENT_CONFIG"] = str(config)

    def wait_for_projects(self, projects: int) -> dict[str, Any]:
        """The start-up project scan's summary, once the projects are listed."""
        status: dict[str, Any] = common.wait_for(
            lambda: (s := self.call("daemon.status")) and s.get("last_scan") and s,
            600,
            "the daemon's start-up project scan",
        )
        page = self.call("projects.list", {"limit": 10_000})
        listed = page["total"] if page else 0
        if listed != projects:
            raise RuntimeError(f"the daemon lists {listed} projects, not {projects}")
        summary: dict[str, Any] = status["last_scan"]
        return summary


def proc_kb(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    return 0


def read_states(db_path: Path) -> list[ScanState]:
    """What `QualityService.scan` reads first, read the same way (read-only, beside it)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return scan_states(conn, None)
    finally:
        conn.close()


def read_scores(db_path: Path) -> dict[int, tuple[int | None, str | None]]:
    """project id -> (quality_score, fingerprint) of its latest assessment."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT project_id, quality_score, fingerprint FROM quality_latest")
        return {int(r[0]): (r[1], r[2]) for r in rows}
    finally:
        conn.close()


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Scan:
    wall_s: float
    summary: dict[str, Any]

    @property
    def assessed(self) -> int:
        return int(self.summary["assessed"])


def timed_scan(client: Client) -> Scan:
    started = time.perf_counter()
    summary = client.call("quality.scan", {})
    return Scan(time.perf_counter() - started, summary)


@dataclass
class Alone:
    """Daemon A: the baseline, a from-scratch scan with no client but ours, the rescans."""

    project_scan: dict[str, Any]  # its start-up project scan's summary
    base: Baseline
    full: Scan
    cpu: common.ThreadCpu  # its threads during `full`
    rescans: list[Scan]
    rss_kb: int
    hwm_kb: int
    scores: dict[int, tuple[int | None, str | None]]  # stored after the scans

    @property
    def same_score(self) -> int:
        """Projects whose stored score equals the baseline's."""
        return sum(
            1
            for pid, a in self.base.assessments.items()
            if pid in self.scores and self.scores[pid][0] == a.quality_score
        )

    @property
    def same_fingerprint(self) -> int:
        return sum(
            1
            for pid, a in self.base.assessments.items()
            if pid in self.scores and self.scores[pid][1] == a.fingerprint
        )


@dataclass
class WithReader:
    """Daemon B: the reader's round trips idle, then during a from-scratch scan."""

    full: Scan
    idle: list[float]
    during: list[float]
    idle_rate: float  # round trips per second
    during_rate: float


@dataclass
class Run:
    a: Alone
    b: WithReader

    def ok(self, projects: int) -> bool:
        scans = [self.a.full, self.b.full, *self.a.rescans]
        return (
            self.a.full.assessed == projects
            and self.b.full.assessed == projects
            and all(s.summary["projects"] == projects for s in scans)
            and not any(s.summary["errors"] for s in scans)
            and all(s.assessed == 0 for s in self.a.rescans)
            and len(self.a.scores) == projects
            and self.a.base.errors == 0
            and bool(self.b.during)
        )


def _stop(daemon: QualityDaemon) -> None:
    daemon.stop_cleanly()


def run_alone(tree: devtree.DevTree, rescans: int, pool_first: bool) -> Alone:
    with QualityDaemon(tree) as daemon:
        project_scan = daemon.wait_for_projects(len(tree.projects))
        base = baseline(read_states(daemon.db_path), pool_first)
        cpu = common.ThreadCpu(daemon.pid)
        with Client(daemon.socket_path, timeout=600).connect() as client:
            cpu.begin()
            full = timed_scan(client)
            cpu.end()
            again = [timed_scan(client) for _ in range(rescans)]
        scores = read_scores(daemon.db_path)
        rss, hwm = proc_kb(daemon.pid, "VmRSS"), proc_kb(daemon.pid, "VmHWM")
        _stop(daemon)
    return Alone(project_scan, base, full, cpu, again, rss, hwm, scores)


def run_with_reader(tree: devtree.DevTree, idle_s: float, warmup_s: float) -> WithReader:
    with QualityDaemon(tree) as daemon:
        daemon.wait_for_projects(len(tree.projects))
        daemon.call("kv.set", {"namespace": "bench", "key": "hot", "value": VALUE})
        check = daemon.call("kv.get", {"namespace": "bench", "key": "hot"})
        if not check or check.get("value") != VALUE:
            raise RuntimeError(f"kv.get did not return the value just set: {check!r}")
        with (
            Client(daemon.socket_path, timeout=600).connect() as client,
            SequentialClient("reader", daemon.socket_path, _get, 60.0) as reader,
        ):
            time.sleep(warmup_s)
            idle_begin = time.monotonic()
            time.sleep(idle_s)
            idle_end = scan_begin = time.monotonic()
            full = timed_scan(client)
            scan_end = time.monotonic()
            samples = reader.stop()
        _stop(daemon)
    idle = samples.within(idle_begin, idle_end)
    during = samples.within(scan_begin, scan_end)
    return WithReader(
        full,
        idle,
        during,
        len(idle) / (idle_end - idle_begin),
        len(during) / (scan_end - scan_begin),
    )


def one_run(
    tree: devtree.DevTree, rescans: int, idle_s: float, warmup_s: float, pool_first: bool
) -> Run:
    return Run(run_alone(tree, rescans, pool_first), run_with_reader(tree, idle_s, warmup_s))


# --- the benchmark ---------------------------------------------------------------------------


def main(runs: int, quick: bool) -> int:
    spec = devtree.Spec()
    rescans = 5 if quick else 20
    idle_s, warmup_s = (1.0, 0.2) if quick else (3.0, 0.5)
    with devtree.generated(spec) as tree:
        print(f"tree: {tree.describe()}", flush=True)  # also walks it: the page cache is warm
        results: list[Run] = []
        for i in range(runs):
            r = one_run(tree, rescans, idle_s, warmup_s, pool_first=i % 2 == 1)
            results.append(r)
            p = percentile
            rescan = median([s.wall_s for s in r.a.rescans])
            daemon_ms = r.a.full.summary["duration_ms"]
            print(
                f"run {i + 1}/{runs}: full scan {_s(r.a.full.wall_s)} alone (assessed "
                f"{r.a.full.assessed}, the daemon's duration_ms {daemon_ms:,.0f}), "
                f"{_s(r.b.full.wall_s)} with the reader; baseline one thread "
                f"{_s(r.a.base.full_s)}; rescan median {_s(rescan)} "
                f"(baseline {_s(r.a.base.rescan_s)}); kv.get p99 idle {_ms(p(r.b.idle, 99))}, "
                f"during the scan {_ms(p(r.b.during, 99))} (max {_ms(max(r.b.during, default=0))}, "
                f"{len(r.b.during):,} reads); RSS {r.a.rss_kb / 1024:.0f} MB",
                flush=True,
            )
        print()
        print(report(results, tree, rescans, idle_s))
    return 0 if all(r.ok(spec.projects) for r in results) else 1


def _s(seconds: float) -> str:
    return f"{seconds:,.2f} s" if seconds >= 1 else f"{seconds * 1000:,.0f} ms"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.2f} ms"


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def report(results: list[Run], tree: devtree.DevTree, rescans: int, idle_s: float) -> str:
    projects = len(tree.projects)
    table = Table(
        f"quality: {projects:,} projects, {len(results)} runs (a from-scratch quality.scan "
        f"alone and one with a reader per run, {rescans} rescans with nothing changed)",
        ["metric", "baseline", "daemon", "daemon/baseline"],
    )

    def add(label: str, base: list[float], ours: list[float], fmt: Callable[[float], str]) -> None:
        table.add(
            label, spread(base, fmt), spread(ours, fmt), fmt_ratio(median(ours), median(base))
        )

    base_full = [r.a.base.full_s for r in results]
    full = [r.a.full.wall_s for r in results]
    full_read = [r.b.full.wall_s for r in results]
    add("full scan from scratch, warm: median", base_full, full, _s)
    table.add(
        "full scan from scratch, warm: p99 over runs",
        _s(percentile(base_full, 99)),
        _s(percentile(full, 99)),
        fmt_ratio(percentile(full, 99), percentile(base_full, 99)),
    )
    add(
        "full scan: the summary's duration_ms",
        base_full,
        [r.a.full.summary["duration_ms"] / 1000 for r in results],
        _s,
    )
    add("full scan with the reader going (daemon B)", base_full, full_read, _s)
    add(
        f"diagnostic: the baseline's work on {pool_size()} threads in this process "
        "(the daemon's pool, chunks of 8), vs. on one",
        base_full,
        [r.a.base.pool_s for r in results],
        _s,
    )
    table.add(
        "full scan: projects assessed (alone / with the reader)",
        f"{median([len(r.a.base.assessments) for r in results]):,.0f}",
        f"{median([r.a.full.assessed for r in results]):,.0f} / "
        f"{median([r.b.full.assessed for r in results]):,.0f}",
        "",
    )
    base_rescan = [r.a.base.rescan_s for r in results]
    walls = [s.wall_s for r in results for s in r.a.rescans]
    add(
        "rescan, nothing changed: median (per run)",
        base_rescan,
        [median([s.wall_s for s in r.a.rescans]) for r in results],
        _s,
    )
    table.add(
        "rescan, nothing changed: p99 (all rescans)",
        _s(percentile(base_rescan, 99)),
        _s(percentile(walls, 99)),
        fmt_ratio(percentile(walls, 99), percentile(base_rescan, 99)),
    )
    table.add(
        "rescan: assessed / refreshed / unchanged (sums over all rescans)",
        "",
        f"{sum(s.assessed for r in results for s in r.a.rescans):,} / "
        f"{sum(s.summary['refreshed'] for r in results for s in r.a.rescans):,} / "
        f"{sum(s.summary['unchanged'] for r in results for s in r.a.rescans):,}",
        "",
    )
    for q in (50, 99):
        add(
            f"kv.get round trip p{q}: idle (baseline) vs. during the full scan",
            [percentile(r.b.idle, q) for r in results],
            [percentile(r.b.during, q) for r in results],
            _ms,
        )
    add(
        "kv.get round trip max: idle vs. during the full scan",
        [max(r.b.idle) for r in results],
        [max(r.b.during, default=0.0) for r in results],
        _ms,
    )
    add(
        "kv.get round trips per second: idle vs. during the full scan",
        [r.b.idle_rate for r in results],
        [r.b.during_rate for r in results],
        _rate,
    )
    table.add(
        "daemon RSS after the scans / peak (VmRSS / VmHWM)",
        "",
        f"{median([r.a.rss_kb / 1024 for r in results]):,.0f} MB / "
        f"{median([r.a.hwm_kb / 1024 for r in results]):,.0f} MB",
        "",
    )
    table.notes += notes(results, tree, idle_s)
    return table.render()


def notes(results: list[Run], tree: devtree.DevTree, idle_s: float) -> list[str]:
    projects = len(tree.projects)
    full_p99 = percentile([r.a.full.wall_s for r in results], 99)
    full_med = median([r.a.full.wall_s for r in results])
    read_p99 = percentile([r.b.full.wall_s for r in results], 99)
    walls = [s.wall_s for r in results for s in r.a.rescans]
    rescan_p99, rescan_med = percentile(walls, 99), median(walls)
    rtt_p99s = [percentile(r.b.during, 99) for r in results]
    rtt_med, rtt_worst = median(rtt_p99s), max(rtt_p99s)
    ok = all(r.ok(projects) for r in results)
    scans = median([r.a.project_scan["duration_ms"] / 1000 for r in results])
    errors = sorted(
        {e["error"] for r in results for s in (r.a.full, r.b.full) for e in s.summary["errors"]}
    )
    return [
        f"Tree: {tree.describe()}.",
        "Medians across runs with the range in brackets; percentiles are nearest-rank (the p99 "
        "of fewer than 100 values is the worst one). Times are RPC wall times seen by the client. "
        "Every full scan is a fresh daemon on a fresh database (no project has an assessment, so "
        "each is read), "
        "started after the tree was generated and walked, after the daemon's own start-up "
        f"project scan (median {_s(scans)}) and, for daemon A, right after the baseline read "
        "the same files: the page cache is warm.",
        "Baseline: the same work in this benchmark's process on one thread, over the daemon's "
        "own scan_states: score.fingerprint + score.assess per project for a full scan "
        "(without the database writes), score.fingerprint + score.maintenance for a rescan.",
        f"Reads: one client process, one connection, one kv.get at a time; idle is {idle_s:g} s "
        "with daemon B doing nothing, just before its full scan; `during` counts the round "
        "trips sent between the scan's request and its reply (daemon B's scan).",
        f"Daemon A's CPU during its full scan: {common.fmt_cpu([r.a.cpu for r in results])}.",
        f"Checks: in-process assessments equal to the daemon's stored ones: scores "
        f"{median([r.a.same_score for r in results]):,.0f} of {projects:,}, fingerprints "
        f"{median([r.a.same_fingerprint for r in results]):,.0f} of {projects:,} (median over "
        "runs; a score may move with the maintenance clock between the two). Scan errors: "
        + ("; ".join(errors) if errors else "none")
        + ". Every full scan assessed every project, every rescan assessed none, no errors: "
        + ("OK" if ok else "FAILED")
        + ".",
        f"Goal: warm full scan <= {_s(GOAL_FULL_S)}: "
        + ("met" if full_p99 <= GOAL_FULL_S else "NOT met")
        + f" (median {_s(full_med)}, p99 {_s(full_p99)}; with the reader going, p99 "
        f"{_s(read_p99)}). Rescan with nothing changed <= {_s(GOAL_RESCAN_S)}: "
        + ("met" if rescan_p99 <= GOAL_RESCAN_S else "NOT met")
        + f" (median of all rescans {_s(rescan_med)}, p99 {_s(rescan_p99)}). kv.get RTT p99 "
        f"during the scan <= {_ms(GOAL_RTT_P99_S)}: "
        + ("met" if rtt_worst <= GOAL_RTT_P99_S else "NOT met")
        + f" (median over runs {_ms(rtt_med)}, worst run {_ms(rtt_worst)}).",
    ]
