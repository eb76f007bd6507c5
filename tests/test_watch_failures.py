"""The watcher does not die quietly: names that are not UTF-8 anywhere under the Dev folder (git
can commit one), a watcher thread that fails, and what daemon.status, db.health, `pm status`
and `pm doctor` say."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from client.aio import AsyncClient
from client.status_view import render_status
from daemon.runtime.scanner import Scanner
from daemon.runtime.watcher import Watcher, WatchStatus
from daemon.store import migrations
from daemon.store.database import Database
from tests.conftest import DaemonFactory
from tests.gitrepos import git, make_repo
from tests.helpers import DaemonProcess, wait_for
from tests.test_cli import Cli
from tests.test_doctor import doctor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")

BAD = b"caf\xe9-latin1"  # a Latin-1 name: not valid UTF-8


def bad_path(folder: Path, name: bytes = BAD) -> bytes:
    return os.path.join(os.fsencode(folder), name)


def touch(path: bytes) -> None:
    with open(path, "ab") as f:
        f.write(b"x")


async def next_event(client: AsyncClient, kind: str, timeout: float = 10) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await client.next_notification(max(0.01, deadline - loop.time()))
        event: dict[str, Any] = message["params"]["event"]
        if event["type"] == kind:
            return event


@pytest.fixture
def watched(make_daemon: DaemonFactory) -> DaemonProcess:
    d = make_daemon(config={"settle_ms": 30, "rescan_interval_s": 0, "poll_interval_s": 0.2})
    make_repo(d.dev_root / "alpha", home=d.home)
    make_repo(d.dev_root / "group" / "beta", home=d.home)
    d.start()
    wait_for(lambda: d.call("daemon.status")["watcher"]["mode"] == "watching", 20, "watching")
    return d


def watcher_of(d: DaemonProcess) -> dict[str, Any]:
    result: dict[str, Any] = d.call("daemon.status")["watcher"]
    return result


def test_a_name_that_is_not_utf8_does_not_stop_watching(watched: DaemonProcess) -> None:
    d = watched
    dev = d.dev_root

    async def scenario() -> None:
        client = await AsyncClient.connect(d.socket_path)
        await client.call("events.subscribe", {"topics": ["projects.created"]})
        touch(bad_path(dev))  # a file in the Dev root, as `git checkout` of such a name makes
        await asyncio.to_thread(
            wait_for, lambda: watcher_of(d)["failures"] == 1, 10, "the failure to be recorded"
        )
        make_repo(dev / "late", home=d.home)  # the watcher restarted: a new project is seen
        added = await next_event(client, "projects.created")
        assert added["data"]["path"] == str(dev / "late")
        # A name inside a project (its folder is watched too), committed with git: a second
        # failure, or none when a rebuild of the watch set meanwhile found the name first.
        touch(bad_path(dev / "alpha"))
        git(dev / "alpha", "add", "-A", home=d.home)
        git(dev / "alpha", "commit", "-qm", "latin-1 name", home=d.home)
        await asyncio.to_thread(
            wait_for,
            lambda: str(dev / "alpha") in watcher_of(d)["unwatchable"],
            10,
            "the project folder to be polled",
        )
        make_repo(dev / "group" / "later", home=d.home)
        added = await next_event(client, "projects.created")
        assert added["data"]["path"] == str(dev / "group" / "later")
        await client.close()

    asyncio.run(scenario())
    watcher = wait_for(lambda: (w := watcher_of(d))["mode"] == "degraded" and w, 10, "degraded")
    assert "decode" in watcher["last_failure"] and watcher["last_failure_at"]
    assert watcher["failures"] in (1, 2)  # the folders are polled now: never a third time
    assert watcher["unwatchable"] == [str(dev), str(dev / "alpha")]
    # The polled folder's change reaches the project (on the next poll: wait, under load).
    commit = git(dev / "alpha", "rev-parse", "HEAD", home=d.home).strip()
    wait_for(
        lambda: d.call("projects.get", {"project": "alpha"})["head_sha"] == commit,
        10,
        "the polled project's new commit",
    )


def test_folders_with_such_names_are_reported_and_the_rest_is_tracked(
    make_daemon: DaemonFactory,
) -> None:
    """Discovery, the scanner and the watch set meet the names at start: a project folder or
    a grouping folder so named is reported (it cannot be tracked: paths are UTF-8 on the
    wire), a project holding such a file is read as any other, and watching goes on."""
    d = make_daemon(config={"settle_ms": 30, "rescan_interval_s": 0})
    dev = d.dev_root
    alpha = make_repo(dev / "alpha", home=d.home)
    touch(bad_path(alpha))
    git(alpha, "add", "-A", home=d.home)
    git(alpha, "commit", "-qm", "a latin-1 name", home=d.home)
    for folder in (b"proj\xff", b"grp\xfe/inner"):
        os.makedirs(bad_path(dev, folder))
        git(Path(os.fsdecode(bad_path(dev, folder))), "init", "-q", home=d.home)
    touch(bad_path(dev))
    d.start()
    status = wait_for(lambda: (w := watcher_of(d))["mode"] == "degraded" and w, 20, "watching")
    summary = d.call("projects.scan")  # opens every such folder: the watcher must not mind
    assert sorted(e["path"] for e in summary["errors"]) == [
        str(dev / "grp\ufffd" / "inner"),
        str(dev / "proj\ufffd"),
    ]
    assert all("not valid UTF-8" in e["error"] for e in summary["errors"])
    assert [p["name"] for p in d.call("projects.list")["items"]] == ["alpha"]
    project = d.call("projects.get", {"project": "alpha"})
    assert project["scan_error"] is None and project["head_sha"]
    # Polled from the start, since the watch set is checked for such names: no failure at all.
    status = watcher_of(d)
    assert status["mode"] == "degraded" and status["failures"] == 0, status
    assert status["unwatchable"] == [str(dev), str(alpha)]


def test_a_folder_with_such_a_name_is_polled_and_reported_until_renamed(
    watched: DaemonProcess,
) -> None:
    d = watched
    dev = d.dev_root
    name = bad_path(dev)
    touch(name)
    watcher = wait_for(
        lambda: (w := watcher_of(d))["mode"] == "degraded" and w, 10, "the folder to be polled"
    )
    assert watcher["failures"] == 1 and watcher["unwatchable"] == [str(dev)]
    assert watcher["polled_paths"] == 1 and watcher["watched_paths"] > 0
    assert "not valid UTF-8" in watcher["problem"] and "caf\ufffd-latin1" in watcher["problem"]
    assert "rename" in watcher["fix"]
    health = d.call("db.health")
    assert health["healthy"] is True
    assert any("not valid UTF-8" in w and "rename" in w for w in health["warnings"])

    async def scenario() -> None:
        client = await AsyncClient.connect(d.socket_path)
        await client.call("events.subscribe", {"topics": ["projects.created"]})
        make_repo(dev / "seen-by-polling", home=d.home)  # in the polled Dev root
        added = await next_event(client, "projects.created")
        assert added["data"]["name"] == "seen-by-polling"
        make_repo(dev / "group" / "seen-by-inotify", home=d.home)
        added = await next_event(client, "projects.created")
        assert added["data"]["name"] == "seen-by-inotify"
        await client.close()

    asyncio.run(scenario())
    os.rename(name, bad_path(dev, b"cafe-utf8"))  # renamed: the folder is watched again
    watcher = wait_for(
        lambda: (w := watcher_of(d))["mode"] == "watching" and w, 10, "the folder to be watched"
    )
    assert watcher["unwatchable"] == [] and watcher["problem"] is None
    assert watcher["failures"] == 1


@asynccontextmanager
async def in_process_watcher(tmp_path: Path, dev: Path) -> AsyncIterator[Watcher]:
    db = Database(str(tmp_path / "pm.db"))
    db.migrate(migrations.load())
    await db.start()
    scanner = Scanner(
        db, roots=[str(dev)], exclude=[], max_depth=4, follow_symlinks=False, threads=2,
        own_handles=[],
    )  # fmt: skip
    # A long delay before the restart, to look at the watcher while it is not running.
    watcher = Watcher(
        scanner, db, settle_s=0.03, poll_interval_s=0.2, max_watches=0, restart_delays_s=(30,)
    )
    try:
        await scanner.scan_all()
        await watcher.start()
        yield watcher
    finally:
        await watcher.close()
        scanner.close()
        await db.close()


def test_a_watcher_that_is_not_running_is_never_reported_as_watching(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    make_repo(dev / "alpha", home=tmp_path)

    async def scenario() -> None:
        async with in_process_watcher(tmp_path, dev) as watcher:
            assert watcher.status().mode == "watching"
            touch(bad_path(dev))
            await asyncio.to_thread(wait_for, lambda: watcher.status().failures, 10, "a failure")
            status = watcher.status()  # on the loop, where the failure was recorded
            assert status.mode == "restarting" and status.watched_paths == 0
            assert status.problem is not None and "restarted in" in status.problem
            assert status.last_failure is not None and "decode" in status.last_failure

    asyncio.run(scenario())


def test_a_dev_root_that_vanishes_costs_no_cpu(make_daemon: DaemonFactory) -> None:
    """The Dev root deleted under a running daemon (a test's temp folder cleaned, a disk
    unmounted): the watch set is built once for what is left, not rebuilt after every rescan
    (it was, ~90 times a second, a quarter of a core for ever)."""
    d = make_daemon(config={"settle_ms": 30, "rescan_interval_s": 0})
    make_repo(d.dev_root / "alpha", home=d.home)
    d.start()
    wait_for(lambda: d.call("daemon.status")["watcher"]["mode"] == "watching", 10, "watching")
    shutil.rmtree(d.dev_root)
    wait_for(
        lambda: d.call("projects.get", {"project": "alpha"})["present"] is False, 10, "missing"
    )
    assert d.process is not None
    before, built = cpu_seconds(d.process.pid), d.log().count('"event": "watching"')
    time.sleep(2)
    assert d.log().count('"event": "watching"') - built <= 1
    assert cpu_seconds(d.process.pid) - before < 0.5
    assert d.call("daemon.status")["dev_roots"] == [{"path": str(d.dev_root), "exists": False}]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- what pm status and pm doctor say ---------------------------------------------------------
# The real daemon, with the delay before its watcher is built again after a failure raised from
# 0 s (too short to look at) to a minute. The failure itself is a real one.
SLOW_TO_RESTART = """
import sys
import daemon.runtime.watcher as watcher
from daemon.runtime.main import main
init = watcher.Watcher.__init__
def slow(self, *args, **kwargs):
    kwargs["restart_delays_s"] = (60.0,)
    init(self, *args, **kwargs)
watcher.Watcher.__init__ = slow
sys.exit(main(sys.argv[1:]))
"""


def status_text(d: DaemonProcess) -> str:
    done = Cli(d).run("--no-spawn", "status")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_restarting_watcher_is_shown_so_and_doctor_warns(make_daemon: DaemonFactory) -> None:
    d = make_daemon(
        config={"settle_ms": 30, "rescan_interval_s": 0},
        argv=[sys.executable, "-c", SLOW_TO_RESTART],
    )
    make_repo(d.dev_root / "alpha", home=d.home)
    d.start()
    wait_for(lambda: watcher_of(d)["mode"] == "watching", 20, "watching")
    touch(bad_path(d.dev_root))  # a name the file watcher cannot decode: it fails
    watcher = wait_for(
        lambda: (w := watcher_of(d))["mode"] == "restarting" and w, 20, "the watcher to fail"
    )
    assert watcher["watched_paths"] == 0 and watcher["failures"] == 1
    text = status_text(d)
    assert "watcher  restarting, nothing is watched meanwhile: the file watcher failed" in text
    assert "restarted in" in text
    assert "fix: none needed if it recovers; if it keeps failing: pm daemon restart" in text
    assert "watching 0 folders" not in text

    code, _, checks = doctor(Cli(d))
    inotify = checks["inotify"]
    assert inotify["status"] == "warn", inotify  # not "ok": nothing is watched meanwhile
    assert "restarting" in inotify["message"] and "the file watcher failed" in inotify["message"]
    assert "pm daemon restart" in inotify["fix"]
    assert code == 0  # a warning, not a failure


def test_folders_that_cannot_be_watched_are_named_by_pm_status(
    make_daemon: DaemonFactory,
) -> None:
    d = make_daemon(config={"settle_ms": 30, "rescan_interval_s": 0})
    make_repo(d.dev_root / "alpha", home=d.home)
    touch(bad_path(d.dev_root))  # there from the start: polled, no failure
    d.start()
    wait_for(lambda: watcher_of(d)["mode"] == "degraded", 20, "the Dev root to be polled")
    text = status_text(d)
    assert f"cannot watch 1 folder(s), polled instead: {d.dev_root}\n" in text
    assert "fix: rename the file or folder whose name is not valid UTF-8" in text


def watch_status(**fields: object) -> dict[str, object]:
    quiet = WatchStatus(
        mode="watching", watched_paths=0, polled_paths=0, os_watches=None,
        max_user_watches=None, problem=None, fix=None, unwatchable=[], failures=0,
        last_failure=None, last_failure_at=None,
    )  # fmt: skip
    shown: dict[str, object] = msgspec.to_builtins(msgspec.structs.replace(quiet, **fields))
    return shown


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"mode": "off"}, "watcher  off: changes are found by rescans only (watch = false)"),
        ({"mode": "starting"}, "watcher  starting"),
        ({"mode": "watching", "watched_paths": 7}, "watching 7 folders"),
        (
            {"mode": "restarting", "unwatchable": [f"/dev/p{i}" for i in range(7)]},
            "cannot watch 7 folder(s), polled instead: /dev/p0, /dev/p1, /dev/p2, /dev/p3, "
            "/dev/p4 …",
        ),
    ],
)
def test_each_watcher_mode_has_a_line_in_pm_status(fields: dict[str, object], line: str) -> None:
    text = render_status({"state": "ready", "watcher": watch_status(**fields)})
    assert f"{line}\n" in text


def test_pm_status_says_nothing_is_watched_in_a_missing_dev_root() -> None:
    text = render_status({"state": "ready", "dev_roots": [{"path": "/nope", "exists": False}]})
    assert "dev root /nope  (does not exist: nothing there is found or watched)" in text
