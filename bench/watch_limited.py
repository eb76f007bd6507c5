"""The daemons of the watch-exhaustion benchmark (`bench reliability`) and what is read off
them: a daemon over the generated tree with every schedule off, or the same started through
tests/watch_limited_daemon.py with the OS refusing watches beyond a limit; which projects it
really watches (the inodes of its inotify watches in /proc/PID/fdinfo) and which it polls;
its idle CPU; kv.get round trips with client and daemon on separate cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench import common, devtree
from bench.quality import config_toml
from bench.rpc import Placer, round_trips
from daemon.runtime.watcher import count_inotify_watches

LIMITED = common.REPO / "tests" / "watch_limited_daemon.py"


class BenchDaemon(common.Daemon):
    """A daemon over the generated tree with every schedule off; `limit` set: started through
    tests/watch_limited_daemon.py with the OS refusing watches beyond it."""

    def __init__(self, tree: devtree.DevTree, limit: int | None) -> None:
        super().__init__({"dev_root": str(tree.dev), "rescan_interval_s": "0"})
        config = self.root / "config.toml"
        config.write_text(config_toml())
        self.env["PM_AGENT_CONFIG"] = str(config)
        self.limit = limit
        if limit is not None:
            self.env["PM_TEST_WATCH_LIMIT"] = str(limit)
            paths = [str(common.REPO), *filter(None, [self.env.get("PYTHONPATH")])]
            self.env["PYTHONPATH"] = os.pathsep.join(paths)

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        if self.limit is None:
            return super().start(timeout)
        out: IO[bytes] = open(self.root / "daemon.out", "ab")  # noqa: SIM115 - closed in stop()
        self._out = out
        self.process = subprocess.Popen(
            [sys.executable, str(LIMITED)],
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
        status: dict[str, Any] = common.wait_for(self._ready, timeout, "the daemon to be ready")
        return status

    def watching(self, projects: int) -> dict[str, Any]:
        """daemon.status once the start-up scan is done and the watch set is in place."""

        def ready() -> dict[str, Any] | None:
            status = self.call("daemon.status")
            if not status or status["last_scan"] is None:
                return None
            mode = status["watcher"]["mode"]
            return status if mode in ("watching", "degraded", "polling") else None

        status: dict[str, Any] = common.wait_for(ready, 300, "the daemon to be watching")
        found = status["last_scan"]["found"]
        if found != projects:
            raise RuntimeError(f"the daemon found {found} projects, not {projects}")
        want = status["watcher"]["watched_paths"]
        common.wait_for(lambda: count_inotify_watches(self.pid) == want, 30, "the OS watches")
        return status


def watched_inodes(pid: int) -> set[int]:
    """Inode numbers of every inotify watch `pid` holds (/proc/PID/fdinfo, `ino:` in hex)."""
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as f:
                for line in f:
                    if line.startswith("inotify wd:"):
                        inodes.update(
                            int(part[4:], 16) for part in line.split() if part.startswith("ino:")
                        )
        except OSError:
            continue
    return inodes


@dataclass
class Split:
    """The projects whose three folders are all inotify-watched, and those with none."""

    watched: list[Path]
    polled: list[Path]
    partly: int  # the one at the boundary, typically


def split(tree: devtree.DevTree, pid: int) -> Split:
    inodes = watched_inodes(pid)
    watched, polled, partly = [], [], 0
    for project in tree.projects:
        folders = (project.path, project.path / ".git", project.path / ".git" / "refs" / "heads")
        held = sum(os.stat(folder).st_ino in inodes for folder in folders)
        if held == len(folders):
            watched.append(project.path)
        elif held == 0:
            polled.append(project.path)
        else:
            partly += 1
    return Split(watched, polled, partly)


def process_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float) -> float:
    """The process's CPU (all threads) over `seconds` of doing nothing, as a fraction of a core."""
    before, started = process_cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return (process_cpu_s(pid) - before) / (time.monotonic() - started)


def rtts(socket_path: str, pid: int, seconds: float) -> list[float]:
    """kv.get round trips on one blocking connection for `seconds`, after a short warm-up,
    with this client on one core and every thread of the daemon on the other (bench.rpc's
    "other core": unpinned, the p50 flips between ~40 and ~110 µs as the scheduler places the
    two processes, which would drown what polling costs; pinned, the poller's walks compete
    with the event loop for the one core the daemon has)."""
    placer = Placer([pid])
    placer.place("other core")
    try:
        round_trips(socket_path, 500, 0.3)
        latencies: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            latencies += round_trips(socket_path, 1000, 0.0)
    finally:
        placer.reset()
    return latencies
