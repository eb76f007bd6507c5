"""Start-up tells the truth: what pm says about a daemon it started, what the daemon says about
its config, and the Dev root it watches — against real daemons and the real `pm`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.runtime import start_failure
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess
from tests.test_backup import corrupt
from tests.test_cli import Cli


@pytest.fixture
def cli(make_daemon: DaemonFactory) -> Iterator[Cli]:
    world = make_daemon()
    world.dev_root.mkdir(parents=True)
    c = Cli(world)
    yield c
    c.stop_spawned()


def recorded(world: DaemonProcess) -> start_failure.StartFailure | None:
    return start_failure.read({"HOME": str(world.home)})


# --- pm and a daemon that dies at start ------------------------------------------------------
def test_pm_shows_why_a_daemon_it_started_exited_and_never_says_started(cli: Cli) -> None:
    broken = cli.world.root / "broken.toml"
    broken.write_text("no_such_setting = 1\n")
    done = cli.run("status", PM_AGENT_CONFIG=str(broken))
    assert done.returncode == 69, done.stderr
    assert "started pm-agentd" not in done.stderr
    assert "pm-agentd exited with status 78 (a configuration error)" in done.stderr
    assert "unknown field `no_such_setting`" in done.stderr  # the daemon's own words
    assert f"fix: correct it in {broken}" in done.stderr
    failure = recorded(cli.world)
    assert failure is not None and (failure.kind, failure.exit_code) == ("config", 78)
    assert failure.socket == cli.world.socket_path


def test_a_daemon_that_answers_then_dies_at_start_is_not_said_to_be_started(cli: Cli) -> None:
    """The socket answers (`starting`) before the database is checked: pm waits for ready."""
    cli.world.start()
    assert cli.world.stop() == 0
    corrupt(cli.world.db_path)
    done = cli.run("status")
    assert done.returncode == 69, done.stderr
    assert "started pm-agentd" not in done.stderr
    assert "pm-agentd exited with status 1 (it could not start) before it was ready" in done.stderr
    assert "is damaged" in done.stderr and "pm db repair" in done.stderr
    failure = recorded(cli.world)
    assert failure is not None and failure.kind == "database"


def test_a_successful_start_says_started_and_clears_the_last_failure(cli: Cli) -> None:
    broken = cli.world.root / "broken.toml"
    broken.write_text("readers = 0\n")
    assert cli.run("status", PM_AGENT_CONFIG=str(broken)).returncode == 69
    assert recorded(cli.world) is not None
    done = cli.run("status")
    assert done.returncode == 0, done.stderr
    assert "pm: started pm-agentd (pid" in done.stderr
    assert recorded(cli.world) is None


# --- configuration -----------------------------------------------------------------------------
def test_an_unknown_environment_variable_is_a_warning_naming_it(
    make_daemon: DaemonFactory,
) -> None:
    d = make_daemon(env={"PM_AGENT_DEVROOT": "/x", "PM_AGENT_NO_SUCH_THING": "1"})
    d.start()  # ready: a stale export in the shell does not stop the daemon
    log = d.log()
    assert (
        "unknown environment variable PM_AGENT_DEVROOT is ignored (did you mean "
        "PM_AGENT_DEV_ROOT?)" in log
    )
    assert "unknown environment variable PM_AGENT_NO_SUCH_THING is ignored (known: " in log
    # An unknown key in the config file is still an error.
    bad = make_daemon("bad", config={"devroot": "/x"})
    bad.start(wait=False)
    assert bad.wait() == 78
    assert "unknown field `devroot`" in bad.log()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("every day", 'a local time of day as "daily 03:00"'),
        ("6 hours", 'write it as "6h"'),
        ("daily 3", 'a daily slot is "daily HH:MM"'),
    ],
)
def test_a_bad_schedule_is_explained_in_words(
    make_daemon: DaemonFactory, value: str, words: str
) -> None:
    d = make_daemon(config={"schedule": {"backup": value}})
    d.start(wait=False)
    assert d.wait() == 78
    log = d.log()
    assert f"schedule.backup: not a schedule: {value!r}" in log
    assert words in log
    assert "regex" not in log and "^(" not in log


# --- the Dev root ------------------------------------------------------------------------------
def test_a_missing_dev_root_is_not_created_with_the_data_folder_in_it(
    make_daemon: DaemonFactory,
) -> None:
    d = make_daemon()
    d.env.pop("PM_AGENT_DATA_DIR")  # the default: <dev root>/.pm-agent
    d.start(wait=False)
    assert d.wait(30) == 78
    assert not d.dev_root.exists()
    log = d.log()
    assert f"the Dev root {d.dev_root} does not exist" in log
    assert f"mkdir -p {d.dev_root}" in log
    failure = start_failure.read({"HOME": str(d.home)})
    assert failure is not None and failure.kind == "dev_root"


def test_a_missing_dev_root_is_reported_while_the_daemon_runs(
    make_daemon: DaemonFactory,
) -> None:
    d = make_daemon(config={"watch": False, "rescan_interval_s": 0})  # data folder elsewhere
    status = d.start().wait_ready()
    assert status["dev_roots"] == [{"path": str(d.dev_root), "exists": False}]
    warnings = d.call("db.health")["warnings"]
    assert any(f"the Dev root {d.dev_root} does not exist" in w for w in warnings), warnings
    assert not d.dev_root.exists()  # reported, never created
    d.dev_root.mkdir()
    assert d.call("daemon.status")["dev_roots"] == [{"path": str(d.dev_root), "exists": True}]
    assert not any("Dev root" in w for w in d.call("db.health")["warnings"])


def test_pm_status_shows_the_dev_roots(cli: Cli) -> None:
    cli.world.start()
    out = cli.ok("status")
    assert f"dev root {cli.world.dev_root}" in out
    cli.world.dev_root.rmdir()
    out = cli.ok("status")
    assert f"dev root {cli.world.dev_root}  (does not exist: nothing there is found" in out
    as_json = json.loads(cli.ok("--json", "status"))
    assert as_json["dev_roots"] == [{"path": str(cli.world.dev_root), "exists": False}]


def test_the_start_failure_record_is_kept_per_socket_and_read_safely(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    failure = start_failure.StartFailure(
        kind="socket", message="cannot bind", fix="", exit_code=1, pid=7,
        at=start_failure.now(), socket="/tmp/a.sock", data_dir=str(tmp_path),
    )  # fmt: skip
    start_failure.record(failure, env)
    assert start_failure.read(env) == failure
    assert os.stat(start_failure.path(env)).st_mode & 0o777 == 0o600
    start_failure.clear("/tmp/b.sock", env)  # another daemon's start clears only its own
    assert start_failure.read(env) == failure
    start_failure.clear("/tmp/a.sock", env)
    assert start_failure.read(env) is None
    target = Path(start_failure.path(env))
    target.write_text("{not json")
    assert start_failure.read(env) is None
    target.unlink()
    os.mkfifo(target)
    assert start_failure.read(env) is None  # refused, where a plain open would block for ever
