"""Global flags anywhere, errors a script can read, and the small things a daily user trips on:
`pm --version`, `pm call METHOD null`, `pm kv set NS K -`, `pm kv get --raw`, exit 75 while
the daemon shuts down."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess

import pytest

from client.version import __version__
from tests.conftest import DaemonFactory
from tests.helpers import wait_for
from tests.test_cli import PM, Cli
from tests.test_cli_events import QUIET, quiet_cli


@pytest.fixture
def running(make_daemon: DaemonFactory) -> Cli:
    return quiet_cli(make_daemon)


def last_json_line(stderr: str) -> dict[str, object]:
    report: dict[str, object] = json.loads(stderr.strip().splitlines()[-1])
    return report


def test_global_flags_work_before_or_after_the_command_at_any_depth(running: Cli) -> None:
    running.ok("kv", "set", "g", "k", "1")
    socket = running.world.socket_path
    for args in (
        ["doctor", "--json"],
        ["projects", "--json"],
        ["backup", "list", "--json"],
        ["kv", "list", "g", "--json", "--no-spawn"],
        ["kv", "--json", "list", "g"],
        ["--json", "kv", "list", "g"],
        ["kv", "list", "--socket", socket, "g", "--json"],
        ["kv", "list", f"--socket={socket}", "--json"],
        ["status", "--json"],  # the fast path too
        ["status", "--no-spawn", "--json"],
    ):
        # With --socket the environment points nowhere: the flag must be what pm used.
        elsewhere = any(a.startswith("--socket") for a in args)
        done = running.run(
            *args, **({"PM_AGENT_SOCKET": "/tmp/pm-nowhere/x.sock"} if elsewhere else {})
        )
        assert done.returncode in (0, 1), (args, done.stderr)  # doctor may find a warning
        assert isinstance(json.loads(done.stdout), dict), args


def test_under_json_an_error_is_a_json_object_on_stderr(running: Cli) -> None:
    missing = running.run("project", "nothing-here", "--json")
    assert missing.returncode == 1 and missing.stdout == ""
    report = last_json_line(missing.stderr)
    assert report["kind"] == "not_found" and report["exit_code"] == 1
    assert "nothing-here" in str(report["message"]) and report["code"] == -32001
    usage = running.run("--json", "frobnicate")
    assert usage.returncode == 2
    assert usage.stderr.count("\n") == 1  # the object alone, not argparse's usage text
    assert last_json_line(usage.stderr) | {"message": ""} == {
        "message": "",
        "kind": "usage",
        "exit_code": 2,
    }
    unset = running.run("kv", "get", "n", "unset", "--json")
    assert unset.returncode == 1 and json.loads(unset.stdout)["value"] is None
    assert last_json_line(unset.stderr)["kind"] == "not_found"
    running.world.stop()
    for args in (["--json", "--no-spawn", "status"], ["--no-spawn", "kv", "list", "--json"]):
        down = running.run(*args)
        assert down.returncode == 69, args
        assert last_json_line(down.stderr)["kind"] == "unreachable"
        assert last_json_line(down.stderr)["exit_code"] == 69


def test_version(running: Cli) -> None:
    done = running.run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"pm {__version__}"


def test_call_accepts_null_params_as_none(running: Cli) -> None:
    assert json.loads(running.ok("call", "daemon.status", "null"))["state"] == "ready"
    assert json.loads(running.ok("call", "kv.list", "[]"))["total"] == 0  # JSON-RPC's "none"
    piped = running.run("call", "daemon.status", "-", stdin="null\n")
    assert piped.returncode == 0 and json.loads(piped.stdout)["state"] == "ready"
    assert running.run("call", "kv.list", "[1]").returncode == 2


def test_kv_set_reads_stdin_and_get_raw_prints_the_text(running: Cli) -> None:
    text = 'two lines\nwith "quotes" and ü\n'
    done = running.run("kv", "set", "s", "text", "-", "--string", stdin=text)
    assert done.returncode == 0, done.stderr
    assert running.world.call("kv.get", {"namespace": "s", "key": "text"})["value"] == text[:-1]
    assert running.ok("kv", "get", "s", "text", "--raw") == text  # no quotes, no escapes
    assert json.loads(running.ok("kv", "get", "s", "text")) == text[:-1]  # JSON by default
    done = running.run("kv", "set", "s", "doc", "-", stdin='{"a": [1, 2]}\n')
    assert done.returncode == 0, done.stderr
    assert json.loads(running.ok("kv", "get", "s", "doc", "--raw")) == {"a": [1, 2]}
    bad = running.run("kv", "set", "s", "bad", "-", stdin="not json")
    assert bad.returncode == 2 and "--string" in bad.stderr


def test_shutting_down_exits_75(make_daemon: DaemonFactory) -> None:
    world = make_daemon(
        config={**QUIET, "busy_timeout_ms": 30000, "stop_timeout_s": 1, "write_batch_max": 1}
    )
    world.start()
    cli = Cli(world)
    blocker = sqlite3.connect(world.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another program holds the write lock: writes wait
    try:
        # One write taken by the writer (stuck on the lock), the others queued behind it.
        stuck = [
            subprocess.Popen(
                [PM, "--json", "kv", "set", "n", f"k{i}", "1"],
                env=cli.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(3)
        ]
        wait_for(lambda: world.call("daemon.status")["queue_depth"] >= 2, 20, "writes waiting")
        world.signal(signal.SIGTERM)  # the daemon stops: what is in flight hears shutting_down
        results = [p.communicate(timeout=30) for p in stuck]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # Every write hears shutting_down: the queued ones, and the one the writer holds (its
    # outcome unknown: the lock is still held when the daemon must stop).
    told = [p.returncode for p, (_, err) in zip(stuck, results, strict=True)
            if last_json_line(err)["kind"] == "shutting_down"]  # fmt: skip
    assert told == [75, 75, 75], results
