"""Start pm-agentd when nothing answers, once, however many clients ask at the same moment.

A client that finds no daemon takes an flock beside the socket, checks again (another client
may have just started one), starts `pm-agentd` in its own session, and polls the socket with
a bounded backoff until it answers — or until the daemon exits, whose first words are shown.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Mapping

from client import locations
from client.errors import Unreachable
from client.sync import Client

START_TIMEOUT_S = 30.0


def _answers(path: str) -> bool:
    try:
        Client(path, timeout=5.0).connect().close()
    except Unreachable:
        return False
    return True


def _private(path: str, flags: int) -> int:
    """The daemon's first words are its own: 0600 whatever the client's umask."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)  # one written by an older pm may be 0644
    return fd


def daemon_command() -> list[str]:
    """The daemon of this very installation (same interpreter), whatever PATH says."""
    return [sys.executable, "-m", "daemon"]


def start(
    socket_path: str,
    *,
    env: Mapping[str, str] = os.environ,
    announce: bool = True,
    timeout_s: float = START_TIMEOUT_S,
) -> int | None:
    """Make sure a daemon answers on `socket_path`; returns the pid if this call started it."""
    folder = os.path.dirname(socket_path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with open(os.path.join(folder, ".pm-agent-start.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until the daemon answers or gave up
        if _answers(socket_path):
            return None
        return _spawn(socket_path, env, announce, timeout_s)


def _spawn(socket_path: str, env: Mapping[str, str], announce: bool, timeout_s: float) -> int:
    child_env = dict(env)
    child_env["PM_AGENT_SOCKET"] = socket_path  # listen exactly where this client looks
    state = locations.state_dir(env)
    os.makedirs(state, mode=0o700, exist_ok=True)
    early_log = os.path.join(state, "pm-agentd.start.log")
    with open(early_log, "wb", opener=_private) as stderr:
        process = subprocess.Popen(
            daemon_command(),
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # not killed with this terminal's process group
            close_fds=True,
        )
    if announce:
        print(f"pm: started pm-agentd (pid {process.pid})", file=sys.stderr)
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while time.monotonic() < deadline:
        if _answers(socket_path):
            return process.pid
        status = process.poll()
        if status is not None:
            with open(early_log, encoding="utf-8", errors="replace") as f:
                said = f.read().strip()
            raise Unreachable(
                f"pm-agentd exited with status {status} before answering"
                + (f":\n{said}" if said else f" (see {early_log})")
            )
        time.sleep(delay)
        delay = min(delay * 1.6, 0.25)
    raise Unreachable(
        f"pm-agentd (pid {process.pid}) did not answer on {socket_path} within {timeout_s:g} s; "
        f"see {early_log} and the daemon log in {state}"
    )


def instance_lock_free(lock_path: str) -> bool:
    """No daemon holds its instance lock (`pm-agentd.lock` in the data folder): it has gone,
    even if its pid lingers as a zombie."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return True
