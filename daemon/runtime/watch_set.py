"""What the watcher watches, and what the OS and watchfiles say about it.

The watch set: the Dev roots and grouping folders (a project appearing, vanishing or being
renamed shows there), and per project its folder, its git folder and the folder of its current
branch's ref. Folders whose own path is not valid UTF-8 cannot be handed to watchfiles at all,
and one holding a name that is not UTF-8 makes watchfiles fail at the first event on that name
(it cannot decode it); the watcher polls both kinds instead (see `Watcher`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

import msgspec

from daemon.domain.projects import gitmeta


class Owner(msgspec.Struct, frozen=True):
    kind: Literal["project", "group"]
    path: str  # the project folder, or the grouping folder
    git_dir: str | None = None


def utf8(path: str) -> bool:
    """Paths reach watchfiles (and the wire) as UTF-8; a name from another encoding, read
    back with surrogate escapes, cannot."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(path: str) -> str:
    """A path for messages: undecodable bytes as U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def owners_for(
    groups: Iterable[str], projects: Iterable[tuple[str, str | None]]
) -> dict[str, Owner]:
    """Every folder to watch, and whom a change there concerns. Grouping folders come first so
    that, when the OS limit is hit, what shows new projects is watched and the rest polled."""
    owners: dict[str, Owner] = {}
    for group in groups:
        owners[group] = Owner("group", group)
    for path, branch in projects:
        located = gitmeta.locate(path)
        git_dir = located[1] if located else None
        owner = Owner("project", path, git_dir)
        owners.setdefault(path, owner)
        if located is None:
            continue
        _kind, git_dir, common_dir = located
        folders = [git_dir]
        heads = os.path.join(common_dir, "refs", "heads")
        if branch and "/" in branch:
            heads = os.path.join(heads, os.path.dirname(branch))
        folders.append(heads)
        for folder in folders:
            owners.setdefault(folder, owner)
    return owners


def names_not_utf8(folder: str) -> list[str]:
    """The entries of `folder` whose names are not valid UTF-8 (printable), [] when none or
    when it cannot be listed."""
    try:
        names = os.listdir(os.fsencode(folder))
    except OSError:
        return []
    bad = []
    for name in names:
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(name.decode("utf-8", "replace"))
    return sorted(bad)


def git_busy(git_dir: str) -> bool:
    """git holds index.lock while it rewrites the index (commit, checkout, rebase…): one stat
    of a local file, cheap enough for the loop."""
    return os.path.exists(os.path.join(git_dir, "index.lock"))


def watch_limit_hit(error: OSError) -> bool:
    text = str(error)
    return "limit" in text.lower() or "MaxFilesWatch" in text or "Too many open files" in text


def failed_path(error: OSError, paths: list[str]) -> int | None:
    """Which path the OS refused (watchfiles names it): the ones before it fitted."""
    text = str(error)
    for i, path in enumerate(paths):
        if f'"{path}"' in text:
            return i
    return None


def read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def count_inotify_watches(pid: int | str = "self") -> int | None:
    """Watches held by this process's inotify instances, from /proc/<pid>/fdinfo."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    total = 0
    for fd in fds:
        try:
            if os.readlink(os.path.join(fd_dir, fd)) != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as f:
                total += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total


def unwatchable_folders(folders: Iterable[str]) -> dict[str, str]:
    """In a thread: the folders watchfiles would fail on, and why — a name not UTF-8 there
    (one listing of each folder to watch), or its own path."""
    found = {}
    for folder in folders:
        if not utf8(folder):
            found[folder] = "its own name is not valid UTF-8"
        elif bad := names_not_utf8(folder):
            found[folder] = ", ".join(bad[:3]) + (" …" if len(bad) > 3 else "")
    return found


def stamps(folders: list[str]) -> dict[str, tuple[int, int] | None]:
    """In a thread: each folder's (mtime, ctime), which move when an entry comes, goes or is
    renamed there; None when it cannot be seen."""
    out: dict[str, tuple[int, int] | None] = {}
    for folder in folders:
        try:
            st = os.stat(folder)
        except OSError:
            out[folder] = None
        else:
            out[folder] = (st.st_mtime_ns, st.st_ctime_ns)
    return out
