"""Quality end to end: real project files, a real daemon, rows with history."""

from __future__ import annotations

import json
import shutil
import sqlite3
from typing import Any

import pytest

from tests.conftest import DaemonFactory
from tests.gitrepos import git, make_repo
from tests.helpers import DaemonProcess, wait_for
from tests.test_cli import Cli

WEIGHTS = {"tests": 0.30, "ci": 0.20, "docs": 0.20, "lint": 0.20, "maintenance": 0.10}
COMPONENTS = {"tests": "tests_component", "ci": "ci_component", "docs": "docs_component",
              "lint": "lint_component", "maintenance": "maintenance_component"}  # fmt: skip


@pytest.fixture
def world(make_daemon: DaemonFactory) -> DaemonProcess:
    # Scans only when the test asks, so every figure is the test's own.
    d = make_daemon(config={"watch": False, "rescan_interval_s": 0, "schedule": {"quality": "off"}})
    make_repo(
        d.dev_root / "good",
        home=d.home,
        files={
            "README.md": "# Good\n\nA well kept project.\n\n## Install\n\npip install good\n\n"
            + "## Usage\n\n"
            + "Use it well. " * 80
            + "\n",
            "pyproject.toml": '[project]\nname = "good"\ndescription = "Good"\n\n'
            "[tool.ruff]\nline-length = 100\n\n[tool.mypy]\nstrict = true\n\n"
            "[tool.pytest.ini_options]\ntestpaths = ['tests']\n",
            "good/__init__.py": "def add(a, b):\n    return a + b\n",
            "tests/test_add.py": "from good import add\n\n\ndef test_add():\n"
            "    assert add(1, 2) == 3\n",
            ".github/workflows/ci.yml": "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n"
            "    steps:\n      - run: pytest\n      - run: ruff check .\n",
            ".pre-commit-config.yaml": "repos: []\n",
        },
    )
    make_repo(d.dev_root / "bare-bones", home=d.home, files={"main.py": "print('hi')\n"})
    d.start()
    d.call("projects.scan")
    return d


def quality(d: DaemonProcess, name: str) -> dict[str, Any]:
    latest: dict[str, Any] = d.call("quality.get", {"project": name})["latest"]
    return latest


def test_score_is_the_weighted_mean_of_measurable_components(world: DaemonProcess) -> None:
    summary = world.call("quality.scan")
    assert summary["assessed"] == 2 and summary["errors"] == []
    good, poor = quality(world, "good"), quality(world, "bare-bones")
    for row in (good, poor):
        parts = {k: row[c] for k, c in COMPONENTS.items() if row[c] is not None}
        mean = sum(WEIGHTS[k] * v for k, v in parts.items()) / sum(WEIGHTS[k] for k in parts)
        assert row["quality_score"] == int(mean + 0.5)  # rounded half up
        assert row["metrics_version"] >= 1
    assert good["quality_score"] > poor["quality_score"]
    assert good["has_tests"] and good["has_ci_cd"] and good["has_documentation"]
    assert "github-actions" in " ".join(good["detected"]["ci"]).lower() or good["detected"]["ci"]
    assert not poor["has_tests"] and not poor["has_ci_cd"]
    assert any("LICENSE" in g["hint"] or "license" in g["hint"].lower() for g in good["gains"])
    rows = world.call("projects.list", {"order": "quality"})["items"]
    assert [p["name"] for p in rows] == ["good", "bare-bones"]
    assert rows[0]["quality_score"] == good["quality_score"]


def test_unchanged_projects_are_skipped_and_a_change_is_seen(world: DaemonProcess) -> None:
    world.call("quality.scan")
    again = world.call("quality.scan")
    assert again["unchanged"] == 2 and again["assessed"] == 0
    assert world.call("quality.history", {"project": "good"})["total"] == 1
    before = quality(world, "good")
    (world.dev_root / "good" / "LICENSE").write_text("MIT License\n")
    summary = world.call("quality.scan", {"project": "good"})
    assert summary["assessed"] == 1
    after = quality(world, "good")
    assert after["docs_component"] > before["docs_component"]
    history = world.call("quality.history", {"project": "good"})
    assert history["total"] == 2 and history["items"][0]["id"] == after["id"]
    events = world.call("events.list", {"topics": ["quality"]})["items"]
    assert events[-1]["type"] == "quality.created"
    assert events[-1]["data"] == after  # the new row, whole
    assert after["previous_score"] == before["quality_score"]
    assert after["uid"] != before["uid"] and after["version"] == 1  # a row of its own
    assert history["items"][1]["previous_score"] is None  # the first assessment


def test_time_alone_moves_maintenance_without_reading_files(world: DaemonProcess) -> None:
    world.call("quality.scan")
    first = quality(world, "good")
    assert first["maintenance_component"] == 100
    world.stop()
    conn = sqlite3.connect(world.db_path)
    conn.execute(
        "UPDATE projects SET last_worked_on = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', "
        "'-200 days') WHERE name = 'good'"
    )
    conn.commit()
    conn.close()
    world.start()
    summary = world.call("quality.scan")
    assert summary["refreshed"] >= 1
    later = quality(world, "good")
    assert 0 < later["maintenance_component"] < 100
    assert later["docs_component"] == first["docs_component"]
    assert later["quality_score"] < first["quality_score"]


def test_pm_quality_ranks_and_explains(world: DaemonProcess) -> None:
    cli = Cli(world)
    cli.ok("call", "quality.scan")
    table = cli.ok("quality").splitlines()
    assert table[0].split() == ["NAME", "SCORE", "WEEK", "ASSESSED"]
    assert table[1].startswith("good")
    (world.dev_root / "bare-bones" / "README.md").write_text("# Bare\n\nNow with words.\n")
    git(world.dev_root / "bare-bones", "add", "README.md", home=world.home)
    cli.ok("call", "quality.scan")
    text = cli.ok("quality", "bare-bones")
    for needle in (
        "quality",
        "T tests",
        "C ci",
        "D docs",
        "L lint",
        "M maintenance",
        "to gain points",
        "history",
    ):
        assert needle in text, needle
    data = json.loads(cli.ok("--json", "quality", "good"))
    assert data["latest"]["quality_score"] == quality(world, "good")["quality_score"]
    assert data["history"]


def test_a_change_on_disk_is_assessed_again_by_itself(make_daemon: DaemonFactory) -> None:
    import asyncio

    from client.aio import AsyncClient

    d = make_daemon(config={"settle_ms": 30, "quality_settle_s": 0.3, "rescan_interval_s": 0})
    make_repo(d.dev_root / "proj", home=d.home, files={"main.py": "print('hi')\n"})
    d.start()

    async def scenario() -> None:
        client = await AsyncClient.connect(d.socket_path)
        await client.call("events.subscribe", {"topics": ["quality"], "since": 0})
        # The first assessment runs by itself after start-up (replayed if it came first)…
        first = await client.next_notification(20)
        assert first["params"]["event"]["type"] == "quality.created"
        # …and a file that only quality cares about brings a new one, once things settle.
        (d.dev_root / "proj" / "LICENSE").write_text("MIT\n")
        second = await client.next_notification(20)
        data = second["params"]["event"]["data"]
        assert data["previous_score"] == first["params"]["event"]["data"]["quality_score"]
        assert data["quality_score"] > data["previous_score"]
        await client.close()

    asyncio.run(scenario())

    def finished() -> list[dict[str, Any]] | None:
        jobs: list[dict[str, Any]] = d.call("jobs.list", {"kind": "quality_scan"})["items"]
        return jobs if all(j["status"] not in ("queued", "running") for j in jobs) else None

    jobs = wait_for(finished, 20, "the quality jobs to finish")
    assert len(jobs) >= 2 and all(j["status"] == "completed" for j in jobs)
    assert all(j["source"] == "daemon" for j in jobs)


def test_na_and_failed_assessments_rank_last_and_say_why(make_daemon: DaemonFactory) -> None:
    """A README alone is n/a (no code to assess), a project deleted before its assessment is
    a failed assessment (error, no score): neither ranks above a scored project, and `pm
    quality` says n/a and why. Before: the README scored 50 and the deleted project 100, both
    from recent activity, above the project with code."""
    d = make_daemon(config={"watch": False, "rescan_interval_s": 0, "schedule": {"quality": "off"}})
    make_repo(d.dev_root / "notes", home=d.home, files={"README.md": "# Notes\n\nIdeas.\n"})
    make_repo(d.dev_root / "tool", home=d.home, files={"tool.py": "print('hi')\n"})
    make_repo(d.dev_root / "gone", home=d.home, files={"gone.py": "", "README.md": "# Gone\n"})
    d.start()
    d.call("projects.scan")
    shutil.rmtree(d.dev_root / "gone")  # no rescan: still known as present
    summary = d.call("quality.scan")
    assert [e["path"] for e in summary["errors"]] == [str(d.dev_root / "gone")]
    notes, tool, gone = (quality(d, name) for name in ("notes", "tool", "gone"))
    assert notes["quality_score"] is None and notes["error"] is None
    no_code = "no code to assess: no source, test or build files found"
    assert notes["detected"]["unscored"] == no_code
    assert notes["docs_component"] == 30  # still measured and shown: README, description
    assert gone["quality_score"] is None and gone["error"] == "project: No such file or directory"
    assert gone["maintenance_component"] is None  # failed: nothing measured
    assert tool["quality_score"] is not None and tool["error"] is None
    ranked = [p["name"] for p in d.call("quality.list")["items"]]
    assert ranked[0] == "tool" and set(ranked[1:]) == {"notes", "gone"}
    by_quality = [p["name"] for p in d.call("projects.list", {"order": "quality"})["items"]]
    assert by_quality[0] == "tool"
    # the same failure again is nothing new: no row per scan while nothing changes
    assert d.call("quality.scan")["unchanged"] == 3
    assert d.call("quality.history", {"project": "gone"})["total"] == 1

    cli = Cli(d)
    rows = {line.split()[0]: line.split()[1] for line in cli.ok("quality").splitlines()[1:]}
    assert rows == {"tool": str(tool["quality_score"]), "notes": "n/a", "gone": "n/a"}
    shown = cli.ok("quality", "notes")
    assert f"quality n/a ({no_code})" in shown
    assert "quality n/a (the assessment failed: project: No such file or directory)" in (
        cli.ok("quality", "gone")
    )


def test_per_project_quality_jobs_show_their_project(make_daemon: DaemonFactory) -> None:
    """A deferred one-project assessment (a file changed) and a requested one record the
    project in the job's project_id, so `pm jobs` shows whose run it is; a full scan names
    none (issue 13 §7)."""
    d = make_daemon(config={"settle_ms": 30, "quality_settle_s": 0.2, "rescan_interval_s": 0})
    make_repo(d.dev_root / "proj", home=d.home, files={"main.py": "print('hi')\n"})
    d.start()

    def quality_jobs() -> list[dict[str, Any]]:
        return list(d.call("jobs.list", {"kind": "quality_scan"})["items"])

    def settled(count: int) -> list[dict[str, Any]] | None:
        jobs = quality_jobs()
        done = len(jobs) >= count and all(j["status"] == "completed" for j in jobs)
        return jobs if done else None

    first = wait_for(lambda: settled(1), 20, "the first, full quality scan")
    assert [j["project_id"] for j in first] == [None]  # every project: none in particular
    project = d.call("projects.get", {"project": "proj"})
    (d.dev_root / "proj" / "LICENSE").write_text("MIT\n")  # only quality reads it
    jobs = wait_for(lambda: settled(2), 20, "the deferred one-project scan")
    deferred = jobs[0]
    assert deferred["metadata"]["trigger"] == "deferred"
    assert deferred["project_id"] == project["id"]
    requested = d.call("jobs.run", {"kind": "quality_scan", "args": {"project": project["path"]}})
    assert d.call("jobs.get", {"id": requested["id"]})["project_id"] == project["id"]

    table = Cli(d).ok("jobs", "--kind", "quality_scan").splitlines()
    assert table[0].split() == ["ID", "KIND", "PROJECT", "STATUS", "STARTED", "DURATION", "ERROR"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[str(deferred["id"])][2] == "proj"
