"""What the work tests share: one real daemon per test module (each test makes its own project,
so tests do not see each other's work), and small builders over the RPC API."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.errors import RemoteError
from client.sync import Client
from tests.helpers import DaemonProcess

_names = itertools.count(1)

# Short leases are swept quickly, so the lease tests wait a second, not minutes.
CONFIG = "[work]\nlease_sweep_s = 0.2\n"


def start_daemon(root: Path, config: str = CONFIG) -> DaemonProcess:
    root.mkdir(parents=True, exist_ok=True)
    (root / "work.toml").write_text(config)
    daemon = DaemonProcess(root, env={"PM_AGENT_CONFIG": str(root / "work.toml")})
    daemon.dev_root.mkdir(parents=True, exist_ok=True)
    return daemon.start()


@pytest.fixture(scope="module")
def work_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    daemon = start_daemon(tmp_path_factory.mktemp("work"))
    yield daemon
    daemon.stop()
    daemon.cleanup()


@pytest.fixture
def rpc(work_daemon: DaemonProcess) -> Iterator[Client]:
    with work_daemon.client() as client:
        yield client


def new_project(daemon: DaemonProcess, rpc: Client, name: str | None = None) -> int:
    """A fresh folder in the Dev root, registered: a project no other test uses."""
    folder = daemon.dev_root / (name or f"p{next(_names)}")
    folder.mkdir(parents=True, exist_ok=True)
    return int(rpc.call("projects.register", {"path": str(folder)})["id"])


def make_plan(rpc: Client, project: int, phases: list[list[str]], **plan: Any) -> dict[str, Any]:
    """A plan with these phases, each with these steps; returns plans.get of it."""
    made = rpc.call("plans.add", {"project": project, "title": plan.pop("title", "plan"), **plan})
    for n, steps in enumerate(phases):
        phase = rpc.call("phases.add", {"plan": made["id"], "title": f"phase {n}"})
        for title in steps:
            rpc.call("tasks.add", {"phase": phase["id"], "title": title})
    return dict(rpc.call("plans.get", {"id": made["id"]}))


def steps(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A plan's tasks by title."""
    return {t["title"]: t for phase in tree["phases"] for t in phase["tasks"]}


def error(rpc: Client, method: str, params: dict[str, Any]) -> RemoteError:
    try:
        rpc.call(method, params)
    except RemoteError as e:
        return e
    raise AssertionError(f"{method} {params} succeeded but an error was expected")


def blocks(rpc: Client, waiting: tuple[str, int], on: tuple[str, int]) -> dict[str, Any]:
    """`waiting` depends on `on` (a blocks edge)."""
    return dict(
        rpc.call(
            "deps.add",
            {"from_type": waiting[0], "from_id": waiting[1], "to_type": on[0], "to_id": on[1]},
        )
    )


def rows(daemon: DaemonProcess, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """What the file holds, read by a second connection (what was committed)."""
    conn = sqlite3.connect(f"file:{daemon.db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
