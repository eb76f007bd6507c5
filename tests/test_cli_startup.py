"""Every class of `pm` command starts as `pm status` does: without the modules that cost
milliseconds of start-up (argparse, json, typing, datetime, subprocess, socket, msgspec, asyncio,
the daemon's code), and ends without the interpreter's teardown (client.cli: os._exit once the
output is flushed). Shell prompts and agents' hooks run `pm` on every turn; bench/cli.py has
the timings, this holds the causes — and that nothing is lost by ending so."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import DaemonFactory
from tests.gitrepos import make_repo
from tests.helpers import REPO
from tests.test_cli import PM, Cli

HEAVY = ("argparse", "json", "typing", "datetime", "subprocess", "socket", "msgspec", "asyncio",
         "structlog", "daemon", "dataclasses", "inspect", "tomllib", "gettext")  # fmt: skip

COMMANDS = [
    ["status"],
    ["kv", "get", "n", "k"],
    ["kv", "set", "n", "k2", '{"a": [1, 2]}'],
    ["kv", "list", "n"],
    ["gadgets", "list"],  # generated from rpc.discover
    ["gadgets", "show", "1"],
    ["gadgets", "add", "--title", "two", "--tags", "x"],
    ["jobs", "list"],
    ["projects"],
    ["project", "alpha"],
    ["__complete", "--", "project", ""],
    ["__complete", "--", "gadgets", "l"],
]


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
    c.ok("kv", "set", "n", "k", "1")
    c.ok("gadgets", "add", "--title", "one")  # the catalogue is cached from here on
    return c


def imports(cli: Cli, args: list[str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", PM, *args],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (args, done.stderr[-2000:])
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}


def test_no_command_pays_for_heavy_imports(cli: Cli) -> None:
    found = {}
    for args in COMMANDS:
        loaded = imports(cli, args)
        heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
        if heavy:
            found[" ".join(args)] = heavy
    assert found == {}


def test_a_command_loads_only_its_own_module(cli: Cli) -> None:
    loaded = imports(cli, ["kv", "get", "n", "k"])
    others = {"client.db_cli", "client.doctor", "client.projects_cli", "client.jobs_cli",
              "client.events_cli", "client.generated", "client.catalogue", "client.upgrade",
              "client.spawn", "client.door", "client.completion"}  # fmt: skip
    assert "client.kv_cli" in loaded and loaded & others == set()


def test_ending_without_teardown_loses_no_output(cli: Cli) -> None:
    with cli.world.client() as c:
        for i in range(1500):
            c.call("kv.set", {"namespace": "big", "key": f"k{i:04d}", "value": "v" * 200})
    done = subprocess.run([PM, "--json", "kv", "list", "big", "--limit", "10000"], env=cli.env,
                          capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and len(done.stdout) > 300_000
    assert len(json.loads(done.stdout)["items"]) == 1500  # all of it, though pm ends abruptly
    # A reader that goes away early ends the command quietly, with its own exit code.
    piped = subprocess.run(["bash", "-c", f"'{PM}' kv list big --limit 10000 | head -1; "
                            "echo \"pm exited ${PIPESTATUS[0]}\" >&2"],
                           env=cli.env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert piped.stdout.startswith("NAMESPACE") and piped.stderr == "pm exited 0\n"
    missing = cli.run("kv", "get", "big", "nothing")
    assert missing.returncode == 1 and "big/nothing is not set" in missing.stderr
