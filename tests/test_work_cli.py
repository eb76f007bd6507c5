"""`pm todo`, `pm ready`, `pm next`, `pm task`, `pm plan`, `pm session`, `pm feature`, `pm req`
as a person and a script run them: in a project's folder, text for people, `--json` for
scripts, errors on stderr with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DaemonProcess
from tests.test_cli import PM
from tests.work_helpers import start_daemon


class Shell:
    """`pm` typed in a shell standing in a project's folder."""

    def __init__(self, daemon: DaemonProcess, folder: Path) -> None:
        self.daemon = daemon
        self.folder = folder
        self.env = {**daemon.env, "PWD": str(folder), "PM_AGENT": "ann"}
        self.env.pop("PM_AGENT_LOG_FILE")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PM, *args], cwd=self.folder, env=self.env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args))


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    daemon = start_daemon(tmp_path_factory.mktemp("cli"))
    folder = daemon.dev_root / "shop"
    (folder / "src").mkdir(parents=True)
    with daemon.client() as rpc:
        rpc.call("projects.register", {"path": str(folder)})
    yield Shell(daemon, folder / "src")  # from a subfolder: the project holding it
    daemon.stop()
    daemon.cleanup()


def test_todos_in_the_project_here(shell: Shell) -> None:
    added = shell.json("todo", "add", "buy milk", "--priority", "2", "--active-form",
                       "Buying milk")  # fmt: skip
    assert added["title"] == "buy milk" and added["priority"] == 2 and added["plan_id"] is None
    shell.ok("todo", "add", "call bob")
    listed = shell.ok("todo", "list")
    assert listed.index("buy milk") < listed.index("call bob") and "○" in listed
    assert "▶" in shell.ok("todo", "start", str(added["id"]))
    done = shell.json("todo", "done", str(added["id"]))
    assert done["completed"]["completed_by"] == "ann"  # PM_AGENT
    assert "buy milk" not in shell.ok("todo", "list")
    assert "buy milk" in shell.ok("todo", "list", "--all")


def test_a_plan_from_new_to_tree_to_next_and_done(shell: Shell) -> None:
    plan = shell.json("plan", "new", "Launch", "--phase", "build", "--phase", "ship")
    build, ship = (p["id"] for p in plan["phases"])
    a = shell.json("task", "add", "--phase", str(build), "--title", "write code")["id"]
    b = shell.json("task", "add", "--phase", str(ship), "--title", "deploy")["id"]
    shell.ok("task", "block", str(b), "--on", f"task:{a}")
    tree = shell.ok("plan", "show", str(plan["id"]))
    assert f"plan {plan['id']}: Launch  [active]" in tree
    assert f"○ {a} write code" in tree and f"○ {b} deploy  (waiting)" in tree
    assert f"waits for {a} (write code)" in tree
    assert "├─" in tree and "└─" in tree
    assert f"{a}" in shell.ok("next")  # the active plan here
    claimed = shell.json("task", "claim", "--plan", str(plan["id"]))
    assert claimed["task"]["id"] == a and claimed["task"]["claimed_by"] == "ann"
    done = shell.json("task", "done", str(a), "--next")
    assert [t["id"] for t in done["unblocked"]] == [b] and done["next"]["id"] == b
    assert f"✓ {a} write code" in shell.ok("plan", "show", str(plan["id"]))
    assert "Launch" in shell.ok("plan", "list")


def test_ready_lists_work_best_first_and_scripts_get_json(shell: Shell) -> None:
    shell.ok("todo", "add", "low", "--priority", "9")
    shell.ok("todo", "add", "high", "--priority", "1")
    text = shell.ok("ready", "--project", ".")
    assert text.index("high") < text.index("low") and "urgency" in text
    page = shell.json("ready", "--limit", "1")
    assert page["items"][0]["priority"] == 1 and page["total"] >= 2


def test_export_then_new_from_the_file(shell: Shell, tmp_path: Path) -> None:
    plan = shell.json("plan", "new", "Template", "--phase", "one")
    shell.ok("task", "add", "--phase", str(plan["phases"][0]["id"]), "--title", "step")
    path = tmp_path / "template.json"
    shell.ok("plan", "export", str(plan["id"]), "-o", str(path))
    again = shell.run("plan", "export", str(plan["id"]), "-o", str(path))
    assert again.returncode == 1 and "exists" in again.stderr  # never over a file
    made = shell.json("plan", "new", "--from", str(path))
    assert made["id"] != plan["id"] and made["title"] == "Template"
    assert [t["title"] for t in made["phases"][0]["tasks"]] == ["step"]
    path.write_text('{"title": "x", "phases": [{"title": "p", "tasks": [{"title": ""}]}]}')
    bad = shell.run("plan", "new", "--from", str(path))
    assert bad.returncode == 1 and "document.phases[0].tasks[0].title" in bad.stderr
    path.write_text("not json")
    worse = shell.run("plan", "new", "--from", str(path))
    assert worse.returncode == 1 and "not a JSON plan file" in worse.stderr


def test_archive_and_unarchive_from_the_command_line(shell: Shell) -> None:
    plan = shell.json("plan", "new", "Old")
    assert "archived" in shell.ok("plan", "archive", str(plan["id"]))
    assert "Old" not in shell.ok("plan", "list")
    assert "Old" in shell.ok("plan", "list", "--archived")
    again = shell.run("plan", "archive", str(plan["id"]))
    assert again.returncode == 1 and "invalid_state" in again.stderr
    assert "back" in shell.ok("plan", "unarchive", str(plan["id"]))


def test_sessions_features_and_requirements(shell: Shell) -> None:
    started = shell.json("session", "start", "--goal", "ship", "--goal", "test")
    assert started["goals"] == ["ship", "test"] and started["kind"] == "development"
    ended = shell.json("session", "end", str(started["id"]), "--done", "shipped", "--blocker",
                       "none", "--tokens", "99", "--summary", "good")  # fmt: skip
    assert ended["accomplishments"] == ["shipped"] and ended["tokens_used"] == 99
    assert str(started["id"]) in shell.ok("session", "list")
    feature = shell.json("feature", "add", "--project", ".", "--name", "checkout",
                         "--priority", "must")  # fmt: skip
    assert feature["priority"] == "must"
    assert "checkout" in shell.ok("feature", "list", "--project", ".")
    linked = str(feature["id"])
    req = shell.json("req", "add", "--project", ".", "--category", "functional",
                     "--description", "pay by card", "--linked-features", linked)  # fmt: skip
    assert req["linked_features"] == [feature["id"]]
    wrong = shell.run("feature", "add", "--project", ".", "--name", "x", "--priority", "maybe")
    assert wrong.returncode != 0 and "maybe" in wrong.stderr
