"""A project keeps its id, its hand-set fields and its history however it moves under the Dev
roots — renamed, into or out of a grouping folder, between grouping folders, into a folder made
for the occasion, deeper, to another root — whether the daemon watches it happen or finds it
moved at its next start.
And the duplicates older versions made of such moves are merged back, losing nothing."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from daemon.domain.projects import sql as projects_db
from daemon.runtime.scanner import Scanner
from daemon.store import migrations
from daemon.store.database import Database
from tests.conftest import DaemonFactory
from tests.gitrepos import make_repo
from tests.helpers import DaemonProcess, wait_for

# kind → (where the project is, where it goes); "fresh/" is made just before the move
MOVES = {
    "rename": ("huey", "huey-renamed"),
    "into-group": ("huey", "clients/huey"),
    "into-new-group": ("huey", "fresh/huey"),
    "out-of-group": ("clients/huey", "huey"),
    "between-groups": ("clients/huey", "archive/huey"),
    "deeper": ("huey", "archive/2025/huey"),
}
HAND_SET = {
    "status": "on-hold",
    "description": "Mine, by hand",
    "deployed_url": "https://h.example",
}


def world(make_daemon: DaemonFactory, start_at: str) -> DaemonProcess:
    d = make_daemon(config={"settle_ms": 30, "rescan_interval_s": 0})
    make_repo(d.dev_root / start_at, home=d.home, remotes={"origin": "git@github.com:me/huey.git"})
    make_repo(d.dev_root / "clients" / "acme", home=d.home)  # grouping folders with a project
    make_repo(d.dev_root / "archive" / "old-thing", home=d.home)
    (d.dev_root / "archive" / "2025").mkdir()
    return d


def with_history(d: DaemonProcess, path: Path) -> dict[str, Any]:
    """The project at `path`, with fields set by hand, a quality assessment and a job."""
    project: dict[str, Any] = wait_for(
        lambda: d.call("projects.list", {"query": path.name})["items"], 20, "the first scan"
    )[0]
    d.call("projects.update", {"project": project["id"], **HAND_SET})
    d.call("quality.scan", {"project": project["id"]})
    history = d.call("quality.history", {"project": project["id"]})["items"]
    job = d.call("jobs.record", {"kind": "agent.call", "project": project["id"]})
    return {**project, "quality_ids": {q["id"] for q in history}, "job_id": job["id"]}


def history_of(d: DaemonProcess, project_id: int) -> tuple[set[int], set[int]]:
    """The ids of the project's quality rows and jobs."""
    quality = d.call("quality.history", {"project": project_id, "limit": 100})["items"]
    jobs = d.call("jobs.list", {"project": project_id, "limit": 100})["items"]
    return {q["id"] for q in quality}, {j["id"] for j in jobs}


def events_since(d: DaemonProcess, seq: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = d.call(
        "events.list", {"topics": ["projects"], "since": seq, "limit": 1000}
    )["items"]
    return items


def last_seq(d: DaemonProcess) -> int:
    page = d.call("events.list", {"limit": 1000})
    return max((e["seq"] for e in page["items"]), default=0)


@pytest.mark.parametrize("running", [True, False], ids=["daemon-running", "daemon-stopped"])
@pytest.mark.parametrize("kind", list(MOVES))
def test_a_moved_project_keeps_its_id_fields_and_history(
    make_daemon: DaemonFactory, kind: str, running: bool
) -> None:
    src_rel, dst_rel = MOVES[kind]
    d = world(make_daemon, src_rel)
    src, dst = d.dev_root / src_rel, d.dev_root / dst_rel
    d.start()
    if running:
        wait_for(lambda: d.call("daemon.status")["watcher"]["mode"] == "watching", 20, "watching")
    before = with_history(d, src)
    seq = last_seq(d)
    if not running:
        assert d.stop() == 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))
    if not running:
        d.start()
    moved = wait_for(
        lambda: (p := d.call("projects.get", {"project": before["id"]}))["path"] == str(dst) and p,
        20,
        f"project {before['id']} to be seen at {dst}",
    )
    assert moved["present"] is True and moved["name"] == dst.name
    assert {k: moved[k] for k in HAND_SET} == HAND_SET
    assert sorted(moved["user_set"]) == sorted(HAND_SET)
    quality, jobs = history_of(d, before["id"])
    assert before["quality_ids"] <= quality and before["job_id"] in jobs
    # One record: not a new project beside a missing one (the name answers, no conflict).
    everything = d.call("projects.list", {"include_missing": True, "limit": 100})["items"]
    assert sorted(p["path"] for p in everything) == sorted(
        str(d.dev_root / p) for p in (dst_rel, "clients/acme", "archive/old-thing")
    )
    assert d.call("projects.get", {"project": dst.name})["id"] == before["id"]
    types = [e["type"] for e in events_since(d, seq)]
    assert "projects.created" not in types and "projects.merged" not in types, types
    assert "projects.moved" in types


def test_duplicates_left_by_older_versions_are_merged_without_loss(
    make_daemon: DaemonFactory,
) -> None:
    d = make_daemon(config={"watch": False, "rescan_interval_s": 0})
    make_repo(d.dev_root / "huey", home=d.home)
    make_repo(d.dev_root / "clients" / "acme", home=d.home)
    d.start()
    old = with_history(d, d.dev_root / "huey")
    assert d.stop() == 0
    # What the old code made of `mv ~/Dev/huey ~/Dev/clients/huey` with the daemon running: a
    # second record at the new path (same checkout, same identity), the first one missing; the
    # user then set a description on the new one, and it got a quality row and a job of its own.
    shutil.move(str(d.dev_root / "huey"), str(d.dev_root / "clients" / "huey"))
    new_path = str(d.dev_root / "clients" / "huey")
    conn = sqlite3.connect(d.db_path)
    with conn:
        columns = [
            r[1] for r in conn.execute("PRAGMA table_info(projects)") if r[1] not in ("id", "uid")
        ]
        chosen = ", ".join("?" if c == "path" else c for c in columns)
        conn.execute(
            f"INSERT INTO projects ({', '.join(columns)}) SELECT {chosen} FROM projects "
            "WHERE id = ?",
            (new_path, old["id"]),
        )
        new_id = conn.execute("SELECT max(id) FROM projects").fetchone()[0]
        conn.execute(
            "UPDATE projects SET description = 'Newer words', user_set = '[\"description\"]', "
            "status = 'active', deployed_url = NULL, created_at = '2030-01-01T00:00:00.000000Z' "
            "WHERE id = ?",
            (new_id,),
        )
        conn.execute(
            "UPDATE projects SET present = 0, missing_since = '2030-01-01T00:00:00.000000Z' "
            "WHERE id = ?",
            (old["id"],),
        )
        for table in ("quality_metrics", "jobs"):
            cols = [
                r[1]
                for r in conn.execute(f"PRAGMA table_info({table})")
                if r[1] not in ("id", "uid")  # a copy is a row of its own
            ]
            listed = ", ".join(cols)
            chosen = ", ".join("?" if c == "project_id" else c for c in cols)
            conn.execute(
                f"INSERT INTO {table} ({listed}) SELECT {chosen} FROM {table} WHERE project_id = ?",
                (new_id, old["id"]),
            )
    conn.close()

    d.start()
    merged = wait_for(
        lambda: d.call("events.list", {"topics": ["projects.merged"]})["items"], 20, "the merge"
    )[0]["data"]
    assert merged["id"] == old["id"] and merged["merged"] == [new_id]
    assert merged["path"] == new_path
    assert merged["moved_rows"] == {"quality_metrics.project_id": 1, "jobs.project_id": 1}
    # The newer record's value won where both set a field; the old one is kept in the event.
    assert merged["overridden"] == [
        {"id": old["id"], "field": "description", "value": HAND_SET["description"]}
    ]
    kept = d.call("projects.get", {"project": old["id"]})
    assert kept["path"] == new_path and kept["present"] is True
    assert kept["created_at"] == old["created_at"]
    assert kept["description"] == "Newer words"
    assert kept["status"] == HAND_SET["status"] and kept["deployed_url"] == HAND_SET["deployed_url"]
    assert sorted(kept["user_set"]) == ["deployed_url", "description", "status"]
    quality, jobs = history_of(d, old["id"])
    assert len(old["quality_ids"]) == 1 and len(quality - old["quality_ids"]) >= 1
    assert old["job_id"] in jobs and len(jobs) >= 2
    assert d.call_error("projects.get", {"project": new_id}).kind == "not_found"
    assert d.call("projects.get", {"project": "huey"})["id"] == old["id"]
    assert d.call("projects.list", {"include_missing": True})["total"] == 2


def test_a_copy_is_a_project_of_its_own(make_daemon: DaemonFactory) -> None:
    """Two present folders of one checkout (cp -r) share an identity: they stay two projects,
    and neither takes the other's place when the watcher rescans only one folder."""
    d = make_daemon(config={"settle_ms": 30, "rescan_interval_s": 0})
    make_repo(d.dev_root / "huey", home=d.home)
    (d.dev_root / "clients").mkdir()
    d.start()
    wait_for(lambda: d.call("daemon.status")["watcher"]["mode"] == "watching", 20, "watching")
    original = with_history(d, d.dev_root / "huey")
    copy_path = str(d.dev_root / "clients" / "huey")
    shutil.copytree(d.dev_root / "huey", copy_path, symlinks=True)

    def copy() -> dict[str, Any] | None:
        page = d.call("projects.list", {"query": "clients/huey"})["items"]
        return next((p for p in page if p["path"] == copy_path), None)

    assert wait_for(copy, 20, "the copy to be found")["id"] != original["id"]
    again = d.call("projects.get", {"project": original["id"]})
    assert again["path"] == str(d.dev_root / "huey") and again["present"] is True
    d.call("projects.scan")
    assert d.call("projects.list", {"include_missing": True})["total"] == 2


def test_a_project_moved_between_roots_keeps_its_record(tmp_path: Path) -> None:
    """The daemon is given one Dev root; the scanner serves several alike. A project moved
    from one root to another, seen by a scan of only the root it moved into (as the watcher
    rescans the folder where something appeared), is the same project, under its new root."""
    first, second = tmp_path / "first", tmp_path / "second"
    make_repo(first / "huey", home=tmp_path)
    second.mkdir()

    async def scenario() -> None:
        db = Database(str(tmp_path / "pm.db"))
        db.migrate(migrations.load())
        await db.start()
        scanner = Scanner(
            db, roots=[str(first), str(second)], exclude=[], max_depth=4,
            follow_symlinks=False, threads=2, own_handles=[],
        )  # fmt: skip
        try:
            await scanner.scan_all()
            [before] = await db.read(projects_db.every)
            shutil.move(str(first / "huey"), str(second / "huey"))
            summary = await scanner.scan_folders([str(second)])
            assert (summary.moved, summary.new, summary.missing) == (1, 0, 0)
            [after] = await db.read(projects_db.every)
            assert after.id == before.id and after.path == str(second / "huey")
            assert after.root == str(second) and after.present
            again = await scanner.scan_folders([str(first)])  # the root it left: nothing more
            assert (again.missing, again.new) == (0, 0)
        finally:
            scanner.close()
            await db.close()

    asyncio.run(scenario())
