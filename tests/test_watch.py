"""Watching end to end: changes on disk become events at a subscribed client, by themselves."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from client.aio import AsyncClient
from daemon.runtime.watcher import count_inotify_watches
from tests.conftest import DaemonFactory
from tests.gitrepos import git, make_repo
from tests.helpers import REPO, DaemonProcess, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")


@pytest.fixture
def watched(make_daemon: DaemonFactory) -> DaemonProcess:
    d = make_daemon(config={"settle_ms": 30, "rescan_interval_s": 0})
    make_repo(d.dev_root / "alpha", home=d.home)
    make_repo(d.dev_root / "group" / "beta", home=d.home)
    return d


def watching(d: DaemonProcess) -> dict[str, Any]:
    """Started and watching (the first scan and the watch set come right after `ready`)."""
    d.start()
    status: dict[str, Any] = wait_for(
        lambda: (s := d.call("daemon.status"))["watcher"]["mode"] in ("watching", "degraded") and s,
        20,
        "the watcher",
    )
    return status


async def next_event(
    client: AsyncClient, kind: str, timeout: float = 10, path: Path | None = None
) -> dict[str, Any]:
    """The next event of `kind` (about `path`, when given: a project made a moment earlier
    may still be updated as its last files land)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await client.next_notification(max(0.01, deadline - time.monotonic()))
        event: dict[str, Any] = message["params"]["event"]
        if event["type"] == kind and (path is None or event["data"].get("path") == str(path)):
            return event


def test_create_rename_delete_restore_and_commit_are_seen(watched: DaemonProcess) -> None:
    watching(watched)
    dev, home = watched.dev_root, watched.home

    async def scenario() -> None:
        client = await AsyncClient.connect(watched.socket_path)
        await client.call("events.subscribe", {"topics": ["projects"]})
        make_repo(dev / "group" / "gamma", home=home)
        added = await next_event(client, "projects.created")
        assert added["data"]["path"] == str(dev / "group" / "gamma")
        os.rename(dev / "group" / "gamma", dev / "group" / "delta")
        moved = await next_event(client, "projects.moved")
        assert moved["data"]["to"] == str(dev / "group" / "delta")
        assert moved["data"]["id"] == added["data"]["id"]
        parked = watched.root / "parked"
        shutil.move(str(dev / "alpha"), str(parked))
        missing = await next_event(client, "projects.missing")
        assert missing["data"]["path"] == str(dev / "alpha")
        shutil.move(str(parked), str(dev / "alpha"))
        returned = await next_event(client, "projects.returned")
        assert returned["data"]["id"] == missing["data"]["id"]
        (dev / "group" / "beta" / "x.txt").write_text("x")
        git(dev / "group" / "beta", "add", "x.txt", home=home)
        git(dev / "group" / "beta", "commit", "-qm", "x", home=home)
        beta = dev / "group" / "beta"
        # `git add` may be seen on its own first (the working tree changed): then the commit.
        updated = await next_event(client, "projects.updated", path=beta)
        if "head_sha" not in updated["data"]["changed"]:
            updated = await next_event(client, "projects.updated", path=beta)
        assert "head_sha" in updated["data"]["changed"]
        await client.close()

    asyncio.run(scenario())


def test_events_are_held_while_index_lock_exists(watched: DaemonProcess) -> None:
    watching(watched)
    repo = watched.dev_root / "alpha"
    lock = repo / ".git" / "index.lock"

    async def scenario() -> None:
        client = await AsyncClient.connect(watched.socket_path)
        await client.call("events.subscribe", {"topics": ["projects.updated"]})
        lock.write_text("")
        # A change git would make mid-operation: a new commit object, a moved branch.
        sha = git(
            repo, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "held", home=watched.home
        ).strip()
        (repo / ".git" / "refs" / "heads" / "main").write_text(sha + "\n")
        with pytest.raises(TimeoutError):
            await client.next_notification(0.8)  # held: nothing while the lock is there
        lock.unlink()
        event = await next_event(client, "projects.updated")
        assert event["data"]["changed"]["head_sha"] == sha
        await client.close()

    asyncio.run(scenario())


def test_os_watches_grow_with_projects_not_files(make_daemon: DaemonFactory) -> None:
    d = make_daemon(config={"rescan_interval_s": 0})
    for i in range(30):
        repo = make_repo(d.dev_root / f"g{i % 3}" / f"p{i}", home=d.home)
        deep = repo / "src" / "a" / "b"
        deep.mkdir(parents=True)
        for j in range(20):
            (deep / f"f{j}.py").write_text("x = 1\n")
    status = watching(d)
    assert d.process is not None
    pid = d.process.pid
    # Right after a rebuild the previous set overlaps the new one for a moment.
    used = wait_for(
        lambda: (n := count_inotify_watches(pid)) == status["watcher"]["watched_paths"] and n,
        10,
        "the watch count to settle",
    )
    groups = 1 + 3
    assert 30 <= used <= 8 * 30 + groups
    assert status["watcher"]["polled_paths"] == 0


def test_degraded_mode_polls_serves_and_says_how_to_fix(make_daemon: DaemonFactory) -> None:
    d = make_daemon(
        config={"settle_ms": 30, "rescan_interval_s": 0, "poll_interval_s": 0.2},
        argv=[sys.executable, str(REPO / "tests" / "watch_limited_daemon.py")],
        env={"PM_TEST_WATCH_LIMIT": "3"},
    )
    for i in range(4):
        make_repo(d.dev_root / f"p{i}", home=d.home)
    status = watching(d)
    watcher = status["watcher"]
    assert watcher["mode"] == "degraded"
    assert watcher["watched_paths"] == 3 and watcher["polled_paths"] > 0
    assert "fs.inotify.max_user_watches=" in watcher["fix"]
    health = d.call("db.health")
    assert health["healthy"] is True
    assert any("max_user_watches" in w for w in health["warnings"])
    assert d.call("kv.set", {"namespace": "n", "key": "k", "value": 1})["created"] is True

    async def scenario() -> None:
        client = await AsyncClient.connect(d.socket_path)
        await client.call("events.subscribe", {"topics": ["projects"]})
        make_repo(d.dev_root / "p3" / "inner-notes", home=d.home)  # inside a project: nothing
        make_repo(d.dev_root / "late", home=d.home)  # the Dev root itself is watched
        added = await next_event(client, "projects.created")
        assert added["data"]["name"] == "late"
        # The last projects are polled: a commit there still arrives.
        repo = d.dev_root / "p3"
        (repo / "y.txt").write_text("y")
        git(repo, "add", "y.txt", home=d.home)
        git(repo, "commit", "-qm", "y", home=d.home)
        updated = await next_event(client, "projects.updated", timeout=15, path=repo)
        assert "head_sha" in updated["data"]["changed"]
        await client.close()

    asyncio.run(scenario())


def test_a_project_that_appears_later_in_a_new_folder_is_seen(watched: DaemonProcess) -> None:
    watching(watched)
    dev, home = watched.dev_root, watched.home

    async def scenario() -> None:
        client = await AsyncClient.connect(watched.socket_path)
        await client.call("events.subscribe", {"topics": ["projects.created"]})
        late = dev / "group" / "late"
        late.mkdir()  # an empty folder: not a project yet
        newgroup = dev / "newgroup"
        newgroup.mkdir()
        await asyncio.sleep(0.6)  # well past the settle time
        git(late, "init", "-q", home=home)
        first = await next_event(client, "projects.created")
        assert first["data"]["path"] == str(late)
        staged = make_repo(watched.root / "staging" / "moved-in", home=home)
        shutil.move(str(staged), str(newgroup / "moved-in"))
        second = await next_event(client, "projects.created")
        assert second["data"]["path"] == str(newgroup / "moved-in")
        await client.close()

    asyncio.run(scenario())
