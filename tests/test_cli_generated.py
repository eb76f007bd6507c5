"""`pm NOUN list|show|add|update|remove`, generated from the daemon's `rpc.discover`.

The daemon here has one entity more than the shipped one, `gadgets` (tests/gadgets_daemon.py,
added as the README's recipe says): nothing in client/ names it, yet `pm gadgets …` works,
with arguments from its params' JSON Schema, and the daemon's own errors shown as they are.
What generation needs from `rpc.discover` is cached per daemon process in the XDG cache.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from client import catalogue
from client.columns import COLUMNS
from tests.conftest import DaemonFactory
from tests.gitrepos import make_repo
from tests.helpers import REPO, DaemonProcess
from tests.test_cli import PM, Cli


@pytest.fixture
def cli(make_daemon: DaemonFactory) -> Cli:
    world = make_daemon(
        config={"watch": False, "rescan_interval_s": 0},
        argv=[sys.executable, str(REPO / "tests" / "gadgets_daemon.py")],
    )
    make_repo(world.dev_root / "alpha", home=world.home)
    world.start()
    c = Cli(world)
    c.ok("scan")
    return c


def as_json(cli: Cli, *args: str, cwd: Path | None = None) -> Any:
    done = subprocess.run(
        [PM, "--json", *args], cwd=cwd, env=cli.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout)


def test_a_noun_the_client_never_heard_of_gets_its_commands(cli: Cli) -> None:
    for path in (REPO / "client").rglob("*.py"):
        assert "gadget" not in path.read_text(), path  # nothing written by hand for it
    assert "gadgets" in cli.ok("--help")
    verbs = cli.ok("gadgets", "--help")
    for verb in ("list", "show", "add", "update", "remove"):
        assert f"\n  {verb} " in verbs, verb
    add = cli.ok("gadgets", "add", "--help")
    assert "--title TITLE" in add and "what it is (required)" in add  # its description
    assert "(done, new)" in add and "--urgent" in add and "--extra JSON" in add


def test_add_list_show_update_remove(cli: Cli) -> None:
    made = as_json(cli, "gadgets", "add", "--title", "one", "--urgent", "--weight", "2.5",
                   "--tags", "a", "--tags", "b", "--extra", '{"k": [1]}',
                   "--project", "alpha")  # fmt: skip
    alpha = as_json(cli, "project", "alpha")["id"]
    assert {k: made[k] for k in ("title", "urgent", "weight", "tags", "extra", "project_id")} == {
        "title": "one", "urgent": True, "weight": 2.5, "tags": ["a", "b"], "extra": {"k": [1]},
        "project_id": alpha,
    }  # fmt: skip
    # `--project .` is the project holding the current directory
    here = as_json(cli, "gadgets", "add", "--title", "two", "--project", ".",
                   cwd=cli.world.dev_root / "alpha")  # fmt: skip
    assert here["project_id"] == alpha and here["urgent"] is False and here["state"] == "new"
    added = cli.ok("gadgets", "add", "--title", "three")  # a person sees its line of the list
    assert added.splitlines()[0].split()[:3] == ["ID", "PROJECT", "ID"]
    assert "three" in added.splitlines()[1]

    table = cli.ok("gadgets", "list").splitlines()
    assert len(table) == 4 and "TITLE" in table[0] and "STATE" in table[0]
    assert sorted(row.split()[0] for row in table[1:]) == [str(made["id"]), str(here["id"]), "3"]
    urgent = as_json(cli, "gadgets", "list", "--urgent")
    assert [g["title"] for g in urgent["items"]] == ["one"]
    paged = cli.run("gadgets", "list", "--order", "title", "--limit", "1")
    assert paged.returncode == 0 and "one" in paged.stdout
    assert "showing 1 of 3; use --offset/--limit for more" in paged.stderr
    by_project = as_json(cli, "gadgets", "list", "--project", "alpha")
    assert by_project["total"] == 2

    shown = cli.ok("gadgets", "show", str(made["id"]))
    assert any(line.split() == ["title", "one"] for line in shown.splitlines())
    assert any(line.split() == ["tags", '["a","b"]'] for line in shown.splitlines())

    changed = as_json(cli, "gadgets", "update", str(made["id"]), "--state", "done", "--no-urgent",
                      "--note", "kept")  # fmt: skip
    assert (changed["state"], changed["urgent"], changed["note"], changed["version"]) == (
        "done", False, "kept", 2,
    )  # fmt: skip
    cleared = as_json(cli, "gadgets", "update", str(made["id"]), "--no-note")
    assert cleared["note"] is None and cleared["version"] == 3
    # a field named like something of pm's own is the entity's all the same
    ran = as_json(cli, "gadgets", "update", str(made["id"]), "--command", "make all")
    assert ran["command"] == "make all"

    assert cli.ok("gadgets", "remove", str(here["id"])).strip() == f"removed gadgets {here['id']}"
    assert as_json(cli, "gadgets", "list")["total"] == 2


def test_the_daemons_errors_are_shown_as_they_are(cli: Cli) -> None:
    made = as_json(cli, "gadgets", "add", "--title", "one", "--state", "done")
    rule = cli.run("gadgets", "update", str(made["id"]), "--state", "new")
    assert rule.returncode == 1
    assert "a done gadget stays done" in rule.stderr and "[invalid_params]" in rule.stderr
    stale = cli.run("gadgets", "update", str(made["id"]), "--title", "x", "--expected-version", "7")
    assert stale.returncode == 1 and "[conflict]" in stale.stderr
    missing = cli.run("gadgets", "show", "999")
    assert missing.returncode == 1 and "[not_found]" in missing.stderr and "999" in missing.stderr
    too_long = cli.run("gadgets", "add", "--title", "x" * 81)  # the Struct's own constraint
    assert too_long.returncode == 1 and "[invalid_params]" in too_long.stderr
    nowhere = cli.run("gadgets", "add", "--title", "x", "--project", "no-such-project")
    assert nowhere.returncode == 1 and "no-such-project" in nowhere.stderr


USAGE_ERRORS = [
    (["gadgets", "add", "--title", "a", "--state", "maybe"], "invalid choice: 'maybe'"),
    (["gadgets", "add", "--title", "a", "--weight", "heavy"], "invalid number value"),
    (["gadgets", "add", "--title", "a", "--extra", "{broken"], "not JSON"),
    (["gadgets", "add", "--state", "new"], "required: --title"),
    (["gadgets", "show"], "required: ID"),
    (["gadgets", "show", "first"], "invalid int value: 'first'"),
    (["gadgets", "list", "--urgent", "--no-urgent"], "not allowed with"),
    (["gadgets", "remove", "1", "2"], "unrecognized arguments: 2"),
    (["gadgets", "frobnicate"], "unknown verb 'frobnicate'"),
    (["gizmos", "list"], "unknown command 'gizmos'"),
]


def test_arguments_follow_the_params_schema(cli: Cli) -> None:
    for args, said in USAGE_ERRORS:
        done = cli.run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert said in done.stderr and done.stdout == "", (args, done.stderr)
    assert cli.world.call("gadgets.list")["total"] == 0  # and nothing was sent


def cache_files(folder: Path) -> dict[str, Path]:
    """pm's cache files, by what they hold ("daemon", "catalogue", "noun.gadgets"…)."""
    found = {}
    for path in folder.glob("*.json"):
        named = re.search(r"-[0-9a-f]{16}\.(.+)\.json$", path.name)
        if named:
            found[named[1]] = path
    return found


def test_what_generation_needs_is_cached_for_the_daemon_process(cli: Cli, tmp_path: Path) -> None:
    cli.ok("gadgets", "list")
    files = cache_files(Path(cli.env["HOME"]) / ".cache" / "pm-agent")  # the test's HOME
    assert {"daemon", "catalogue", "noun.gadgets", "noun.jobs"} <= set(files)
    index = json.loads(files["catalogue"].read_text())
    assert "gadgets" in index["nouns"] and index["daemon"]["peer"]
    noun = files["noun.gadgets"]
    kept = json.loads(noun.read_text())
    assert kept["daemon"] == index["daemon"] and "add" in kept["entry"]["verbs"]

    def mark() -> None:  # a run that shows the mark read the cache, not rpc.discover
        again = json.loads(noun.read_text())
        again["entry"]["verbs"]["add"]["help"] = "MARKED BY THE TEST"
        noun.write_text(json.dumps(again))

    mark()
    assert "MARKED BY THE TEST" in cli.ok("gadgets", "--help")
    # The same process, but the file says another version: refreshed.
    stale = json.loads(noun.read_text())
    stale["daemon"]["daemon_version"] = "0.0.0"
    noun.write_text(json.dumps(stale))
    assert "MARKED BY THE TEST" not in cli.ok("gadgets", "--help")
    # Marked again, then a new daemon process: refreshed.
    mark()
    cli.world.stop()
    cli.world.start()
    assert "MARKED BY THE TEST" not in cli.ok("gadgets", "--help")
    # A file tampered with is read again from the daemon, neither obeyed nor a traceback.
    broken = json.loads(noun.read_text())
    broken["entry"]["verbs"] = {"list": {"method": 5, "params": "x"}}
    noun.write_text(json.dumps(broken))
    assert "TITLE" in cli.ok("gadgets", "list")
    noun.write_text("{not json")
    assert "TITLE" in cli.ok("gadgets", "list")
    # XDG_CACHE_HOME is where the cache goes when it is set.
    cli.run("gadgets", "list", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert {"daemon", "catalogue", "noun.gadgets"} <= set(
        cache_files(tmp_path / "xdg" / "pm-agent")
    )


def test_jobs_keeps_its_shortcuts_and_takes_the_generated_list_and_update(cli: Cli) -> None:
    job = cli.world.call("jobs.record", {"kind": "agent-call", "status": "running"})
    assert "agent-call" in cli.ok("jobs")  # the person's listing, written by hand
    table = cli.ok("jobs", "list", "--status", "running").splitlines()
    assert table[0].split()[:3] == ["ID", "KIND", "STATUS"] and "agent-call" in table[1]
    done = as_json(cli, "jobs", "update", str(job["id"]), "--status", "completed",
                   "--response", "ok")  # fmt: skip
    assert done["status"] == "completed" and done["response"] == "ok"
    assert "completed" in cli.ok("jobs", "show", str(job["id"]))  # written by hand
    assert cli.run("jobs", "--status", "someday").returncode == 2  # the daemon's statuses


def test_every_column_list_names_fields_its_noun_has(daemon: DaemonProcess) -> None:
    """client/columns.py against the shipped daemon: a renamed field shows as a failure here,
    not as an empty column."""
    nouns = catalogue.nouns(daemon.call("rpc.discover"))
    wrong = {
        noun: sorted({name for name, _ in chosen} - {f for f, _ in nouns[noun]["fields"]})
        if noun in nouns
        else "no such noun"
        for noun, chosen in COLUMNS.items()
    }
    assert {noun: what for noun, what in wrong.items() if what} == {}
