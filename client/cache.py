"""What pm remembers between runs, per daemon socket, in the XDG cache folder
(`$XDG_CACHE_HOME/pm-agent/`, else `~/.cache/pm-agent/`): the daemon it last greeted, and the
commands that daemon's `rpc.discover` gives rise to.

A cache only: a file that is missing, unreadable, malformed or not writable is as if it were
not there. Files are replaced whole (a temp file renamed over), so a reader never sees half of
one, whatever other `pm` processes do meanwhile.
"""

from __future__ import annotations

import os

from client import fastjson, locations

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MAX_BYTES = 4 * 1024 * 1024  # a cache file larger than this is not ours


def _fnv1a(text: str) -> str:
    """A stable 64-bit hash (Python's own `hash` changes from run to run)."""
    value = 0xCBF29CE484222325
    for byte in text.encode("utf-8", "surrogateescape"):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def path(socket_path: str, what: str) -> str:
    """The file holding `what` ("daemon", "catalogue", "noun.tasks") for the daemon on
    `socket_path`."""
    name = os.path.basename(socket_path)[:40] or "socket"
    return os.path.join(locations.cache_dir(), f"{name}-{_fnv1a(socket_path)}.{what}.json")


def read(socket_path: str, what: str) -> Any:
    """The value stored, or None."""
    try:
        with open(path(socket_path, what), "rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > _MAX_BYTES:
        return None
    try:
        return fastjson.loads(data)
    except ValueError:
        return None


def write(socket_path: str, what: str, value: Any) -> None:
    """Store `value` (JSON); silently nothing when the folder cannot be written."""
    target = path(socket_path, what)
    folder = os.path.dirname(target)
    scratch = f"{target}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(fastjson.dumps(value))
        os.replace(scratch, target)
    except (OSError, TypeError, ValueError):
        _discard(scratch)


def forget(socket_path: str, prefix: str, *, keep: set[str]) -> None:
    """Remove this socket's files of `what`s starting with `prefix`, but those in `keep`."""
    head = path(socket_path, prefix)[: -len(".json")]
    folder, start = os.path.split(head)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    kept = {os.path.basename(path(socket_path, what)) for what in keep}
    for name in names:
        if name.startswith(start) and name.endswith(".json") and name not in kept:
            _discard(os.path.join(folder, name))


def _discard(scratch: str) -> None:
    try:
        os.unlink(scratch)  # ours (named by our pid)
    except OSError:
        return
