"""`pm daemon start|stop|restart|status`."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from client import errors, output, spawn
from client.cli import render_status
from client.sync import Client

if TYPE_CHECKING:
    from client.commands import Session

STOP_WAIT_S = 60.0


def _status(path: str) -> dict[str, Any] | None:
    try:
        with Client(path, timeout=10.0).connect() as client:
            result: dict[str, Any] = client.call("daemon.status")
            return result
    except (errors.Unreachable, errors.ProtocolError):
        return None  # nothing there, or a daemon on its way out


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def start(s: Session) -> int:
    running = _status(s.socket_path)
    if running is not None:
        print(f"pm-agentd is already running (pid {running['pid']})")
        return 0
    spawn.start(s.socket_path, announce=False)
    st = s.call("daemon.status")  # waits through starting/migrating
    print(f"started pm-agentd (pid {st['pid']}) on {st['socket']}")
    return 0


def stop(s: Session) -> int:
    running = _status(s.socket_path)
    if running is None:
        print("pm-agentd is not running")
        return 0
    pid = int(running["pid"])
    try:
        with Client(s.socket_path, timeout=10.0).connect() as client:
            client.call("daemon.shutdown")
    except errors.ProtocolError:
        pass  # it closed the connection on its way out, which is what we asked for
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        if _status(s.socket_path) is None and _gone(pid):
            print(f"stopped pm-agentd (pid {pid})")
            return 0
        time.sleep(0.05)
    output.error(f"pm-agentd (pid {pid}) is still running after {STOP_WAIT_S:g} s")
    return errors.EXIT_FAILED


def status(s: Session) -> int:
    st = _status(s.socket_path)
    if st is None:
        output.error(f"pm-agentd is not running (nothing answers on {s.socket_path})")
        return errors.EXIT_UNAVAILABLE
    output.show(st, s.args.json, render_status)
    return 0


def run(command: str, s: Session) -> int:
    if command == "start":
        return start(s)
    if command == "stop":
        return stop(s)
    if command == "restart":
        code = stop(s)
        return code if code else start(s)
    return status(s)
