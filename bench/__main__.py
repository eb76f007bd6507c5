"""`python -m bench NAME [--runs N] [--quick]`: run one benchmark and print its table."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Sequence

from bench.common import code_version, describe_machine

BENCHMARKS = {
    "writes": "64 clients doing durable kv.set: the daemon vs. each client committing itself",
    "rpc": "kv.get round trips (one blocking client) and throughput (32 closed-loop clients) vs. "
    "a bare uvloop echo server sent the same bytes",
    "cli": "every class of pm command (status, kv get, kv list, a generated list, projects, a "
    "Tab's completion) vs. `python -c pass`; an older client beside with PM_BENCH_CLI_BEFORE",
    "scan": "full scans of 1,000 generated git repos (first, warm, cold cache) vs. a walk + git "
    "status/log/remote per repo",
    "watch": "change on disk -> event at a subscribed client over 1,000 projects, vs. watchfiles "
    "alone; OS watches and RSS",
    "quality": "quality.scan of 1,000 projects from scratch and unchanged, vs. score.assess "
    "in-process; kv.get RTT during the scan",
    "backup": "db.backup of a 200 MB database vs. the sqlite3 shell's .backup; durable kv.set "
    "p99 while backups run",
    "search": "documents.search over 100,000 documents vs. LIKE on the same table; indexing "
    "rate; instructions.for_path with 1,000 projects; context.brief",
    "reliability": "SIGKILL and SIGTERM cycles under 64 writers, a full disk, 100,000 fuzzed "
    "frames, abusive clients, watch exhaustion: losses, errors, RTT and RSS against goals",
    "mcp": "pm mcp: the core tool list in tokens, a tool call through the bridge vs. the "
    "daemon directly, start-up to a ready initialize",
    "handoff": "this tree's daemon against another commit's (PM_BENCH_BEFORE), in turn: "
    "durable kv.set from 64 clients, kv.get round trips idle and during the writes, kv.get "
    "from 32 clients",
    "work": "50,000 steps and 20,000 dependencies (and 10x as much archived): tasks.ready, "
    "tasks.next, plans.get, 16 clients claiming, vs. the same queries the obvious way",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="pm-agent benchmarks. "
        + "; ".join(f"{name}: {what}" for name, what in BENCHMARKS.items()),
    )
    p.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    p.add_argument("--runs", type=int, default=5, help="runs to take medians over (default 5)")
    p.add_argument("--quick", action="store_true", help="a short smoke version")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.runs < 1:
        parser().error("--runs must be at least 1")
    module = importlib.import_module(f"bench.{args.name}")
    print(f"# bench {args.name}{' --quick' if args.quick else ''}, {args.runs} runs")
    print(f"machine: {describe_machine()}")
    print(f"code: {code_version()}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average before: {load}", flush=True)
    code: int = module.main(args.runs, args.quick)
    return code


if __name__ == "__main__":
    sys.exit(main())
