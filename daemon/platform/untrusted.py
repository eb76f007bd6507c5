"""The one way the daemon opens a file it did not create: a repository's file, an export handed
to `pm db import`, whatever lies in its data folder.

Such a file may be a link to anywhere, a FIFO that blocks the first `open`, a device that never
ends (/dev/zero), or simply huge. Here it is:
- resolved first, and refused unless it lies inside the folder(s) it must stay in (`within`);
- opened non-blocking, without following a link in its last component, and checked again once
  open (the path the descriptor really has, on Linux and macOS), so a link swapped in between
  the check and the open is refused too;
- refused unless it is a regular file (no FIFO, device, socket or folder);
- read with a cap: at most `max_bytes`, or refused when `whole` and it is larger.

Every refusal is an `OSError` (a `RefusedFile`), so callers that already note OSErrors as a
project's problem need no new branch.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
from collections.abc import Sequence
from typing import BinaryIO

_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
)


class RefusedFile(OSError):
    """A file the daemon will not read."""


class Outside(RefusedFile):
    def __init__(self, path: str, within: Sequence[str]) -> None:
        where = " or ".join(within)
        super().__init__(errno.EACCES, f"resolves outside {where}", path)


class NotRegular(RefusedFile):
    def __init__(self, path: str, mode: int) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({_kind(mode)})", path)
        self.mode = mode  # a caller may treat a folder where a file may be as simply absent


class TooLarge(RefusedFile):
    def __init__(self, path: str, size: int | None, max_bytes: int) -> None:
        what = f"{size} bytes" if size is not None else "still growing"
        super().__init__(errno.EFBIG, f"{what}, over the limit of {max_bytes} bytes", path)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a link"),
    ):
        if test(mode):
            return name
    return "not a file"


def is_inside(path: str, folder: str) -> bool:
    """Is `path` (already resolved) `folder` itself or below it (`folder` resolved here)?"""
    top = os.path.realpath(folder)
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def resolve_within(path: str, within: str | Sequence[str]) -> str:
    """`path` with every link resolved; `Outside` unless it lies inside one of `within`."""
    folders = [within] if isinstance(within, str) else list(within)
    real = os.path.realpath(path)
    if not any(is_inside(real, folder) for folder in folders):
        raise Outside(path, folders)
    return real


def _opened_path(fd: int) -> str | None:
    """Where the open descriptor really points (None where the OS cannot say)."""
    if sys.platform.startswith("linux"):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
    if sys.platform == "darwin":
        try:
            raw = fcntl.fcntl(fd, fcntl.F_GETPATH, b"\0" * 1024)  # type: ignore[attr-defined]
        except OSError:
            return None
        return os.fsdecode(raw.rstrip(b"\0"))
    return None


def open_file(path: str, *, within: str | Sequence[str] | None, max_bytes: int) -> BinaryIO:
    """`path` open for reading, after every check above; `max_bytes` refuses a file already
    larger than that (use `read` to take only the first bytes of a larger one).

    `within=None` confines nothing but still refuses a link as the last component: for a file
    whose own folder the caller has checked (the daemon's data folders)."""
    target = path if within is None else resolve_within(path, within)
    fd = os.open(target, _FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(path, st.st_mode)
        if within is not None:
            really = _opened_path(fd)
            if really is not None:
                folders = [within] if isinstance(within, str) else list(within)
                if not any(is_inside(really, folder) for folder in folders):
                    raise Outside(path, folders)
        if st.st_size > max_bytes:
            raise TooLarge(path, st.st_size, max_bytes)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read(
    path: str, *, within: str | Sequence[str] | None, max_bytes: int, whole: bool = True
) -> bytes:
    """The file's bytes. `whole`: all of it or `TooLarge`; otherwise its first `max_bytes`."""
    fd_limit = max_bytes if whole else sys.maxsize
    with open_file(path, within=within, max_bytes=fd_limit) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        if whole:  # it grew after the size check
            raise TooLarge(path, None, max_bytes)
        data = data[:max_bytes]
    return data


def read_text(
    path: str,
    *,
    within: str | Sequence[str] | None,
    max_bytes: int,
    whole: bool = True,
    errors: str = "replace",
) -> str:
    """`read`, decoded as UTF-8 (bad bytes replaced unless `errors` says otherwise)."""
    data = read(path, within=within, max_bytes=max_bytes, whole=whole)
    return data.decode("utf-8", errors=errors)
