"""After an upgrade, the daemon still running is the old one: `pm` restarts it.

Every command but the fast `pm status` greets a daemon process it has not greeted before
(`daemon.hello`, through client.greeting). A daemon OLDER than
this pm is restarted — through the service manager when pm-agent is installed as a user
service, else by pm itself (shut down, then started from this installation) — and pm says so.
A daemon that is newer, or that still speaks another protocol after the restart, is a clear
error (IncompatibleDaemon), never a hang.
"""

from __future__ import annotations

import os
import time

from client import errors, output
from client.sync import Client, check_protocol
from client.version import __version__ as mine
from client.version import is_older

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STOP_WAIT_S = 30.0


def greet(client: Client, socket_path: str) -> tuple[Client, dict[str, Any]]:
    """Handshake; restart an older daemon. Returns the client to use (a new one after a
    restart) and the hello of the daemon behind it."""
    hello = client.hello()
    theirs = hello.get("daemon_version")
    if not is_older(theirs, mine):
        check_protocol(hello.get("protocol_version"), theirs)
        return client, hello
    output.error(f"pm-agentd {theirs} is older than this pm ({mine}): restarting it")
    how = _restart(client, socket_path)
    fresh = Client(socket_path).connect()
    hello = fresh.hello()
    now = hello.get("daemon_version")
    if is_older(now, mine):
        fresh.close()
        raise errors.IncompatibleDaemon(
            f"restarted pm-agentd ({how}), but the one answering is still {now}, older than "
            f"this pm ({mine}); see which pm-agentd the service runs: pm daemon status"
        )
    check_protocol(hello.get("protocol_version"), now)
    output.error(f"pm-agentd {now} is running ({how})")
    return fresh, hello


def _restart(client: Client, socket_path: str) -> str:
    from client import service

    if service.managed():
        client.close()
        return service.restart_daemon()
    data_dir = client.call("daemon.status").get("data_dir")
    try:
        client.call("daemon.shutdown")
    except errors.ProtocolError:
        pass  # it closed the connection on its way out
    finally:
        client.close()
    _wait_until_stopped(socket_path, data_dir)
    from client import spawn

    spawn.start(socket_path, announce=False)
    return "started from this installation"


def _wait_until_stopped(socket_path: str, data_dir: Any) -> None:
    """Until nothing answers and the old daemon's instance lock is free (it is released when
    the process has gone, so the new one can take it)."""
    deadline = time.monotonic() + STOP_WAIT_S
    lock = os.path.join(data_dir, "pm-agentd.lock") if isinstance(data_dir, str) else None
    while time.monotonic() < deadline:
        from client import spawn

        if not _answers(socket_path) and (lock is None or spawn.instance_lock_free(lock)):
            return
        time.sleep(0.05)
    raise errors.ClientError(
        f"the old pm-agentd did not stop within {STOP_WAIT_S:g} s; stop it (pm daemon stop) "
        "and try again"
    )


def _answers(path: str) -> bool:
    try:
        Client(path, timeout=2.0).connect().close()
    except errors.Unreachable:
        return False
    return True
