"""A non-editable install carries the SQL migrations and both commands."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import REPO


def test_wheel_ships_schema_and_entry_points(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = tmp_path.glob("pm_agent-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        sql = sorted(n for n in names if n.startswith("schema/") and n.endswith(".sql"))
        shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "schema").glob("*.sql"))
        assert sql == shipped and sql
        assert "daemon/runtime/main.py" in names and "client/cli.py" in names
        assert not any(n.startswith("tests/") for n in names)
        # `pm daemon install` renders the unit templates from inside the installed package.
        assert {"client/units/systemd/pm-agent.service", "client/units/systemd/pm-agent.socket",
                "client/units/launchd/dev.pm-agent.daemon.plist"} <= names  # fmt: skip
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = zf.read(entry_points).decode()
    assert "pm-agentd = daemon.runtime.main:entry" in text
    assert "pm = client.cli:main" in text


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert f"\n{command}\n" in readme
    assert "pip install . && .venv/bin/pm status" in readme  # the daemon's set-up command


def test_client_and_daemon_are_the_same_version() -> None:
    import client.version
    import daemon

    assert client.version.__version__ == daemon.__version__


def test_client_and_daemon_speak_the_same_protocol() -> None:
    import client.errors
    import daemon

    assert client.errors.PROTOCOL_VERSION == daemon.PROTOCOL_VERSION
