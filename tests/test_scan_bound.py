"""One project whose files cannot be read does not hold up the others, nor the daemon's stop.

The daemon runs with a folder whose listing never returns (tests/hanging_reads_daemon.py: a
dead network mount, injected at the OS edge) inside one project, and a short time bound.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DaemonFactory
from tests.gitrepos import make_repo
from tests.helpers import REPO, DaemonProcess, wait_for

PM = str(Path(sys.executable).parent / "pm")


@pytest.fixture
def hanging(make_daemon: DaemonFactory) -> DaemonProcess:
    d = make_daemon(
        # Quality assessment is off: it reads the same folders, and is not what is tested here.
        config={"watch": False, "rescan_interval_s": 0, "schedule": {"quality": "off"}},
        argv=[sys.executable, str(REPO / "tests" / "hanging_reads_daemon.py")],
        env={"PM_TEST_HANG_NAME": "dead-mount", "PM_TEST_SCAN_BOUND_S": "0.5"},
    )
    make_repo(d.dev_root / "alpha", home=d.home)
    make_repo(d.dev_root / "stuck", home=d.home)
    (d.dev_root / "stuck" / "dead-mount").mkdir()  # the analysis lists it: it never returns
    make_repo(d.dev_root / "group" / "beta", home=d.home)
    return d


def test_a_project_that_hangs_is_given_up_and_the_rest_go_on(
    hanging: DaemonProcess, tmp_path: Path
) -> None:
    d = hanging.start()
    started = time.monotonic()
    first = d.call("projects.scan")  # waits for the start-up scan, then scans again
    assert time.monotonic() - started < 10
    stuck = d.call("projects.get", {"project": "stuck"})
    assert stuck["present"] is True and stuck["scan_error"]
    assert "has not returned" in stuck["scan_error"] or "longer than 0.5 s" in stuck["scan_error"]
    assert [e["path"] for e in first["errors"]] == [str(d.dev_root / "stuck")]
    for name in ("alpha", "beta"):
        project = d.call("projects.get", {"project": name})
        assert project["scan_error"] is None and project["head_sha"]
    # Later scans skip it at once, without sending another thread into the same trap …
    for _ in range(3):
        started = time.monotonic()
        again = d.call("projects.scan", {"project": "stuck"})
        assert time.monotonic() - started < 2
        assert "has not returned" in again["errors"][0]["error"]
    # … and the rest of the daemon answers: registering a folder reads it at once.
    notes = tmp_path / "notes"
    notes.mkdir()
    started = time.monotonic()
    assert d.call("projects.register", {"path": str(notes)})["present"] is True
    assert time.monotonic() - started < 5
    # Stop means stopped: the thread stuck in the listing does not keep the process alive.
    done = subprocess.run(
        [PM, "daemon", "stop"], env=d.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"stopped pm-agentd (pid {d.process.pid if d.process else 0})"
    assert d.wait(timeout=5) == 0


def test_a_listing_of_the_dev_root_that_hangs_is_given_up(make_daemon: DaemonFactory) -> None:
    """The walk that finds projects has its own bound: a scan says it could not look, and
    marks nothing missing."""
    d = make_daemon(
        config={"watch": False, "rescan_interval_s": 0, "schedule": {"quality": "off"}},
        argv=[sys.executable, str(REPO / "tests" / "hanging_reads_daemon.py")],
        env={"PM_TEST_HANG_NAME": "never", "PM_TEST_SCAN_BOUND_S": "0.5"},
    )
    make_repo(d.dev_root / "alpha", home=d.home)
    d.start()
    d.call("projects.scan")
    (d.dev_root / "never").mkdir()  # a grouping folder whose listing never comes back
    summary = d.call("projects.scan", {"project": str(d.dev_root / "never")})
    assert summary["errors"] and "given up" in summary["errors"][0]["error"]
    assert d.call("projects.get", {"project": "alpha"})["present"] is True
    wait_for(lambda: d.call("daemon.status")["state"] == "ready", 5, "the daemon to answer")
