"""pm-agentd under the user's service manager: systemd user units, or a launchd LaunchAgent.

`install` renders the templates in systemd/ (or launchd/) with this installation's absolute
paths, writes them for the current user and enables them. Where the manager cannot be reached
(no systemctl, no user manager answering, no launchctl) it writes the files and hands back the
exact commands to run instead: that is not a failure. `uninstall` undoes all of it, `status`
says what is installed and what the manager reports, and `managed` / `restart_daemon` let
other commands restart the daemon through the manager.

Standard library only (with client.locations, and the small sync client imported when a daemon
must be asked something): the CLI imports this module for `pm daemon …` alone.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from client import locations
from client.service_units import (
    STOP_WAIT_S,
    AnyManager,
    ServiceError,
    _write,
    baked_environment,
    daemon_argv,
    manager,
)


# --- the daemon on the socket -----------------------------------------------------------------
def daemon_status(socket_path: str) -> dict[str, Any] | None:
    from client import errors
    from client.sync import Client

    try:
        with Client(socket_path, timeout=10.0).connect() as client:
            result: dict[str, Any] = client.call("daemon.status")
            return result
    except (errors.Unreachable, errors.ProtocolError):
        return None  # nothing there, or a daemon on its way out


def _gone(pid: int, data_dir: Any) -> bool:
    """The process is gone, or at least its instance lock is free (a zombie holds none)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    if not isinstance(data_dir, str):
        return False
    from client.spawn import instance_lock_free

    return instance_lock_free(os.path.join(data_dir, "pm-agentd.lock"))


def stop_daemon_on(socket_path: str, *, only_on_demand: bool = False) -> int | None:
    """Shut down the daemon answering on `socket_path`; its pid, or None if none answered (or,
    with `only_on_demand`, the one answering was started by a service manager)."""
    from client import errors
    from client.sync import Client

    running = daemon_status(socket_path)
    if running is None or (only_on_demand and running.get("socket_activated")):
        return None
    pid = int(running["pid"])
    try:
        with Client(socket_path, timeout=10.0).connect() as client:
            client.call("daemon.shutdown")
    except errors.ProtocolError:
        pass  # it closed the connection on its way out, which is what we asked for
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        if daemon_status(socket_path) is None and _gone(pid, running.get("data_dir")):
            return pid
        time.sleep(0.05)
    raise ServiceError(f"pm-agentd (pid {pid}) is still running after {STOP_WAIT_S:g} s")


# --- install, uninstall, status ---------------------------------------------------------------
@dataclass
class Report:
    """What a command did, line by line, and what the user has to run where we could not."""

    manager: str
    lines: list[str] = field(default_factory=list)
    to_run: list[str] = field(default_factory=list)
    ok: bool = True

    def say(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines) + "".join(
            f"  {command}\n" for command in self.to_run
        )

    def as_dict(self) -> dict[str, Any]:
        return {"manager": self.manager, "ok": self.ok, "did": self.lines, "to_run": self.to_run}


def _carry_out(m: AnyManager, steps: list[list[str]], report: Report) -> bool:
    for step in steps:
        ran = m.run(step)
        if ran.code != 0:
            report.say(f"failed: {shlex.join(step)}: {ran.said}")
            report.ok = False
            return False
        report.say(f"ran: {shlex.join(step)}")
    return True


def install(
    socket_path: str,
    *,
    manager_name: str | None = None,
    env: Mapping[str, str] = os.environ,
    executable: str = sys.executable,
) -> Report:
    m = manager(manager_name, env)
    report = Report(m.name)
    reinstall = bool(m.present())
    changed: set[str] = set()
    for path, text in m.render(
        socket_path, daemon_argv(executable), baked_environment(env)
    ).items():
        how = _write(path, text)
        if how == "rewrote (changed)":
            changed.add(os.path.basename(path))
        report.say(f"{how} {path}: {m.summary(text)}")
    for line in m.prepare():
        report.say(line)
    reason = m.probe()
    if reason is not None:
        steps = m.install_steps(reinstall, changed, reinstall)  # loaded: as far as we can tell
        report.to_run = [shlex.join(step) for step in steps]
        report.say(f"{m.name} cannot be reached ({reason}); to start pm-agentd at login, run:")
        return report
    stopped = stop_daemon_on(socket_path, only_on_demand=True)
    if stopped is not None:
        report.say(
            f"stopped pm-agentd (pid {stopped}), started on demand, so {m.name} takes its socket"
        )
    if _carry_out(m, m.install_steps(m.loaded(), changed, reinstall), report):
        report.say(f"pm-agentd starts at login, and on the first connection to {socket_path}")
    return report


def uninstall(*, manager_name: str | None = None, env: Mapping[str, str] = os.environ) -> Report:
    m = manager(manager_name, env)
    report = Report(m.name)
    present = m.present()
    if not present:
        report.say(f"pm-agent is not installed for {m.name} (no {', '.join(m.paths())})")
        return report
    reason = m.probe()
    before, after = m.uninstall_steps(reason is None and m.loaded())
    if reason is None and not _carry_out(m, before, report):
        return report
    for path in present:
        os.remove(path)
        report.say(f"removed {path}")
    for line in m.cleanup():
        report.say(line)
    if reason is not None:
        for link in m.leftovers():
            if os.path.islink(link):
                os.remove(link)
                report.say(f"removed {link}")
        report.to_run = [shlex.join(step) for step in m.stop_steps(True) + after]
        report.say(f"{m.name} cannot be reached ({reason}); if it runs pm-agentd, run:")
        return report
    if _carry_out(m, after, report):
        report.say("pm starts pm-agentd on demand from now on")
    return report


def status(
    *, manager_name: str | None = None, env: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    m = manager(manager_name, env)
    files = []
    for path in m.paths():
        entry: dict[str, Any] = {"path": path, "exists": os.path.exists(path)}
        if entry["exists"]:
            with open(path, encoding="utf-8") as f:
                entry["summary"] = m.summary(f.read())
        files.append(entry)
    result: dict[str, Any] = {
        "manager": m.name,
        "installed": m.installed(),
        "files": files,
        "socket": m.installed_socket(),
        "units": None,
        "note": None,
    }
    if not m.present():
        return result
    reason = m.probe()
    if reason is None:
        result["units"] = m.state()
    else:
        result["note"] = f"unknown: no user manager ({reason})"
    return result


# --- for other commands -----------------------------------------------------------------------
def managed(
    env: Mapping[str, str] = os.environ,
    *,
    socket_path: str | None = None,
    manager_name: str | None = None,
) -> bool:
    """Installed for this platform's manager (or `manager_name`), listening where the client
    looks (`socket_path`, else as `pm` resolves it), and the manager answers."""
    m = manager(manager_name, env)
    if not m.installed():
        return False
    try:
        path = socket_path or locations.client_socket_path(None, env)
    except locations.ConfigFileError:
        return False
    return m.installed_socket() == path and m.probe() is None


_PAST = {"restart": "restarted", "start": "started", "stop": "stopped"}


def act(
    action: str,
    env: Mapping[str, str] = os.environ,
    *,
    socket_path: str | None = None,
    manager_name: str | None = None,
) -> str:
    """`start`, `stop` (the socket too, else the next connection would start it again) or
    `restart` pm-agentd through the service manager; a one-line description of what ran.
    Raises ServiceError when pm-agent is not managed (see `managed`) or the manager refuses."""
    m = manager(manager_name, env)
    path = socket_path or locations.client_socket_path(None, env)
    if not managed(env, socket_path=path, manager_name=manager_name):
        raise ServiceError(
            f"pm-agent is not installed for {m.name} on {path}, or {m.name} cannot be reached "
            "(pm daemon status says which)"
        )
    if action != "stop":
        stop_daemon_on(path, only_on_demand=True)  # it holds the instance lock
    steps = {"restart": m.restart_steps, "start": m.start_steps, "stop": m.stop_steps}[action](
        m.loaded()
    )
    for step in steps:
        ran = m.run(step)
        if ran.code != 0:
            raise ServiceError(f"{shlex.join(step)} failed: {ran.said}")
    done = " && ".join(shlex.join(step) for step in steps) or "it was not loaded"
    return f"{_PAST[action]} by {m.name}: {done}"


def restart_daemon(env: Mapping[str, str] = os.environ) -> str:
    """Restart pm-agentd through the service manager (for the version handshake)."""
    return act("restart", env)
