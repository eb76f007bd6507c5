"""The folders the daemon keeps its own files in (db/, backups/, damaged/, exports/, jobs/ …),
checked every time they are used, not only at start.

Another process of the same user may have put a symbolic link where such a folder belongs (to
make the daemon write, chmod or delete elsewhere), or a folder of another user, or a file. A
folder is used only through a descriptor opened without following a link in its last
component and checked once open: a folder, owned by us, 0700 (tightened through that
descriptor, so never the mode of a folder elsewhere). Files are then created, renamed and
removed relative to that descriptor (`dir_fd`), so a link swapped in after the check changes
nothing.

Every refusal is a `FolderRefused` (an OSError) whose message says what is wrong and what to
do; callers that already turn OSErrors into a storage error need no new branch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class FolderRefused(OSError):
    """A folder of the daemon's own that it will not use; the message says why and the fix."""

    def __init__(self, path: str, what: str, problem: str, fix: str) -> None:
        self.message = f"the {what} {path} {problem}; pm-agent does not use it. Fix: {fix}"
        super().__init__(errno.EPERM, self.message, path)

    def __str__(self) -> str:
        return self.message


def _link_problem(path: str) -> str:
    try:
        return f"is a symbolic link (to {os.readlink(path)})"
    except OSError:
        return "is a symbolic link"


def _refuse(path: str, what: str, st: os.stat_result | None) -> FolderRefused:
    moved = f"mv {path} {path}.moved (pm-agent makes a new one)"
    if st is not None and stat.S_ISLNK(st.st_mode):
        return FolderRefused(path, what, _link_problem(path), moved)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        return FolderRefused(path, what, "is not a folder", moved)
    return FolderRefused(path, what, "cannot be opened as a folder", moved)


def _open_checked(path: str, what: str, *, fix_mode: bool) -> int:
    try:
        fd = os.open(path, _OPEN)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            try:
                st: os.stat_result | None = os.lstat(path)
            except OSError:
                st = None
            raise _refuse(path, what, st) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode):  # O_DIRECTORY makes this unreachable; kept as a check
            raise _refuse(path, what, st)
        if st.st_uid != os.getuid():
            raise FolderRefused(
                path,
                what,
                f"belongs to uid {st.st_uid}, not to you (uid {os.getuid()})",
                f"move it away (mv {path} {path}.moved); pm-agent makes a new one",
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            if not fix_mode:
                raise FolderRefused(
                    path, what, f"has mode {mode:04o}, not 0700", f"chmod 700 {path}"
                )
            os.fchmod(fd, 0o700)  # through the descriptor: never another folder's mode
        return fd
    except BaseException:
        os.close(fd)
        raise


def _make(path: str, parents: bool) -> None:
    if parents:
        parent = os.path.dirname(path)
        if parent and not os.path.lexists(parent):
            os.makedirs(parent, mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)


def check(path: str, *, what: str, create: bool = True, fix_mode: bool = True,
          parents: bool = False) -> str:  # fmt: skip
    """`path` made (0700) when missing and `create`, then checked as above; returns `path`.
    `parents`: make missing parent folders too (only for a top folder such as the data
    folder; a subfolder's parent is itself checked first)."""
    if create:
        _make(path, parents)
    os.close(_open_checked(path, what, fix_mode=fix_mode))
    return path


@contextlib.contextmanager
def opened(path: str, *, what: str, create: bool = True, parents: bool = False) -> Iterator[int]:
    """The checked folder's descriptor, for `dir_fd=` calls (closed afterwards)."""
    if create:
        _make(path, parents)
    fd = _open_checked(path, what, fix_mode=True)
    try:
        yield fd
    finally:
        os.close(fd)


def remove_own_file(folder_fd: int, name: str) -> bool:
    """Remove `name` in the checked folder if it is, at this moment, a regular file of ours
    (never a link's target: unlink does not follow). False when it was not there or not ours
    (then it is left alone)."""
    if os.sep in name or name in ("", ".", ".."):
        return False
    try:
        st = os.lstat(name, dir_fd=folder_fd)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        return False
    try:
        os.unlink(name, dir_fd=folder_fd)
    except FileNotFoundError:
        return False
    return True
