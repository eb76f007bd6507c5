"""`pm events`: the newest first page, paging both ways, and a `--follow` that lasts: through
quiet periods, through a daemon restart (resuming with no gap and no duplicate), until Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from typing import IO, Any

import pytest

from client.errors import ClientError
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess, wait_for
from tests.test_cli import PM, Cli

QUIET = {"watch": False, "rescan_interval_s": 0,
         "schedule": {"quality": "off", "backup": "off", "maintenance": "off",
                      "retention": "off"}}  # fmt: skip


def quiet_cli(make_daemon: DaemonFactory, **config: object) -> Cli:
    """A started daemon that writes no events of its own: every event is one the test made."""
    cli = Cli(make_daemon(config={**QUIET, **config}))
    cli.world.start()
    return cli


@pytest.fixture
def quiet(make_daemon: DaemonFactory) -> Cli:
    return quiet_cli(make_daemon, idle_timeout_s=1)  # a subscriber must not count as idle


def kv_events(world: DaemonProcess) -> list[int]:
    page = world.call("events.list", {"since": 0, "topics": ["kv"], "limit": 10000})
    return [e["seq"] for e in page["items"]]


def seqs(text: str) -> list[int]:
    return [int(line.split()[0]) for line in text.splitlines()]


def test_events_shows_the_newest_and_pages_both_ways(quiet: Cli) -> None:
    for i in range(45):
        quiet.world.call("kv.set", {"namespace": "p", "key": f"k{i}", "value": i})
    every = kv_events(quiet.world)
    assert len(every) == 45
    newest = quiet.run("events")
    assert newest.returncode == 0, newest.stderr
    assert seqs(newest.stdout) == every[-20:]  # the newest 20, oldest of them first
    assert f"pm events --before {every[-20]}" in newest.stderr  # how to see earlier ones
    back = quiet.run("events", "--before", str(every[-20]))
    assert seqs(back.stdout) == every[-40:-20]
    oldest = quiet.run("events", "--before", str(every[5]), "--limit", "100")
    assert seqs(oldest.stdout) == every[:5] and oldest.stderr == ""  # nothing earlier
    forward = quiet.run("events", "--since", str(every[0]), "--limit", "10")
    assert seqs(forward.stdout) == every[1:11]
    assert f"pm events --since {every[10]}" in forward.stderr
    lines = [json.loads(line) for line in quiet.ok("--json", "events", "--limit", "3").splitlines()]
    assert [e["seq"] for e in lines] == every[-3:]
    both = quiet.run("events", "--follow", "--before", "3")
    assert both.returncode == 2 and "--before" in both.stderr


class Follower:
    """`pm --json events --follow` as a user leaves it running; its lines read by a thread."""

    def __init__(self, cli: Cli, *args: str, argv: list[str] | None = None) -> None:
        command = argv or [PM]
        self.process = subprocess.Popen(
            [*command, "--json", "events", "--follow", "--topic", "kv", *args],
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: IO[str] | None, is_stdout: bool) -> None:
        assert stream is not None
        for line in stream:
            if is_stdout:
                self.events.append(json.loads(line))
            else:
                self.stderr.append(line)

    def wait_subscribed(self, world: DaemonProcess) -> None:
        wait_for(lambda: world.call("daemon.status")["subscriptions"] == 1, 20, "subscribed")

    def wait_for_seq(self, seq: int) -> None:
        def seen() -> bool:
            assert self.process.poll() is None, f"pm exited: {''.join(self.stderr)}"
            return any(e["seq"] >= seq for e in self.events)

        wait_for(seen, 30, f"event {seq} to be printed")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(10)
        for thread in self._threads:
            thread.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code


def test_follow_waits_through_quiet_periods(quiet: Cli) -> None:
    # Every other call of pm times out after 60 s of silence; --follow must not. To see that
    # without waiting a minute, this pm's read timeout is made 1 s — a shorter clock for the
    # same wait, nothing else changed. The daemon closes idle connections after 1 s (config):
    # a subscriber must not count as idle, and pm must not need a reconnect to go on.
    shortened = [
        sys.executable,
        "-c",
        "import sys; from client.sync import Client; "
        "Client.__init__.__kwdefaults__['timeout'] = 1.0; "
        "from client.cli import main; sys.exit(main(sys.argv[1:]))",
    ]
    follower = Follower(quiet, argv=shortened)
    try:
        follower.wait_subscribed(quiet.world)
        with pytest.raises(subprocess.TimeoutExpired):
            follower.process.wait(3)  # quiet for 3 read timeouts and 3 idle timeouts
        seq = quiet.world.call("kv.set", {"namespace": "q", "key": "after", "value": 1})
        assert seq["created"]
        follower.wait_for_seq(kv_events(quiet.world)[-1])
        assert [e["data"]["key"] for e in follower.events] == ["after"]
    finally:
        code = follower.interrupt()
    assert code == 130
    assert "".join(follower.stderr) == ""  # no reconnect was needed, no traceback at Ctrl-C


def test_follow_survives_a_restart_with_no_gap_and_no_duplicate(quiet: Cli) -> None:
    world = quiet.world
    world.call("kv.set", {"namespace": "r", "key": "before", "value": 0})
    follower = Follower(quiet, "--since", "0")
    follower.wait_subscribed(world)
    stop_writing = threading.Event()
    written: list[str] = []

    def writer() -> None:
        """Writes whenever a daemon answers: before, during and after the restart."""
        i = 0
        while not stop_writing.is_set():
            try:
                world.call("kv.set", {"namespace": "r", "key": f"k{i}", "value": i})
            except ClientError:
                continue  # the daemon is down or stopping: that write never happened
            written.append(f"k{i}")
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: len(written) > 20, 20, "writes before the restart")
        world.stop()
        world.start()
        count = len(written)
        wait_for(lambda: len(written) > count + 20, 20, "writes after the restart")
    finally:
        stop_writing.set()
        thread.join(30)
    try:
        follower.wait_for_seq(kv_events(world)[-1])
    finally:
        code = follower.interrupt()
    printed = [e["seq"] for e in follower.events]
    assert printed == kv_events(world)  # each event once, in order: no gap, no duplicate
    assert set(written) <= {e["data"]["key"] for e in follower.events}
    said = "".join(follower.stderr)
    assert "lost pm-agentd" in said and "reconnecting" in said and "reconnected" in said
    assert "Traceback" not in said and code == 130
    # What it does not retry: a subscription the daemon refuses (a topic too long here; an
    # unknown one once the daemon refuses those) ends it with the daemon's words, exit 1 …
    refused = quiet.run("events", "--follow", "--topic", "t" * 200)
    assert refused.returncode == 1 and "[invalid_params]" in refused.stderr
    assert "reconnecting" not in refused.stderr
    # … and nothing to follow at all is exit 69, not a wait.
    world.stop()
    unreachable = quiet.run("--no-spawn", "events", "--follow")
    assert unreachable.returncode == 69
