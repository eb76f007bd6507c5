"""launchd's side door on macOS: the socket a LaunchAgent's `Sockets` key holds for us.

`launch_activate_socket(name, &fds, &count)` (libSystem, macOS 10.9+) hands over the
descriptors launchd bound for the `Sockets` entry `name`; the array is malloc'd and ours to
free. Anywhere else this returns None at once, without importing ctypes.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("pm.launchd")

SOCKET_NAME = "pm-agent"  # the key under Sockets in the plist
LIBSYSTEM = "/usr/lib/libSystem.B.dylib"  # in the dyld shared cache, dlopen finds it

# (activate, free): launch_activate_socket and free with their ctypes signatures.
Library = tuple[Callable[..., int], Callable[[Any], None]]

# Not started by launchd (ESRCH), no socket of that name in the plist (ENOENT): no socket.
_NOT_OURS = frozenset({errno.ESRCH, errno.ENOENT})


def _libsystem() -> Library:
    import ctypes  # noqa: PLC0415 - only on macOS: other platforms never load it

    lib = ctypes.CDLL(LIBSYSTEM, use_errno=True)
    activate = lib.launch_activate_socket
    activate.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    activate.restype = ctypes.c_int
    free = lib.free
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    return activate, free


def activation_socket(
    *, platform: str = sys.platform, library: Callable[[], Library] = _libsystem
) -> socket.socket | None:
    """The listening socket launchd holds for us, or None when not launched by launchd.

    `platform` and `library` exist for the tests, which stand in for libSystem at the FFI edge.
    """
    if platform != "darwin":
        return None
    import ctypes  # noqa: PLC0415 - only on macOS: other platforms never load it

    try:
        activate, free = library()
    except (OSError, AttributeError) as e:  # no libSystem, or a macOS before 10.9
        log.warning("launch_activate_socket is not available", error=str(e))
        return None
    fds = ctypes.POINTER(ctypes.c_int)()
    count = ctypes.c_size_t(0)
    code = activate(SOCKET_NAME.encode(), ctypes.byref(fds), ctypes.byref(count))
    if code != 0:
        if code not in _NOT_OURS:
            log.warning("launch_activate_socket failed", error=os.strerror(code), code=code)
        return None
    try:
        given = [int(fds[i]) for i in range(count.value)]
    finally:
        if fds:
            free(fds)
    if not given:
        return None
    chosen, rest = given[0], given[1:]
    for fd in rest:  # one path, one socket; anything more is not for us
        os.close(fd)
    sock = socket.socket(fileno=chosen)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.close()
        raise OSError(f"launchd's socket {SOCKET_NAME!r} is not a Unix stream socket")
    sock.set_inheritable(False)
    return sock
