"""Start pm-agentd when nothing answers, once, however many clients ask at the same moment.

A client that finds no daemon takes an flock beside the socket, checks again (another client
may have just started one), starts `pm-agentd` in its own session with its stderr in a file of
the state folder, and polls `daemon.status` with a bounded backoff until the daemon is ready —
or until it exits, when its exit status and its own words are shown. It is said to be started
only once it is ready.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

from client import locations
from client.errors import ClientError, Unreachable
from client.sync import Client

START_TIMEOUT_S = 30.0  # to answer at all
MIGRATE_TIMEOUT_S = 300.0  # then to be ready: a migration may take a while (as TimeoutStartSec)
START_LOG = "pm-agentd.start.log"  # the spawned daemon's stderr, in the state folder
START_LOG_SHOWN = 16 * 1024  # at most this much of its end is shown
EXIT_MEANINGS = {1: "it could not start", 2: "bad usage", 78: "a configuration error"}


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
    early_log = os.path.join(state, START_LOG)
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
    _wait_until_ready(process, socket_path, timeout_s, early_log)
    if announce:  # only now: a daemon that died at start was never "started"
        print(f"pm: started pm-agentd (pid {process.pid})", file=sys.stderr)
    return process.pid


def _state(path: str) -> str | None:
    """What the daemon says it is doing (starting, migrating, ready…); None while nothing
    answers as a daemon should."""
    try:
        with Client(path, timeout=5.0).connect() as client:
            return str(client.call("daemon.status").get("state"))
    except ClientError:
        return None


def _wait_until_ready(
    process: subprocess.Popen[bytes], socket_path: str, timeout_s: float, early_log: str
) -> None:
    """Until the daemon is ready, or has exited (raises, with its reason and exit status).

    The socket answers before the database is checked and migrated (`starting`, `migrating`):
    a daemon whose database is damaged answers, then exits. Once it answers, it has up to
    MIGRATE_TIMEOUT_S to be ready; still migrating then, it is left to finish (clients wait on
    `migrating`)."""
    deadline = time.monotonic() + timeout_s
    answered = False
    delay = 0.005
    while True:
        status = process.poll()
        if status is not None:
            raise Unreachable(_died(status, early_log))
        state = _state(socket_path)
        if state == "ready":
            return
        if state is not None and not answered:
            answered = True
            deadline = max(deadline, time.monotonic() + MIGRATE_TIMEOUT_S)
        if time.monotonic() > deadline:
            if answered:
                return
            raise Unreachable(
                f"pm-agentd (pid {process.pid}) did not answer on {socket_path} within "
                f"{timeout_s:g} s; see {early_log} and the daemon log in "
                f"{os.path.dirname(early_log)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.6, 0.25)


def _died(status: int, early_log: str) -> str:
    """The daemon's exit status, what it means, and what the daemon said on its way out."""
    if status < 0:
        meaning = f" (killed by {signal.Signals(-status).name})"
    else:
        meaning = f" ({EXIT_MEANINGS[status]})" if status in EXIT_MEANINGS else ""
    try:
        with open(early_log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - START_LOG_SHOWN))
            said = f.read().decode("utf-8", "replace").strip()
    except OSError:
        said = ""
    head = f"pm-agentd exited with status {status}{meaning} before it was ready"
    return head + (f":\n{said}" if said else f" and said nothing (see {early_log})")


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
