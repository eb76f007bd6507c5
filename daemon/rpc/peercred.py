"""Who is on the other end of a Unix socket, as the kernel says (not as the peer claims)."""

from __future__ import annotations

import socket
import struct
import sys
from typing import Any

_LINUX_UCRED = struct.Struct("3i")  # pid, uid, gid
_DARWIN_SOL_LOCAL, _DARWIN_LOCAL_PEERCRED = 0, 0x001
_DARWIN_XUCRED = struct.Struct("IiH")  # cr_version, cr_uid, cr_ngroups (groups follow)


def peer_uid(sock: Any) -> int | None:
    """The peer's uid, or None where the platform cannot tell."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _LINUX_UCRED.size)
        _pid, uid, _gid = _LINUX_UCRED.unpack(raw)
        return int(uid)
    if sys.platform == "darwin":
        raw = sock.getsockopt(_DARWIN_SOL_LOCAL, _DARWIN_LOCAL_PEERCRED, 76)
        _version, uid, _ngroups = _DARWIN_XUCRED.unpack_from(raw)
        return int(uid)
    return None
