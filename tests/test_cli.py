"""The `pm` command line, run as a user runs it: a subprocess with its own environment."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess, wait_for

PM = str(Path(sys.executable).parent / "pm")


class Cli:
    def __init__(self, world: DaemonProcess) -> None:
        self.world = world
        self.env = dict(world.env)
        self.env.pop("PM_AGENT_LOG_FILE")  # a spawned daemon logs to the state dir, as for users

    def run(
        self, *args: str, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PM, *args],
            env={**self.env, **env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop_spawned(self) -> None:
        status = self.world.status()
        if status is not None:
            os.kill(status["pid"], signal.SIGTERM)
            wait_for(lambda: self.world.status() is None, 30, "the daemon to stop")


@pytest.fixture
def cli(make_daemon: DaemonFactory) -> Iterator[Cli]:
    c = Cli(make_daemon())
    yield c
    c.stop_spawned()


@pytest.fixture
def running(cli: Cli) -> Cli:
    cli.world.start()
    return cli


def test_status_starts_the_daemon_and_says_so(cli: Cli) -> None:
    done = cli.run("status")
    assert done.returncode == 0, done.stderr
    assert "pm: started pm-agentd (pid" in done.stderr
    assert "ready" in done.stdout and cli.world.socket_path in done.stdout
    again = cli.run("status")
    assert again.returncode == 0 and again.stderr == ""  # already running: nothing said
    log = Path(cli.world.home) / ".local" / "state" / "pm-agent" / "pm-agentd.log"
    assert '"event": "ready"' in log.read_text()


def test_no_spawn_means_unreachable(cli: Cli) -> None:
    done = cli.run("--no-spawn", "status")
    assert done.returncode == 69
    assert done.stdout == ""
    assert "nothing answers on" in done.stderr
    assert cli.run("--no-spawn", "kv", "get", "a", "b").returncode == 69
    assert cli.world.status() is None


def test_concurrent_clients_start_one_daemon(cli: Cli) -> None:
    procs = [
        subprocess.Popen(
            [PM, "--json", "status"],
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    pids = {json.loads(out)["pid"] for out, _ in outs}
    assert len(pids) == 1
    assert sum("started pm-agentd" in err for _, err in outs) == 1


def test_status_json_is_machine_output(running: Cli) -> None:
    status = json.loads(running.ok("--json", "status"))
    assert status["state"] == "ready" and status["pid"] == running.world.process.pid  # type: ignore[union-attr]
    # where a write batch's time goes, and where reads ran (issue 18)
    assert set(status["writer"]["stages"]) == {
        "queued_ms_p50", "loop_ms_p50", "to_thread_ms_p50", "thread_ms_p50", "commit_ms_p50",
        "to_loop_ms_p50",
    }  # fmt: skip
    running.ok("kv", "set", "some", "key", "1")
    running.ok("kv", "get", "some", "key")
    reads = json.loads(running.ok("--json", "status"))["reads"]
    assert reads["on_loop"] >= 1 and reads["on_threads"] >= 0
    assert "on the event loop" in running.ok("status")


def test_status_imports_nothing_heavy(running: Cli) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", PM, "status"],
        env=running.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    for heavy in ("asyncio", "structlog", "msgspec", "daemon", "json", "socket", "argparse"):
        assert heavy not in imported, f"pm status imported {heavy}"


def test_usage_errors_exit_2(running: Cli) -> None:
    for args in (
        ["frobnicate"],
        ["kv"],
        ["kv", "set", "ns", "k", "not json"],
        ["call", "kv.get", "{broken"],
        ["call", "kv.get", "[1]"],
        ["kv", "clear", "ns"],
        ["kv", "set", "n", "k", "1", "--ttl", "1", "--expires-at", "2099-01-01T00:00:00Z"],
    ):
        done = running.run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == "" and done.stderr.strip()


def test_remote_errors_exit_1_on_stderr(running: Cli) -> None:
    done = running.run("call", "kv.get", '{"namespace": "n"}')
    assert done.returncode == 1
    assert "missing required field `key`" in done.stderr and "[invalid_params]" in done.stderr
    assert done.stdout == ""
    unknown = running.run("call", "no.such")
    assert unknown.returncode == 1 and "Method not found" in unknown.stderr


def test_kv_commands(running: Cli) -> None:
    running.ok("kv", "set", "app", "theme", '{"dark": true}')
    running.ok("kv", "set", "app", "name", "--string", "plain text")
    running.ok("kv", "set", "app", "temp", "1", "--ttl", "600")
    assert json.loads(running.ok("kv", "get", "app", "theme")) == {"dark": True}
    assert json.loads(running.ok("kv", "get", "app", "name")) == "plain text"
    missing = running.run("kv", "get", "app", "nope")
    assert missing.returncode == 1 and "app/nope is not set" in missing.stderr
    table = running.ok("kv", "list", "app")
    assert table.splitlines()[0].split() == ["NAMESPACE", "KEY", "VALUE", "UPDATED"]
    assert len(table.splitlines()) == 4
    listed = json.loads(running.ok("--json", "kv", "list", "app", "--limit", "2"))
    assert listed["total"] == 3 and len(listed["items"]) == 2
    assert "showing 2 of 3" in running.run("kv", "list", "app", "--limit", "2").stderr
    running.ok("kv", "delete", "app", "temp")
    assert "nothing deleted" in running.run("kv", "delete", "app", "temp").stderr
    assert running.ok("kv", "clear", "app", "--yes").strip() == "deleted 2"
    piped = running.run("call", "kv.set", "-", stdin='{"namespace":"s","key":"k","value":[1]}')
    assert piped.returncode == 0 and json.loads(piped.stdout)["created"] is True


def test_busy_exits_75(make_daemon: DaemonFactory) -> None:
    world = make_daemon(
        config={
            "write_queue_max": 1,
            "write_batch_max": 1,
            "busy_wait_ms": 100,
            "busy_timeout_ms": 30000,
            # nothing of the daemon's own may take the one queue slot meanwhile
            "watch": False,
            "schedule": {
                "quality": "off",
                "backup": "off",
                "maintenance": "off",
                "retention": "off",
            },
        }
    )
    world.start()
    cli = Cli(world)
    blocker = sqlite3.connect(world.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    # One write taken by the writer (stuck on the lock), one queued: full.
    stuck = [
        subprocess.Popen(
            [PM, "kv", "set", "n", f"k{i}", "1"], env=cli.env, stderr=subprocess.DEVNULL
        )
        for i in range(2)
    ]
    wait_for(lambda: world.call("daemon.status")["queue_depth"] >= 1, 20, "a full queue")
    done = cli.run("kv", "set", "n", "refused", "1")
    assert done.returncode == 75, done.stderr
    assert "[busy]" in done.stderr
    blocker.execute("ROLLBACK")
    blocker.close()
    assert [p.wait(30) for p in stuck] == [0, 0]  # the waiting writes went through after all
    assert cli.run("kv", "get", "n", "refused").returncode == 1


def test_events_list_and_follow(running: Cli) -> None:
    running.ok("kv", "set", "e", "one", "1")
    lines = running.ok("events", "--topic", "kv").splitlines()
    assert len(lines) == 1 and "kv.created" in lines[0]
    follow = subprocess.Popen(
        [PM, "--json", "events", "--follow", "--since", "0", "--topic", "kv"],
        env=running.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        first = json.loads(follow.stdout.readline())
        assert first["data"]["key"] == "one"
        running.ok("kv", "set", "e", "two", "2")
        second = json.loads(follow.stdout.readline())
        assert second["data"]["key"] == "two" and second["seq"] > first["seq"]
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(10) == 130
        if follow.stdout is not None:
            follow.stdout.close()


def test_daemon_start_stop_restart_status(cli: Cli) -> None:
    not_running = cli.run("daemon", "status")
    assert not_running.returncode == 69 and "not running" in not_running.stderr
    assert "started pm-agentd" in cli.ok("daemon", "start")
    assert "already running" in cli.ok("daemon", "start")
    first_pid = json.loads(cli.ok("--json", "daemon", "status"))["pid"]
    out = cli.ok("daemon", "restart")
    assert f"stopped pm-agentd (pid {first_pid})" in out and "started" in out
    second_pid = json.loads(cli.ok("--json", "daemon", "status"))["pid"]
    assert second_pid != first_pid
    assert f"stopped pm-agentd (pid {second_pid})" in cli.ok("daemon", "stop")
    assert cli.ok("daemon", "stop").strip() == "pm-agentd is not running"
    assert cli.world.status() is None


def test_no_colour_in_pipes_or_with_no_color(running: Cli) -> None:
    running.ok("kv", "set", "c", "k", "1")
    for args in (["status"], ["kv", "list"]):
        assert "\x1b[" not in running.ok(*args)
        assert "\x1b[" not in running.run(*args, NO_COLOR="1").stdout


def test_socket_from_the_config_file(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    world = make_daemon()
    world.start()
    config = tmp_path / "client.toml"
    config.write_text(f'# the socket lives elsewhere\nsocket = "{world.socket_path}"\n')
    env = {k: v for k, v in world.env.items() if k != "PM_AGENT_SOCKET"}
    env["PM_AGENT_CONFIG"] = str(config)
    done = subprocess.run(
        [PM, "--no-spawn", "--json", "status"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["socket"] == world.socket_path
    config.write_text("socket = [")
    broken = subprocess.run([PM, "status"], env=env, capture_output=True, text=True, timeout=30)
    assert broken.returncode == 1 and "client.toml" in broken.stderr


def test_spawn_failure_shows_the_daemons_words(cli: Cli) -> None:
    done = cli.run("status", PM_AGENT_SYNCHRONOUS="SOMETIMES")
    assert done.returncode == 69
    assert "exited with status 78" in done.stderr and "SOMETIMES" in done.stderr


def test_socket_flag_wins_over_the_environment(running: Cli) -> None:
    env = {**running.env, "PM_AGENT_SOCKET": "/tmp/pm-nowhere/none.sock"}
    done = subprocess.run(
        [PM, "--socket", running.world.socket_path, "--no-spawn", "--json", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["socket"] == running.world.socket_path
    inline = subprocess.run(
        [PM, f"--socket={running.world.socket_path}", "--no-spawn", "kv", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert inline.returncode == 0, inline.stderr
