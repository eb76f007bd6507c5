"""`daemon.hello` once per daemon process, not once per command (client/greeting.py).

What a greeting learned is kept in the XDG cache with the daemon process's identity (its pid,
from SO_PEERCRED, and its start time). These tests make the greeting observable: the daemon
here is OLDER than this pm, so a greeting restarts it. A record naming this very process is
trusted (no greeting, no restart); one naming another process, or written by another pm, is
not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from client import cache
from client.version import __version__
from tests.conftest import DaemonFactory
from tests.helpers import other_install
from tests.test_upgrade import start_other

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_PEERCRED and /proc: Linux"
)


def process_identity(pid: int) -> str:
    """pid:starttime, read here independently of the client (proc(5), field 22)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return f"{pid}:{fields[19]}"


def test_the_daemon_is_greeted_once_per_process(
    make_daemon: DaemonFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, cli = start_other(make_daemon, other_install(tmp_path / "old", version="0.0.1"))
    old.call("kv.set", {"namespace": "n", "key": "k", "value": 1})
    monkeypatch.setenv("HOME", cli.env["HOME"])  # where pm keeps its cache, for cache.path
    record = cache.path(old.socket_path, "daemon")
    assert record.startswith(str(old.home))
    Path(record).parent.mkdir(parents=True)
    assert old.process is not None
    greeted = {"peer": process_identity(old.process.pid), "client": __version__,
               "daemon_version": __version__, "protocol_version": 1}  # fmt: skip

    # A record for this very process: trusted, so no hello, so the old daemon is not restarted.
    Path(record).write_text(json.dumps(greeted))
    done = cli.run("kv", "get", "n", "k")
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    assert "older" not in done.stderr
    assert old.call("daemon.hello")["daemon_version"] == "0.0.1"

    # Written by another pm: greeted again, and the old daemon restarted from this install.
    Path(record).write_text(json.dumps({**greeted, "client": "0.0.9"}))
    done = cli.run("kv", "get", "n", "k")
    assert done.returncode == 0, done.stderr
    assert "pm-agentd 0.0.1 is older than this pm" in done.stderr
    assert old.wait(30) == 0
    fresh = json.loads(Path(record).read_text())
    status = old.call("daemon.status")
    assert fresh["peer"] == process_identity(status["pid"]) and fresh["client"] == __version__

    # The new daemon is known now: the next command says nothing and greets no one.
    again = cli.run("kv", "get", "n", "k")
    assert again.returncode == 0 and again.stderr == ""
    cli.stop_spawned()


def test_a_record_of_another_process_is_not_trusted(
    make_daemon: DaemonFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, cli = start_other(make_daemon, other_install(tmp_path / "old", version="0.0.1"))
    monkeypatch.setenv("HOME", cli.env["HOME"])
    record = Path(cache.path(old.socket_path, "daemon"))
    record.parent.mkdir(parents=True)
    assert old.process is not None
    pid, start = process_identity(old.process.pid).split(":")
    # The same pid with another start time: a reused pid, another process.
    another = {"peer": f"{pid}:{int(start) + 1}", "client": __version__,
               "daemon_version": __version__, "protocol_version": 1}  # fmt: skip
    record.write_text(json.dumps(another))
    done = cli.run("kv", "list")
    assert done.returncode == 0, done.stderr
    assert "pm-agentd 0.0.1 is older than this pm" in done.stderr
    assert old.wait(30) == 0
    cli.stop_spawned()
