"""Greeting the daemon: `daemon.hello` once per daemon process, not once per command.

Every command must know that the daemon speaks its protocol and is not older than this pm (an
older one is restarted: client.upgrade). That answer holds for as long as the same daemon
process runs, so it is remembered (client.cache) with the process's identity — its pid, which
the kernel gives with the connection (SO_PEERCRED), and its start time, so a reused pid is not
taken for it — and the next command that reaches the same process skips the round trip. A new
daemon process, or another version of pm, is greeted again. Where the kernel does not say who
serves the socket, every command greets.
"""

from __future__ import annotations

from client import cache
from client.version import __version__

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.sync import Client


def identity(client: Client) -> str | None:
    """`pid:start` of the process serving this connection, or None when it cannot be known."""
    pid = client.peer_pid
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        return f"{pid}:{int(fields[19])}"  # field 22, starttime: fields count from 3
    except (OSError, IndexError, ValueError):
        return None


def greet(client: Client, socket_path: str) -> tuple[Client, dict[str, Any]]:
    """The client to use (a new one after restarting an older daemon) and what is known of
    the daemon behind it: `peer` (its identity), `daemon_version`, `protocol_version`."""
    peer = identity(client)
    known = cache.read(socket_path, "daemon")
    if (
        peer is not None
        and isinstance(known, dict)
        and known.get("peer") == peer
        and known.get("client") == __version__
    ):
        return client, known
    from client import upgrade

    client, hello = upgrade.greet(client, socket_path)
    known = {
        "peer": identity(client),
        "client": __version__,
        "daemon_version": hello.get("daemon_version"),
        "protocol_version": hello.get("protocol_version"),
    }
    if known["peer"] is not None:
        cache.write(socket_path, "daemon", known)
    return client, known
