"""After an upgrade: an older daemon is restarted by the next `pm` command, and says so; a
daemon speaking another protocol is a clear error, never a hang."""

from __future__ import annotations

import os
from pathlib import Path

from daemon import __version__
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess, other_install, wait_for
from tests.test_cli import Cli


def start_other(make_daemon: DaemonFactory, copy: Path) -> tuple[DaemonProcess, Cli]:
    other = make_daemon(env={"PYTHONPATH": str(copy)})
    other.start(cwd=str(copy))
    cli = Cli(other)
    cli.env.pop("PYTHONPATH")  # pm itself comes from this install
    if "PYTHONPATH" in os.environ:
        cli.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return other, cli


def test_an_older_daemon_is_restarted_from_this_install(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    old, cli = start_other(make_daemon, other_install(tmp_path / "old", version="0.0.1"))
    assert old.call("daemon.hello")["daemon_version"] == "0.0.1"
    old.call("kv.set", {"namespace": "n", "key": "k", "value": 1})
    done = cli.run("kv", "get", "n", "k")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"  # the data stays: same files, new daemon
    assert f"pm-agentd 0.0.1 is older than this pm ({__version__}): restarting it" in done.stderr
    assert f"pm-agentd {__version__} is running" in done.stderr
    assert old.wait(30) == 0  # the old one stopped cleanly
    assert old.call("daemon.hello")["daemon_version"] == __version__
    # The next command finds a current daemon and says nothing about versions.
    again = cli.run("kv", "get", "n", "k")
    assert again.returncode == 0 and "older" not in again.stderr
    cli.stop_spawned()


def test_a_daemon_speaking_another_protocol_is_a_clear_error(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    newer = other_install(tmp_path / "newer", version="99.0.0", protocol=2)
    other, cli = start_other(make_daemon, newer)
    done = cli.run("kv", "get", "n", "k")
    assert done.returncode == 1
    assert "speaks protocol 2" in done.stderr and "pm daemon restart" in done.stderr
    assert other.status() is not None, "a newer daemon is left running"
    wait_for(lambda: True, 1, "nothing")
