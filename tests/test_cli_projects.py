"""`pm projects`, `pm project`, `pm scan` as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from client.output import relative_time
from tests.conftest import DaemonFactory
from tests.gitrepos import make_repo
from tests.test_cli import PM, Cli


@pytest.fixture
def cli(make_daemon: DaemonFactory) -> Cli:
    world = make_daemon(config={"watch": False, "rescan_interval_s": 0})
    make_repo(
        world.dev_root / "alpha",
        home=world.home,
        files={"README.md": "# Alpha\n\nThe first project.\n"},
    )
    make_repo(world.dev_root / "grp" / "beta", home=world.home)
    old = world.dev_root / "grp" / "beta"
    stamp = time.time() - 3 * 86400
    for sub in ("", ".git", ".git/logs", ".git/logs/HEAD"):
        os.utime(old / sub, (stamp, stamp))
    world.start()
    c = Cli(world)
    c.ok("scan")
    return c


def test_projects_table_and_json(cli: Cli) -> None:
    lines = cli.ok("projects").splitlines()
    headers = lines[0].split()
    assert headers[:5] == ["NAME", "STATUS", "LAST", "WORKED", "ON"] and headers[-1] == "PATH"
    assert headers[5:-1] in ([], ["QUALITY"])  # the column shows once scores are known
    assert any(line.startswith("alpha") and "active" in line for line in lines)
    page = json.loads(cli.ok("--json", "projects"))
    assert page["total"] == 2 and {p["name"] for p in page["items"]} == {"alpha", "beta"}
    assert cli.ok("projects", "-q", "first").splitlines()[1].startswith("alpha")
    assert len(cli.ok("projects", "--status", "archived").splitlines()) == 1  # header only


def test_missing_projects_show_with_all(cli: Cli) -> None:
    shutil.rmtree(cli.world.dev_root / "alpha")
    assert "missing 1" in cli.ok("scan")
    assert "alpha" not in cli.ok("projects")
    shown = [line for line in cli.ok("projects", "--all").splitlines() if line.startswith("alpha")]
    assert shown and "(missing)" in shown[0]


def test_project_details_by_name_path_and_here(cli: Cli) -> None:
    text = cli.ok("project", "alpha")
    assert "The first project." in text and "status          active" in text
    cli.ok("call", "projects.update", json.dumps({"project": "alpha", "status": "on-hold"}))
    assert "on-hold  (set by you)" in cli.ok("project", "alpha")
    here = subprocess.run(
        [PM, "--json", "project", "."],
        cwd=cli.world.dev_root / "grp" / "beta",
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert here.returncode == 0, here.stderr
    assert json.loads(here.stdout)["name"] == "beta"
    missing = cli.run("project", "nothing-here")
    assert missing.returncode == 1 and "no project named 'nothing-here'" in missing.stderr


def test_scan_prints_a_summary(cli: Cli) -> None:
    line = cli.ok("scan").strip()
    assert line.startswith("found 2 · new 0") and "errors 0" in line
    summary = json.loads(cli.ok("--json", "scan", "beta"))
    assert summary["found"] == 1 and summary["unchanged"] == 1
    make_repo(cli.world.dev_root / "gamma", home=cli.world.home)
    assert "new 1" in cli.ok("scan")


@pytest.mark.parametrize(
    ("ago", "text"),
    [
        (5, "just now"),
        (120, "2 minutes ago"),
        (3 * 3600, "3 hours ago"),
        (86400 + 60, "yesterday"),
        (3 * 86400, "3 days ago"),
        (15 * 86400, "2 weeks ago"),
        (70 * 86400, "2 months ago"),
        (800 * 86400, "2 years ago"),
    ],
)
def test_relative_time(ago: float, text: str) -> None:
    now = 2_000_000_000.0
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(now - ago, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert relative_time(stamp, now) == text
    assert relative_time(None) == "never"
