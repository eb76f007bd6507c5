"""`pm projects`, `pm project`, `pm scan` as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

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


def run_in(cli: Cli, folder: Path, *args: str, pwd: Path | None = None) -> Any:
    """`pm ARGS` typed in a shell standing in `folder` ($PWD as the shell keeps it)."""
    return subprocess.run(
        [PM, *args],
        cwd=folder,
        env={**cli.env, "PWD": str(pwd or folder)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_command_finds_the_project_holding_the_current_directory(cli: Cli) -> None:
    deep = cli.world.dev_root / "alpha" / "src" / "alpha"
    deep.mkdir(parents=True)  # like uvicorn/uvicorn: a folder named as its project, inside it
    for args in (["project"], ["project", "."], ["project", "show", "."], ["project", ".."]):
        done = run_in(cli, deep, "--json", *args)
        assert done.returncode == 0, (args, done.stderr)
        assert json.loads(done.stdout)["name"] == "alpha", args
    scanned = json.loads(run_in(cli, deep, "--json", "scan", ".").stdout)
    assert scanned["found"] == 1 and scanned["unchanged"] == 1  # alpha, not an empty folder
    quality = run_in(cli, deep, "--json", "quality", ".")
    assert quality.returncode == 0, quality.stderr
    assert json.loads(quality.stdout)["project"]["name"] == "alpha"
    assessed = json.loads(run_in(cli, deep, "--json", "quality", "scan", ".").stdout)
    assert assessed["projects"] == 1
    marked = run_in(cli, deep, "--json", "project", "set", "--status", "on-hold")
    assert marked.returncode == 0, marked.stderr
    assert json.loads(marked.stdout)["status"] == "on-hold"
    # A folder no project holds: a clear error, and `pm scan .` reads it for new projects.
    outside = run_in(cli, cli.world.dev_root, "project", ".")
    assert outside.returncode == 1 and "no project holds" in outside.stderr
    assert "pm project register" in outside.stderr
    make_repo(cli.world.dev_root / "grp" / "gamma", home=cli.world.home)
    found = json.loads(run_in(cli, cli.world.dev_root / "grp", "--json", "scan", ".").stdout)
    assert found["new"] == 1


def test_the_current_project_is_found_through_links(make_daemon: DaemonFactory) -> None:
    world = make_daemon(config={"watch": False, "rescan_interval_s": 0})
    real_root = world.root / "real-dev"
    make_repo(real_root / "omega", home=world.home)
    (real_root / "omega" / "lib").mkdir()
    world.dev_root.symlink_to(real_root)  # the Dev root is a link: projects keep its path
    world.start()
    cli = Cli(world)
    cli.ok("scan")
    stored = json.loads(cli.ok("--json", "project", "omega"))["path"]
    assert stored == str(world.dev_root / "omega")
    physical = real_root / "omega" / "lib"
    for pwd in (physical, world.dev_root / "omega" / "lib"):  # cd'd in either way
        done = run_in(cli, physical, "--json", "project", pwd=pwd)
        assert done.returncode == 0, (pwd, done.stderr)
        assert json.loads(done.stdout)["path"] == stored


def test_project_set_register_forget(cli: Cli) -> None:
    # Its flags are the fields `projects.update` takes, as the daemon describes them.
    update = next(m for m in cli.world.call("rpc.discover")["methods"]
                  if m["name"] == "projects.update")  # fmt: skip
    params = {p["name"] for p in update["params"]}
    assert {"project", "reset", "name", "status", "deployed_url"} <= params
    shown = cli.ok("project", "set", "--help")
    assert [f for f in params - {"project"} if f"--{f.replace('_', '-')} " not in shown] == []
    done = cli.run(
        "project", "set", "alpha", "--status", "archived", "--description", "kept for later",
        "--origin-type", "forked", "--ownership", "exploring", "--name", "alpha2",
        "--repository-url", "https://example.com/a.git", "--deployed-url", "https://a.example",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "archived  (set by you)" in done.stdout and "kept for later" in done.stdout
    row = json.loads(cli.ok("--json", "project", "alpha2"))
    assert {k: row[k] for k in ("status", "origin_type", "ownership", "deployed_url")} == {
        "status": "archived", "origin_type": "forked", "ownership": "exploring",
        "deployed_url": "https://a.example",
    }  # fmt: skip
    assert set(row["user_set"]) == {"status", "description", "origin_type", "ownership", "name",
                                    "repository_url", "deployed_url"}  # fmt: skip
    back = json.loads(cli.ok("--json", "project", "set", "alpha2", "--reset", "name",
                             "--reset", "description", "--reset", "origin-type"))  # fmt: skip
    assert back["name"] == "alpha" and back["description"] == "The first project."
    assert set(back["user_set"]) == {"status", "ownership", "repository_url", "deployed_url"}
    nothing = cli.run("project", "set", "alpha")
    assert nothing.returncode == 2 and "--status" in nothing.stderr
    wrong = cli.run("project", "set", "alpha", "--status", "paused")
    # the choices are the daemon's own (rpc.discover), checked before anything is sent
    assert wrong.returncode == 2 and "'paused'" in wrong.stderr and "'on-hold'" in wrong.stderr

    elsewhere = cli.world.root / "elsewhere" / "side"
    make_repo(elsewhere, home=cli.world.home)
    registered = json.loads(cli.ok("--json", "project", "register", str(elsewhere)))
    assert registered["path"] == str(elsewhere) and registered["source"] == "registered"
    assert json.loads(run_in(cli, elsewhere, "--json", "project").stdout)["name"] == "side"
    gone = cli.run("project", "forget", "side")
    assert gone.returncode == 0, gone.stderr
    assert "forgot side" in gone.stdout and "untouched" in gone.stdout
    assert elsewhere.is_dir()  # never from disk
    assert cli.run("project", "side").returncode == 1
    ignored = json.loads(cli.ok("--json", "project", "forget", "beta"))
    assert ignored["ignored"] is True  # still under the Dev root: scans pass it by
    cli.ok("scan")
    assert "beta" not in cli.ok("projects")
    cli.ok("project", "register", str(cli.world.dev_root / "grp" / "beta"))
    assert "beta" in cli.ok("projects")
    assert cli.run("project", "forget").returncode == 2  # forgetting needs a project named


def test_quality_scan_assesses_now(cli: Cli) -> None:
    line = cli.ok("quality", "scan").strip()
    assert line.startswith("projects 2 · assessed") and "errors 0" in line
    one = json.loads(cli.ok("--json", "quality", "scan", "alpha"))
    assert one["projects"] == 1 and one["errors"] == []
    assert cli.run("quality", "scan", "nothing-here").returncode == 1
    assert "alpha" in cli.ok("quality", "alpha")  # `pm quality NAME` is as it was


HOSTILE = "\x1b]0;owned\x07Fine \x1b[31mred\x1b[0m \x9b2J \u202eevil\u202c \x7f end"


def test_text_from_repositories_is_shown_not_obeyed(cli: Cli) -> None:
    dev = cli.world.dev_root
    manifest = json.dumps({"name": "loud", "description": HOSTILE})
    make_repo(dev / "loud", home=cli.world.home, files={"package.json": manifest})
    make_repo(dev / "two\nlines", home=cli.world.home)
    cli.ok("scan")
    shown = cli.ok("project", "loud")
    line = next(x for x in shown.splitlines() if x.startswith("description"))
    assert line.split(None, 1)[1] == (
        "\\x1b]0;owned\\x07Fine \\x1b[31mred\\x1b[0m \\x9b2J \\u202eevil\\u202c \\x7f end"
    )
    assert json.loads(cli.ok("--json", "project", "loud"))["description"] == HOSTILE  # exact
    table = cli.ok("projects").splitlines()
    assert len(table) == 1 + 4  # header, alpha, beta, loud, and "two\nlines" on ONE line
    assert any(row.startswith("two\\nlines ") for row in table)
    cli.ok("kv", "set", "t", "k", "--string", HOSTILE)
    recorded = {"kind": HOSTILE, "status": "failed", "error": HOSTILE, "response": HOSTILE,
                "metadata": {"m": HOSTILE}}  # fmt: skip
    job = cli.world.call("jobs.record", recorded)
    for args in (["projects"], ["project", "loud"], ["events", "--limit", "100"],
                 ["kv", "list"], ["kv", "get", "t", "k"], ["--json", "project", "loud"],
                 ["--json", "events"], ["jobs"], ["jobs", "show", str(job["id"])]):  # fmt: skip
        out = cli.ok(*args)
        unsafe = [c for c in out if c != "\n" and not c.isprintable() and c != "\u200d"]
        assert unsafe == [], (args, unsafe)


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
