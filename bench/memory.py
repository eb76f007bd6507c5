"""The daemon's memory on a realistic Dev folder: the figures the service units' ceiling
(MemoryHigh/MemoryMax in systemd/pm-agent.service) is sized from.

One daemon with the defaults that matter (watching on, quality scans on), on the generated
1,000-project Dev folder (bench/devtree.py), through a day's work compressed: the start-up
scan and first quality scan, full rescans, a quality scan, a backup, 100 MB of writes through
the API (kv values up to the 1 MiB limit), list pages of the 8 MiB budget, an export and an
import of it, and 20 clients at once. After each step: VmRSS, and VmHWM (the peak so far).

    python -m bench.memory [--projects N]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import Any

from bench import common, devtree
from bench.common import Table
from client.sync import Client

KV_VALUE_BYTES = 1024 * 1024 - 64  # just under the kv value limit
KV_WRITES = 100


def status_kb(pid: int) -> dict[str, int]:
    figures: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = int(rest.split()[0])
    return figures


def _mib(kb: int) -> str:
    return f"{kb / 1024:.1f} MiB"


def _clients_at_once(socket_path: str, count: int) -> None:
    def one() -> None:
        with Client(socket_path, timeout=600).connect() as client:
            client.call("projects.list", {"limit": 10_000})
            client.call("events.list", {"limit": 10_000})
            client.call("quality.list", {"limit": 10_000})

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(projects: int) -> int:
    spec = devtree.Spec(projects=projects)
    with devtree.generated(spec) as tree:
        print(tree.describe(), flush=True)
        config = {"dev_root": str(tree.dev), "quality_settle_s": "5"}
        with common.Daemon(config) as daemon:
            pid = daemon.pid
            table = Table(
                f"daemon memory, {projects:,} projects",
                ["step", "seconds", "VmRSS", "VmHWM (peak so far)"],
            )

            def step(name: str, action: Callable[[], object]) -> None:
                started = time.monotonic()
                action()
                figures = status_kb(pid)
                table.add(
                    name,
                    f"{time.monotonic() - started:.1f}",
                    _mib(figures["VmRSS"]),
                    _mib(figures["VmHWM"]),
                )
                print(table.render().splitlines()[-1], flush=True)

            with Client(daemon.socket_path, timeout=600).connect() as client:

                def first_scans() -> None:
                    common.wait_for(
                        lambda: (s := client.call("daemon.status")) and s.get("last_scan"),
                        600,
                        "the start-up scan",
                    )

                    def jobs() -> list[dict[str, Any]]:
                        page = client.call("jobs.list", {"kind": "quality_scan"})
                        return list(page["items"])

                    common.wait_for(
                        lambda: (done := jobs()) and all(j["status"] == "completed" for j in done),
                        600,
                        "the first quality scan",
                    )

                step("ready, start-up scan + first quality scan", first_scans)
                step("3 full rescans", lambda: [client.call("projects.scan") for _ in range(3)])

                step(
                    "quality.scan (unchanged projects skipped)", lambda: client.call("quality.scan")
                )
                step("db.backup", lambda: client.call("db.backup"))
                value = "x" * KV_VALUE_BYTES
                step(
                    f"{KV_WRITES} kv.set of 1 MiB",
                    lambda: [
                        client.call("kv.set", {"namespace": "m", "key": str(i), "value": value})
                        for i in range(KV_WRITES)
                    ],
                )
                step(
                    "kv.list pages (8 MiB budget)",
                    lambda: client.call("kv.list", {"namespace": "m", "limit": 10_000}),
                )
                exported: dict[str, str] = {}
                step("db.export", lambda: exported.update(client.call("db.export")))
                step(
                    "db.import of that export",
                    lambda: client.call("db.import", {"path": exported["path"]}),
                )
                step("20 clients listing at once", lambda: _clients_at_once(daemon.socket_path, 20))
                step("idle 35 s (malloc_trim runs every 30 s)", lambda: time.sleep(35))
            print(table.render())
            daemon.stop_cleanly()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    raise SystemExit(main(parser.parse_args().projects))
