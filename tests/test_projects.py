"""Projects end to end: real git repositories in a temp Dev folder, a real daemon, real scans."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from client.aio import AsyncClient
from tests.conftest import DaemonFactory
from tests.gitrepos import git, make_repo
from tests.helpers import DaemonProcess, wait_for

TOKEN = "ghp_SECRETtoken1234567890"


@pytest.fixture
def world(make_daemon: DaemonFactory) -> DaemonProcess:
    d = make_daemon(config={"watch": False, "rescan_interval_s": 0})
    dev, home = d.dev_root, d.home
    make_repo(dev / "alpha", home=home, remotes={"origin": "git@github.com:me/alpha.git"})
    make_repo(dev / "work" / "api", home=home, files={"package.json": '{"description": "The API"}'})
    make_repo(
        dev / "work" / "web",
        home=home,
        remotes={"origin": f"https://me:{TOKEN}@github.com/someone/web.git"},
    )
    plain = dev / "plain"
    plain.mkdir(parents=True)
    (plain / "pyproject.toml").write_text(
        '[project]\nname = "plain"\ndescription = "No git here"\n'
    )
    junk = dev / "alpha" / "node_modules" / "dep"
    junk.mkdir(parents=True)
    (junk / "package.json").write_text("{}")
    return d


def scan(d: DaemonProcess, project: Any = None) -> dict[str, Any]:
    params = {} if project is None else {"project": project}
    result: dict[str, Any] = d.call("projects.scan", params)
    return result


def names(d: DaemonProcess, **params: Any) -> list[str]:
    page = d.call("projects.list", {"order": "name", **params})
    return [p["name"] for p in page["items"]]


def test_first_scan_finds_every_project_and_nothing_else(world: DaemonProcess) -> None:
    world.start()
    summary = scan(world)
    assert summary["found"] == 4 and summary["errors"] == []
    assert names(world) == ["alpha", "api", "plain", "web"]
    api = world.call("projects.get", {"project": "api"})
    assert api["description"] == "The API" and api["vcs"] == "git"
    assert api["root"] == str(world.dev_root) and api["branch"] == "main"
    assert api["status"] == "active" and api["present"] is True
    plain = world.call("projects.get", {"project": str(world.dev_root / "plain")})
    assert plain["vcs"] == "none" and plain["description"] == "No git here"
    again = scan(world)
    assert again["unchanged"] == 4 and again["new"] == again["updated"] == 0


def test_credentials_never_reach_the_database_events_or_logs(world: DaemonProcess) -> None:
    world.start()
    scan(world)
    web = world.call("projects.get", {"project": "web"})
    assert web["repository_url"] == "https://github.com/someone/web"
    assert TOKEN not in str(web)
    world.stop()
    for path in world.db_path.parent.iterdir():
        assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in world.log()


def test_list_filters_orders_and_pages(world: DaemonProcess) -> None:
    world.start()
    scan(world)
    assert names(world, query="work/") == ["api", "web"]
    assert names(world, query="no git") == ["plain"]
    assert names(world, query="100%_") == []
    page = world.call("projects.list", {"order": "name", "limit": 2, "offset": 1})
    assert [p["name"] for p in page["items"]] == ["api", "plain"] and page["total"] == 4
    assert names(world, status=["archived"]) == []
    error = world.call_error("projects.list", {"status": ["finished"]})
    assert error.kind == "invalid_params" and error.data["field"].startswith("status")


def test_get_by_id_path_or_name_and_clear_errors(world: DaemonProcess) -> None:
    make_repo(world.dev_root / "other" / "api", home=world.home)
    world.start()
    scan(world)
    first = world.call("projects.get", {"project": str(world.dev_root / "work" / "api")})
    assert world.call("projects.get", {"project": first["id"]})["path"] == first["path"]
    ambiguous = world.call_error("projects.get", {"project": "api"})
    assert ambiguous.kind == "conflict" and len(ambiguous.data["candidates"]) == 2
    assert world.call_error("projects.get", {"project": "nope"}).kind == "not_found"
    assert world.call_error("projects.get", {"project": 9999}).kind == "not_found"


def test_a_value_set_by_hand_wins_over_every_rescan(world: DaemonProcess) -> None:
    world.start()
    scan(world)
    updated = world.call(
        "projects.update",
        {
            "project": "alpha",
            "status": "archived",
            "description": "Mine",
            "deployed_url": "https://alpha.example",
        },
    )
    assert updated["status"] == "archived" and updated["description"] == "Mine"
    assert sorted(updated["user_set"]) == ["deployed_url", "description", "status"]
    (world.dev_root / "alpha" / "README.md").write_text("# alpha\n\nInferred description.\n")
    git(world.dev_root / "alpha", "commit", "-qam", "readme", home=world.home)
    scan(world)
    after = world.call("projects.get", {"project": "alpha"})
    assert after["status"] == "archived" and after["description"] == "Mine"
    back = world.call("projects.update", {"project": "alpha", "reset": ["status", "description"]})
    assert back["status"] == "active" and back["description"] == "Inferred description."
    assert back["user_set"] == ["deployed_url"]
    error = world.call_error("projects.update", {"project": "alpha", "status": "done"})
    assert error.data["field"] == "status"


def test_vanish_return_move_keep_the_id_and_history(world: DaemonProcess) -> None:
    world.start()
    scan(world)
    api = world.call("projects.get", {"project": "api"})
    parked = world.root / "parked"
    shutil.move(str(world.dev_root / "work" / "api"), str(parked))
    summary = scan(world)
    assert summary["missing"] == 1
    gone = world.call("projects.get", {"project": api["id"]})
    assert gone["present"] is False and gone["missing_since"]
    assert "api" not in names(world) and "api" in names(world, include_missing=True)
    shutil.move(str(parked), str(world.dev_root / "work" / "api"))
    assert scan(world)["returned"] == 1
    assert world.call("projects.get", {"project": "api"})["id"] == api["id"]
    os.rename(world.dev_root / "work" / "api", world.dev_root / "api-renamed")
    summary = scan(world)
    assert summary["moved"] == 1 and summary["new"] == 0 and summary["missing"] == 0
    moved = world.call("projects.get", {"project": api["id"]})
    assert moved["path"] == str(world.dev_root / "api-renamed") and moved["name"] == "api-renamed"
    types = [
        e["type"]
        for e in world.call("events.list", {"topics": ["projects"], "limit": 100})["items"]
    ]
    assert types.count("projects.created") == 4
    assert [
        t for t in types if t in ("projects.missing", "projects.returned", "projects.moved")
    ] == [
        "projects.missing",
        "projects.returned",
        "projects.moved",
    ]


def test_a_plain_folder_without_git_is_recognised_by_its_inode_when_moved(
    world: DaemonProcess,
) -> None:
    world.start()
    scan(world)
    plain = world.call("projects.get", {"project": "plain"})
    os.rename(world.dev_root / "plain", world.dev_root / "work" / "plain2")
    summary = scan(world)
    assert summary["moved"] == 1
    assert world.call("projects.get", {"project": plain["id"]})["name"] == "plain2"


def test_register_forget_and_ignore(world: DaemonProcess, tmp_path: Path) -> None:
    world.start()
    scan(world)
    outside = tmp_path / "elsewhere" / "notes"
    outside.mkdir(parents=True)
    registered = world.call("projects.register", {"path": str(outside)})
    assert registered["source"] == "registered" and registered["root"] is None
    assert registered["name"] == "notes" and registered["present"] is True
    assert scan(world)["errors"] == []
    assert "notes" in names(world)
    assert world.call_error("projects.register", {"path": "relative/path"}).kind == "invalid_params"
    assert (
        world.call_error("projects.register", {"path": str(tmp_path / "none")}).kind == "not_found"
    )
    forgotten = world.call("projects.forget", {"project": "notes"})
    assert forgotten["ignored"] is False
    on_disk = world.call("projects.forget", {"project": "alpha"})
    assert on_disk["ignored"] is True
    scan(world)
    assert names(world) == ["api", "plain", "web"]  # alpha is not rediscovered
    world.call("projects.register", {"path": str(world.dev_root / "alpha")})
    assert "alpha" in names(world)


def test_linked_worktree_bare_repo_and_submodule(world: DaemonProcess) -> None:
    alpha = world.dev_root / "alpha"
    git(
        alpha,
        "worktree",
        "add",
        "-q",
        str(world.dev_root / "alpha-wt"),
        "-b",
        "feature",
        home=world.home,
    )
    bare = world.dev_root / "mirror.git"
    git(world.dev_root, "clone", "-q", "--bare", str(alpha), str(bare), home=world.home)
    lib = make_repo(world.root / "libsrc", home=world.home)
    git(world.dev_root / "work" / "web", "submodule", "add", "-q", str(lib), "lib", home=world.home)
    world.start()
    scan(world)
    wt = world.call("projects.get", {"project": "alpha-wt"})
    main = world.call("projects.get", {"project": "alpha"})
    assert wt["worktree_of"] == main["id"] and wt["branch"] == "feature"
    assert wt["git_kind"] == "linked-worktree"
    assert world.call("projects.get", {"project": "mirror.git"})["git_kind"] == "bare"
    assert "lib" not in names(world)


def test_scan_reports_progress_and_a_commit_updates_the_project(world: DaemonProcess) -> None:
    world.start()

    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        client = await AsyncClient.connect(world.socket_path)
        reports: list[dict[str, Any]] = []
        await client.call("projects.scan", {}, progress=reports.append)
        before = await client.call("projects.get", {"project": "alpha"})
        (world.dev_root / "alpha" / "new.py").write_text("print('hi')\n")
        git(world.dev_root / "alpha", "add", "new.py", home=world.home)
        git(world.dev_root / "alpha", "commit", "-qm", "more", home=world.home)
        summary = await client.call("projects.scan", {"project": "alpha"})
        after = await client.call("projects.get", {"project": "alpha"})
        await client.close()
        assert summary["updated"] == 1
        assert after["head_sha"] != before["head_sha"]
        assert after["languages"].get("Python", 0) > 0
        return reports, after

    reports, _ = asyncio.run(scenario())
    assert reports[0]["kind"] == "begin" and reports[-1]["kind"] == "end"
    events = world.call("events.list", {"topics": ["projects.updated"]})["items"]
    assert events and "head_sha" in events[-1]["data"]["changed"]


def test_the_data_folder_inside_the_dev_root_is_not_a_project(make_daemon: DaemonFactory) -> None:
    d = make_daemon(config={"watch": False, "rescan_interval_s": 0})
    d.env.pop("PM_AGENT_DATA_DIR")  # the default: <dev root>/.pm-agent
    make_repo(d.dev_root / "one", home=d.home)
    d.start()
    summary = scan(d)
    assert summary["found"] == 1
    assert (d.dev_root / ".pm-agent" / "db" / "pm-agent.db").exists()


def test_rows_follow_the_pm_agent_schema(world: DaemonProcess) -> None:
    world.start()
    scan(world)
    world.stop()
    conn = sqlite3.connect(world.db_path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(projects)")}
    conn.close()
    assert {
        "name",
        "path",
        "description",
        "status",
        "origin_type",
        "ownership",
        "created_at",
        "updated_at",
        "last_worked_on",
        "repository_url",
        "deployed_url",
        "present",
        "missing_since",
    } <= columns


def test_status_ages_without_any_change_on_disk(world: DaemonProcess) -> None:
    world.start()
    scan(world)
    # Pretend the last work was long ago, as if the daemon had been running for months.
    world.stop()
    conn = sqlite3.connect(world.db_path)
    conn.execute(
        "UPDATE projects SET last_worked_on = '2020-01-01T00:00:00.000000Z' WHERE name = 'plain'"
    )
    conn.commit()
    conn.close()
    world.start()
    scan(world)  # (the scan at start-up may already have done it)
    assert world.call("projects.get", {"project": "plain"})["status"] == "archived"
    events = world.call("events.list", {"topics": ["projects.updated"]})["items"]
    assert {"status": "archived"} in [e["data"]["changed"] for e in events]


def test_a_registered_plain_folder_inside_the_root_is_not_lost_by_scans(
    world: DaemonProcess,
) -> None:
    notes = world.dev_root / "notes"  # neither git nor a manifest: discovery alone skips it
    notes.mkdir()
    world.start()
    world.call("projects.register", {"path": str(notes)})
    for _ in range(2):
        summary = scan(world)
        assert summary["missing"] == 0
    assert world.call("projects.get", {"project": "notes"})["present"] is True
    summary = world.call("projects.scan", {"project": str(world.dev_root)})
    assert summary["missing"] == 0


def test_a_name_means_the_present_project_when_the_others_are_gone(world: DaemonProcess) -> None:
    make_repo(world.dev_root / "other" / "api", home=world.home)
    world.start()
    scan(world)
    gone = world.call("projects.get", {"project": str(world.dev_root / "other" / "api")})
    shutil.rmtree(world.dev_root / "other" / "api")
    assert scan(world)["missing"] == 1
    here = world.call("projects.get", {"project": "api"})
    assert here["path"] == str(world.dev_root / "work" / "api") and here["id"] != gone["id"]
    shutil.rmtree(world.dev_root / "work" / "api")
    scan(world)  # both gone: the name is ambiguous again, and says so
    error = world.call_error("projects.get", {"project": "api"})
    assert error.kind == "conflict" and len(error.data["candidates"]) == 2


# --- the domain layer: typed events, versions, the row's own limits ----------------------------
def events_of(d: DaemonProcess, kind: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = d.call("events.list", {"topics": [kind], "limit": 100})["items"]
    return [e["data"] for e in items]


def test_each_change_is_one_typed_event_with_the_rows_identity_and_version(
    world: DaemonProcess,
) -> None:
    """created carries the row; updated, moved and deleted its id, uid and path, and a change
    the new version and every changed field's new value (enough to replay it elsewhere)."""
    world.start()
    scan(world)
    api = world.call("projects.get", {"project": "api"})
    [created] = [e for e in events_of(world, "projects.created") if e["id"] == api["id"]]
    assert created["uid"] == api["uid"] and created["version"] == 1
    assert created["path"] == api["path"] and created["description"] == "The API"

    by_hand = world.call(
        "projects.update",
        {"project": api["id"], "status": "archived", "expected_version": api["version"]},
    )
    assert by_hand["version"] == api["version"] + 1
    assert events_of(world, "projects.updated")[-1] == {
        "id": api["id"], "uid": api["uid"], "version": by_hand["version"], "path": api["path"],
        "changed": {"status": "archived", "user_set": ["status"]},
    }  # fmt: skip
    stale = world.call_error(
        "projects.update",
        {"project": api["id"], "status": "active", "expected_version": api["version"]},
    )
    assert stale.kind == "conflict" and stale.data["version"] == by_hand["version"]
    assert world.call("projects.get", {"project": api["id"]})["status"] == "archived"

    renamed = world.dev_root / "api-renamed"
    os.rename(world.dev_root / "work" / "api", renamed)
    assert scan(world)["moved"] == 1
    moved = world.call("projects.get", {"project": api["id"]})
    [event] = events_of(world, "projects.moved")
    assert (event["from"], event["to"], event["path"]) == (api["path"], str(renamed), str(renamed))
    assert [event[k] for k in ("id", "uid", "version")] == [api["id"], api["uid"], moved["version"]]
    assert event["changed"]["path"] == str(renamed) and event["changed"]["name"] == "api-renamed"
    assert "status" not in event["changed"]  # set by hand: the move leaves it

    world.call("projects.forget", {"project": api["id"]})
    assert events_of(world, "projects.deleted") == [
        {"id": api["id"], "uid": api["uid"], "path": str(renamed)}
    ]


def test_a_rescan_that_finds_nothing_new_changes_no_version_and_says_nothing(
    world: DaemonProcess,
) -> None:
    """A folder touched without any fact changing (a file made and removed): the scan notes
    when it looked, but the project is not changed — no version, no event — or every rescan
    would change every project for every subscriber."""
    world.start()
    scan(world)
    before = world.call("projects.get", {"project": "alpha"})
    updates = len(events_of(world, "projects.updated"))
    (world.dev_root / "alpha" / "scratch.txt").write_text("x")
    (world.dev_root / "alpha" / "scratch.txt").unlink()  # the folder's mtime moved
    summary = scan(world, "alpha")
    assert summary["unchanged"] == 1 and summary["updated"] == 0
    after = world.call("projects.get", {"project": "alpha"})
    assert after["scanned_at"] > before["scanned_at"]  # it looked …
    assert after["fingerprint"] != before["fingerprint"]  # … and saw the folder change
    assert (after["version"], after["updated_at"]) == (before["version"], before["updated_at"])
    assert len(events_of(world, "projects.updated")) == updates


def test_a_remote_url_longer_than_a_row_holds_is_not_recorded(
    make_daemon: DaemonFactory,
) -> None:
    """A repository's origin URL is data from outside: one longer than a project's
    repository_url may be (what projects.update accepts) is left out, and the project is
    recorded all the same; before, the whole write failed and the project was never listed."""
    d = make_daemon(config={"watch": False, "rescan_interval_s": 0})
    long_url = "https://example.com/" + "a" * 3000 + ".git"
    make_repo(d.dev_root / "long", home=d.home, remotes={"origin": long_url})
    make_repo(d.dev_root / "short", home=d.home, remotes={"origin": "https://example.com/s.git"})
    d.start()
    summary = scan(d)
    assert summary["errors"] == [] and summary["found"] == 2
    long = d.call("projects.get", {"project": "long"})
    assert long["repository_url"] is None
    assert long["remotes"][0]["url"].startswith("https://example.com/aaa")  # listed as it is
    assert d.call("projects.get", {"project": "short"})["repository_url"] == (
        "https://example.com/s"
    )
    too_long = d.call_error("projects.update", {"project": "short", "repository_url": long_url})
    assert too_long.kind == "invalid_params" and too_long.data["field"] == "repository_url"


def test_a_moved_project_is_assessed_again_at_its_new_path(make_daemon: DaemonFactory) -> None:
    """The runtime reads where a project is now from the typed `projects.moved` event (no
    guessing between `to` and `path`): the deferred assessment is for the new folder, and its
    job names the project."""
    d = make_daemon(config={"watch": False, "rescan_interval_s": 0, "quality_settle_s": 0.1})
    make_repo(d.dev_root / "huey", home=d.home, files={"main.py": "print('hi')\n"})
    d.start()

    def quality_jobs(trigger: str) -> list[dict[str, Any]]:
        jobs = d.call("jobs.list", {"kind": "quality_scan", "limit": 100})["items"]
        return [j for j in jobs if j["metadata"].get("trigger") == trigger]

    def first_done() -> bool:
        return any(j["status"] == "completed" for j in quality_jobs("manual"))

    wait_for(first_done, 20, "the first assessment, after start-up")
    huey = d.call("projects.get", {"project": "huey"})
    os.rename(d.dev_root / "huey", d.dev_root / "huey-moved")
    assert scan(d)["moved"] == 1
    [deferred] = wait_for(lambda: quality_jobs("deferred"), 20, "the deferred assessment")
    assert deferred["metadata"]["args"] == {"project": str(d.dev_root / "huey-moved")}
    assert deferred["project_id"] == huey["id"]


def test_a_reset_field_no_scan_infers_goes_back_to_the_rows_default(world: DaemonProcess) -> None:
    """`reset` hands a field back to inference; one no scan infers (deployed_url, Nexus' mode
    and settings) has nothing to come back from, so it returns to the row's default rather
    than keeping the value while no longer counting as set by hand."""
    world.start()
    scan(world)
    world.call(
        "projects.update",
        {"project": "alpha", "deployed_url": "https://alpha.example", "mode": "genesis",
         "settings": {"a": 1}, "description": "Mine"},
    )  # fmt: skip
    back = world.call(
        "projects.update",
        {"project": "alpha", "reset": ["deployed_url", "mode", "settings", "description"]},
    )
    assert (back["deployed_url"], back["mode"], back["settings"]) == (None, None, {})
    assert back["description"] is None and back["user_set"] == []  # alpha has no README text
