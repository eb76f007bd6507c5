"""`pm daemon start|stop|restart|status|install|uninstall`.

When pm-agent is installed as a user service and its manager answers, start, stop and restart
go through the manager (a daemon it socket-activates would otherwise come back at the next
connection); else pm starts and stops the daemon itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client import errors, output, spawn
from client.cli import render_status

if TYPE_CHECKING:
    from client.commands import Session
    from client.service import Report


def _manager(s: Session) -> str | None:
    name: str | None = getattr(s.args, "manager", None)
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
    print("pm-agentd is not running" if pid is None else f"stopped pm-agentd (pid {pid})")
    return 0


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
    if s.args.json:
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
    if s.args.json:
        output.print_json(report.as_dict())
    else:
        print(report.text(), end="")
    return 0 if report.ok else errors.EXIT_FAILED


def run(command: str, s: Session) -> int:
    commands = {
        "start": start,
        "stop": stop,
        "restart": restart,
        "status": status,
        "install": install,
        "uninstall": uninstall,
    }
    return commands[command](s)
