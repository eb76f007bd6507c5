"""`pm daemon start|stop|restart|status|install|uninstall`.

When pm-agent is installed as a user service and its manager answers, start, stop and restart
go through the manager (a daemon it socket-activates would otherwise come back at the next
connection); else pm starts and stops the daemon itself.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING, Any

from client import errors, output, spawn
from client.spec import Arg, Command
from client.status_view import render_status

if TYPE_CHECKING:
    from client.args import Args
    from client.service import Report
    from client.session import Session

# Once the daemon has let go of its socket and its lock, its process should be gone within a
# moment; it forces its own exit 3 s after a clean stop (daemon/runtime/exit_guard.py).
EXIT_WAIT_S = 5.0


def _manager(s: Session) -> str | None:
    name: str | None = s.args.get("manager") if s.args is not None else None
    return name


def _managed(s: Session) -> bool:
    from client import service

    return service.managed(socket_path=s.socket_path, manager_name=_manager(s))


def _by_manager(s: Session, what: str) -> int:
    from client import service, service_units

    try:
        print(service.act(what, socket_path=s.socket_path, manager_name=_manager(s)))
    except service_units.ServiceError as e:
        output.error(str(e))
        return errors.EXIT_FAILED
    if what == "stop":
        leftover = service.stop_daemon_on(s.socket_path)  # one started on demand meanwhile
        if leftover is not None:
            if not _exited_within(leftover, EXIT_WAIT_S):
                return _still_running(leftover)
            print(f"stopped pm-agentd (pid {leftover}), started on demand")
        return 0
    s.client(spawn=False)  # the manager's daemon, or an error: never one started on demand
    st = s.call("daemon.status")  # waits through starting/migrating
    print(f"pm-agentd (pid {st['pid']}) answers on {st['socket']}")
    return 0


def start(s: Session) -> int:
    if _managed(s):
        return _by_manager(s, "start")
    from client import service

    running = service.daemon_status(s.socket_path)
    if running is not None:
        print(f"pm-agentd is already running (pid {running['pid']})")
        return 0
    spawn.start(s.socket_path, announce=False)
    st = s.call("daemon.status")  # waits through starting/migrating
    print(f"started pm-agentd (pid {st['pid']}) on {st['socket']}")
    return 0


def stop(s: Session) -> int:
    if _managed(s):
        return _by_manager(s, "stop")
    from client import service, service_units

    try:
        pid = service.stop_daemon_on(s.socket_path)
    except service_units.ServiceError as e:
        output.error(str(e))
        return errors.EXIT_FAILED
    if pid is None:
        print("pm-agentd is not running")
        return 0
    if not _exited_within(pid, EXIT_WAIT_S):
        return _still_running(pid)
    print(f"stopped pm-agentd (pid {pid})")
    return 0


def _still_running(pid: int) -> int:
    """Stopped is said only of a process that has exited."""
    output.error(
        f"pm-agentd (pid {pid}) has closed its socket and database, but its process is still "
        f"running after {EXIT_WAIT_S:g} s: {_command_of(pid)}. Something in it is stuck (its "
        f"log says what); it cannot take a new client. To end it: kill {pid} (or kill -9 {pid})"
    )
    return errors.EXIT_FAILED


def _exited_within(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _exited(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _exited(pid: int) -> bool:
    """The process is gone (or a zombie: it has exited, its parent has not reaped it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return True  # the pid belongs to another user's process now: ours is gone
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
        return state in (b"Z", b"X")
    except (OSError, IndexError):
        pass
    try:  # no /proc (macOS): ask ps
        done = subprocess.run(
            ["ps", "-o", "stat=", "-p", str(pid)],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return not done.stdout.strip() or done.stdout.strip().startswith("Z")


def _command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "its command line is not readable"
    return " ".join(w.decode("utf-8", "replace") for w in words) or "?"


def restart(s: Session) -> int:
    if _managed(s):
        return _by_manager(s, "restart")
    code = stop(s)
    return code if code else start(s)


def _render_service(info: dict[str, Any]) -> str:
    name = info["manager"]
    if not any(f["exists"] for f in info["files"]):
        return (
            f"service: not installed for {name} (pm starts pm-agentd on demand; "
            "pm daemon install runs it at login)\n"
        )
    lines = [f"service: {'installed' if info['installed'] else 'partly installed'} for {name}"]
    for f in info["files"]:
        lines.append(f"  {f['path']}: {f.get('summary', '') if f['exists'] else 'missing'}")
    if info["units"] is not None:
        lines.extend(f"  {unit}: {state}" for unit, state in info["units"].items())
    else:
        lines.append(f"  state {info['note']}")
    return "\n".join(lines) + "\n"


def status(s: Session) -> int:
    from client import service

    info = service.status(manager_name=_manager(s))
    st = service.daemon_status(s.socket_path)
    if s.opts["json"]:
        output.print_json({**(st or {}), "service": info})
    else:
        print(_render_service(info), end="")
        if st is not None:
            print(render_status(st), end="")
    if st is None:
        output.error(f"pm-agentd is not running (nothing answers on {s.socket_path})")
        return errors.EXIT_UNAVAILABLE
    return 0


def install(s: Session) -> int:
    from client import service, service_units

    try:
        report = service.install(s.socket_path, manager_name=_manager(s))
    except service_units.ServiceError as e:
        output.error(str(e))
        return errors.EXIT_FAILED
    return _report(report, s)


def uninstall(s: Session) -> int:
    from client import service

    return _report(service.uninstall(manager_name=_manager(s)), s)


def _report(report: Report, s: Session) -> int:
    if s.opts["json"]:
        output.print_json(report.as_dict())
    else:
        print(report.text(), end="")
    return 0 if report.ok else errors.EXIT_FAILED


VERBS = {
    "start": (start, "start it (through the service manager when installed)"),
    "stop": (stop, "stop it"),
    "restart": (restart, "stop it, then start it"),
    "status": (status, "what is installed, what the manager says, and the daemon's state"),
    "install": (install, "run pm-agentd at login as a user service"),
    "uninstall": (uninstall, "undo install"),
}


def _verb(name: str) -> Command:
    action, about = VERBS[name]

    def run(args: Args, s: Session) -> int:
        return action(s)

    manager = Arg(
        "manager",
        "--manager",
        choices=["systemd", "launchd"],
        help="the service manager to install for or act through (default: launchd on macOS, "
        "systemd elsewhere)",
    )
    return Command(name, run, [manager], help=about)


def command(word: str) -> Command:
    return Command(
        "daemon",
        help="start, stop, restart or inspect pm-agentd; run it at login (install)",
        verbs=[_verb(name) for name in VERBS],
    )
