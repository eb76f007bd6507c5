"""The service manager's side doors, in pure Python: sd_notify and socket activation.

No libsystemd: the notify protocol is one datagram per message to $NOTIFY_SOCKET, and socket
activation hands us fds from 3 on with $LISTEN_FDS, $LISTEN_PID and $LISTEN_FDNAMES.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping

import structlog

log = structlog.get_logger("pm.systemd")

SD_LISTEN_FDS_START = 3
FD_NAME = "pm-agent"


class Notifier:
    """Sends READY/STATUS/STOPPING/WATCHDOG when the daemon runs under a notify service."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self._address = address or None
        self._watchdog_s = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half of WATCHDOG_USEC, when the watchdog is meant for us."""
        return self._watchdog_s

    def send(self, **fields: str) -> None:
        if self._address is None:
            return
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as e:
            log.warning("sd_notify failed", error=str(e), message=message)

    def ready(self, status: str) -> None:
        self.send(ready="1", status=status, mainpid=str(os.getpid()))

    def status(self, status: str) -> None:
        self.send(status=status)

    def stopping(self, status: str) -> None:
        self.send(stopping="1", status=status)

    def watchdog(self) -> None:
        self.send(watchdog="1")


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # the watchdog belongs to another process (e.g. our parent)
    return int(usec) / 2 / 1_000_000


def activation_socket(env: MutableMapping[str, str] = os.environ) -> socket.socket | None:
    """The listening socket passed by systemd (or systemd-socket-activate), if any.

    Takes the fd named `pm-agent` if names were passed, else the first one. The variables are
    removed so nothing we start inherits them.
    """
    pid = env.pop("LISTEN_PID", "")
    count = env.pop("LISTEN_FDS", "")
    names = env.pop("LISTEN_FDNAMES", "")
    if not count.isdigit() or int(count) < 1 or pid != str(os.getpid()):
        return None
    fds = range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count))
    labels = names.split(":") if names else []
    chosen = fds[0]
    for fd, label in zip(fds, labels, strict=False):
        if label == FD_NAME:
            chosen = fd
            break
    sock = socket.socket(fileno=chosen)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise OSError(f"socket-activation fd {chosen} is not a Unix stream socket")
    os.set_inheritable(chosen, False)
    for fd in fds:
        if fd != chosen:
            os.close(fd)
    return sock
