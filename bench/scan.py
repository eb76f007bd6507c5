"""Full scans of a generated Dev folder of 1,000 git repositories: the daemon vs. the usual way.

The baseline is how a script learns the same facts: an unpruned `os.walk` of the whole Dev
folder (which also finds the repositories), then `git status --porcelain`, `git log -1` and
`git remote -v` per repository on a pool of 4 threads. The daemon (watching off, no periodic
rescan) is started fresh per run, so its own start-up scan is a first scan on a fresh database;
then `projects.scan` is called repeatedly (warm), and once more after the page cache is
dropped (known database, cold disk). Both sides run with the page cache dropped first when
that is possible (root), and the baseline is also timed warm: the warm figures are compared.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common, devtree
from bench.common import Table, median, percentile, spread
from client.sync import Client

GOAL_WARM_S = 1.0
GOAL_RATIO = 20.0
BASELINE_THREADS = 4
LOG_FORMAT = "--format=%H%x00%an%x00%ae%x00%cI%x00%s"
NOT_PROJECTS = frozenset({"node_modules", "site-packages", ".venv", "venv", "env"})


def drop_page_cache() -> bool:
    """sync, then drop the page cache, dentries and inodes (root only); False if refused."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


# --- the baseline ----------------------------------------------------------------------------


@dataclass
class Baseline:
    walk_s: float
    git_s: float
    repos: int
    files: int
    failures: int

    @property
    def total_s(self) -> float:
        return self.walk_s + self.git_s


def _git_facts(repo: str, env: dict[str, str]) -> int:
    """The three commands for one repository; returns how many failed."""
    failed = 0
    for args in (["status", "--porcelain"], ["log", "-1", LOG_FORMAT], ["remote", "-v"]):
        done = subprocess.run(
            ["git", "-C", repo, *args], env=env, capture_output=True, text=True, check=False
        )
        failed += done.returncode != 0
    return failed


def baseline(tree: devtree.DevTree) -> Baseline:
    started = time.perf_counter()
    repos: list[str] = []
    files = 0
    for folder, dirs, names in os.walk(tree.dev):  # unpruned: .git, node_modules, venvs
        files += len(names)
        if ".git" in dirs:
            repos.append(folder)
    walked = time.perf_counter()
    env = devtree.git_env(tree.home)
    with ThreadPoolExecutor(BASELINE_THREADS) as pool:
        failures = sum(pool.map(_git_facts, repos, [env] * len(repos)))
    return Baseline(walked - started, time.perf_counter() - walked, len(repos), files, failures)


# --- the daemon ------------------------------------------------------------------------------


@dataclass
class Scan:
    wall_s: float
    summary: dict[str, Any]

    @property
    def ms(self) -> float:
        return float(self.summary["duration_ms"])


@dataclass
class DaemonRun:
    first: dict[str, Any]  # the start-up scan's summary (fresh database)
    warm: list[Scan] = field(default_factory=list)
    known_cold: Scan | None = None
    listed: int = 0
    wrong: list[str] = field(default_factory=list)  # projects inside node_modules/venvs
    rss_kb: int = 0


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def timed_scan(client: Client) -> Scan:
    started = time.perf_counter()
    summary = client.call("projects.scan", {})
    return Scan(time.perf_counter() - started, summary)


def not_a_project(path: str, loose: Sequence[Path]) -> bool:
    parts = set(Path(path).parts)
    return bool(parts & NOT_PROJECTS) or any(Path(path).is_relative_to(p) for p in loose)


def daemon_run(
    tree: devtree.DevTree, warm_scans: int, cold: bool, threads: int | None = None
) -> DaemonRun:
    config = {"dev_root": str(tree.dev), "watch": "false", "rescan_interval_s": "0"}
    if threads is not None:
        config["scan_threads"] = str(threads)
    with common.Daemon(config) as daemon:
        assert daemon.process is not None
        status = common.wait_for(
            lambda: (s := daemon.call("daemon.status")) and s.get("last_scan") and s,
            600,
            "the daemon's start-up scan",
        )
        run = DaemonRun(first=status["last_scan"])
        with Client(daemon.socket_path, timeout=600).connect() as client:
            run.warm = [timed_scan(client) for _ in range(warm_scans)]
            page = client.call("projects.list", {"limit": 10_000, "include_missing": True})
            run.listed = page["total"]
            run.wrong = [p["path"] for p in page["items"] if not_a_project(p["path"], tree.loose)]
            run.rss_kb = rss_kb(daemon.process.pid)
            if cold and drop_page_cache():
                run.known_cold = timed_scan(client)
        daemon.stop_cleanly()
    return run


# --- the benchmark ---------------------------------------------------------------------------


@dataclass
class Run:
    cold: bool  # the page cache was dropped before the cold figures
    base_cold: Baseline
    base_warm: Baseline
    daemon: DaemonRun
    one_thread: DaemonRun  # a diagnostic: the same daemon with scan_threads=1

    @property
    def warm_s(self) -> float:
        return median([s.wall_s for s in self.daemon.warm])

    @property
    def ratio(self) -> float:
        return self.base_warm.total_s / self.warm_s

    def ok(self, projects: int) -> bool:
        d = self.daemon
        warm = [*d.warm, *self.one_thread.warm]
        counts = [d.first["found"], d.listed, *(s.summary["found"] for s in warm)]
        clean = not d.first["errors"] and all(not s.summary["errors"] for s in warm)
        return all(c == projects for c in counts) and not d.wrong and clean


def one_run(tree: devtree.DevTree, warm_scans: int) -> Run:
    cold = drop_page_cache()
    base_cold = baseline(tree)
    base_warm = baseline(tree)
    if cold:
        drop_page_cache()
    daemon = daemon_run(tree, warm_scans, cold)
    one_thread = daemon_run(tree, warm_scans, cold=False, threads=1)
    return Run(cold, base_cold, base_warm, daemon, one_thread)


def main(runs: int, quick: bool) -> int:
    spec = devtree.Spec()
    warm_scans = 3 if quick else 10
    with devtree.generated(spec) as tree:
        print(f"tree: {tree.describe()}", flush=True)
        results: list[Run] = []
        for i in range(runs):
            r = one_run(tree, warm_scans)
            results.append(r)
            d = r.daemon
            known = f"{d.known_cold.wall_s:.2f} s" if d.known_cold else "n/a"
            print(
                f"run {i + 1}/{runs}: daemon first scan {d.first['duration_ms'] / 1000:.2f} s, "
                f"warm {r.warm_s * 1000:.0f} ms (median of {len(d.warm)}), known db cold "
                f"{known}; baseline cold {r.base_cold.total_s:.2f} s, warm "
                f"{r.base_warm.total_s:.2f} s; {r.ratio:.1f}x; found {d.first['found']}, "
                f"listed {d.listed}, in node_modules/venvs {len(d.wrong)}",
                flush=True,
            )
        print()
        print(report(results, tree, warm_scans))
    return 0 if all(r.ok(spec.projects) for r in results) else 1


def _s(seconds: float) -> str:
    return f"{seconds:,.2f} s" if seconds >= 1 else f"{seconds * 1000:,.0f} ms"


def report(results: list[Run], tree: devtree.DevTree, warm_scans: int) -> str:
    cold = all(r.cold for r in results)
    cold_name = "page cache dropped" if cold else "page cache NOT dropped (not root)"
    walls = [s.wall_s for r in results for s in r.daemon.warm]
    run_medians = [r.warm_s for r in results]
    base_warm = [r.base_warm.total_s for r in results]
    ratios = [r.ratio for r in results]
    table = Table(
        f"scan: {len(tree.projects):,} projects, {len(results)} runs "
        f"({warm_scans} warm projects.scan calls each)",
        ["metric", "baseline (walk + 3 git commands per repo)", "daemon", "baseline/daemon"],
    )
    table.add(
        "warm full scan, median",
        spread(base_warm, _s),
        spread(run_medians, _s),
        f"{median(ratios):.1f}x",
    )
    p99 = percentile(walls, 99)
    table.add("warm full scan, p99 (all scans)", _s(max(base_warm)), _s(p99), "")
    table.add(
        "warm: the summary's duration_ms, median",
        "",
        spread([median([s.ms / 1000 for s in r.daemon.warm]) for r in results], _s),
        "",
    )
    first = [r.daemon.first["duration_ms"] / 1000 for r in results]
    base_cold = [r.base_cold.total_s for r in results]
    table.add(
        f"cold ({cold_name}): first scan, fresh database",
        spread(base_cold, _s),
        spread(first, _s),
        f"{median(base_cold) / median(first):.1f}x",
    )
    known = [r.daemon.known_cold.wall_s for r in results if r.daemon.known_cold]
    if known:
        table.add(
            "cold (page cache dropped): full scan, known database",
            spread(base_cold, _s),
            spread(known, _s),
            f"{median(base_cold) / median(known):.1f}x",
        )
    table.add(
        "baseline parts, warm: walk / git commands",
        f"{_s(median([r.base_warm.walk_s for r in results]))} / "
        f"{_s(median([r.base_warm.git_s for r in results]))}",
        "",
        "",
    )
    one = [median([s.wall_s for s in r.one_thread.warm]) for r in results]
    table.add(
        "diagnostic: warm full scan with scan_threads=1 (default 4), median",
        spread(base_warm, _s),
        spread(one, _s),
        f"{median([r.base_warm.total_s / o for r, o in zip(results, one, strict=True)]):.1f}x",
    )
    b = results[-1].base_warm
    d = results[-1].daemon
    table.add(
        "repositories / projects found",
        f"{b.repos:,} ({b.files:,} files walked, {b.failures} git failures)",
        f"{d.first['found']:,} (listed {d.listed:,}; in node_modules/venvs: {len(d.wrong)})",
        "",
    )
    table.notes += notes(results, tree, p99, median(ratios))
    return table.render()


def notes(results: list[Run], tree: devtree.DevTree, p99: float, ratio: float) -> list[str]:
    projects = len(tree.projects)
    found_ok = all(r.ok(projects) for r in results)
    warm = median([r.warm_s for r in results])
    errors = sorted({e["error"] for r in results for e in r.daemon.first["errors"]})
    rss = median([r.daemon.rss_kb / 1024 for r in results])
    return [
        f"Tree: {tree.describe()}.",
        "Medians across runs with the range in brackets; the daemon's warm figure per run is "
        "the median of its projects.scan calls (RPC wall time); p99 is nearest-rank over "
        "every warm call of every run. The baseline is timed once cold and once warm per run "
        f"(git on {BASELINE_THREADS} threads). Cold: `sync; echo 3 > /proc/sys/vm/drop_caches` "
        "before the baseline's first pass, before the daemon starts (its start-up scan is the "
        "first scan on a fresh database) and before the known-database scan."
        if all(r.cold for r in results)
        else "Cold figures: the page cache could not be dropped, so they are first scans.",
        f"Daemon RSS after the scans: {rss:.0f} MB (VmRSS). First-scan errors: "
        + ("; ".join(errors) if errors else "none")
        + ".",
        f"Goal: warm full scan <= {GOAL_WARM_S:g} s: "
        + ("met" if p99 <= GOAL_WARM_S else "NOT met")
        + f" (median {_s(warm)}, p99 {_s(p99)}). Goal >= {GOAL_RATIO:g}x the baseline: "
        + ("met" if ratio >= GOAL_RATIO else "NOT met")
        + f" ({ratio:.1f}x).",
        f"Check: every scan found {projects:,} projects, none inside node_modules or a "
        "virtualenv, no scan errors: " + ("OK" if found_ok else "FAILED") + ".",
    ]
