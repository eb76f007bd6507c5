"""Which project the user means: an id, a name, or a path, where `.` (and no argument, for
the commands where that reads naturally) is the project holding the current directory.

A path means the project whose folder holds it: the one at the path itself, else at its
parent, and so on up — the longest prefix, from any subfolder. The daemon keeps each folder as
found under its Dev root (links and all), so the client asks it (`projects.get` by path, then
by each parent) for the path as the user reached it (the shell's $PWD for `.`), then with
links resolved, then with a linked Dev root put back. Every command resolves projects here.
"""

from __future__ import annotations

import os

from client import errors

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from client.session import Session

HERE = "."


def is_path(text: str) -> bool:
    return text in (".", "..") or os.sep in text or text.startswith("~")


def project_ref(s: Session, text: str | None, *, or_path: bool = False) -> int | str:
    """What to send as `project`: an id, or a name for the daemon to resolve. A path (and
    None: here) becomes the id of the project holding it; with `or_path`, a path no project
    holds is sent as it is (a scan reads a new folder under the Dev root)."""
    if text is not None and not is_path(text):
        return int(text) if text.isdigit() else text
    path = absolute(text or HERE)
    found = find_holding(s, path)
    if found is not None:
        return int(found["id"])
    if or_path:
        return path
    raise errors.ClientError(
        f"no project holds {path}: `pm project register {path}` tracks a folder anywhere, "
        "`pm scan` finds new ones under the Dev root",
        kind="not_found",
    )


def holding(s: Session, text: str | None) -> dict[str, Any]:
    """The project row for a path (None: here), an id or a name."""
    ref = project_ref(s, text)
    project: dict[str, Any] = s.call("projects.get", {"project": ref})
    return project


def absolute(text: str) -> str:
    """The path as the user reached it: relative to the shell's logical $PWD when that is the
    current directory (`cd` through a link keeps the link in $PWD, not in getcwd())."""
    path = os.path.expanduser(text)
    if not os.path.isabs(path):
        path = os.path.join(_logical_cwd(), path)
    return os.path.normpath(path)


def _logical_cwd() -> str:
    pwd = os.environ.get("PWD", "")
    try:
        if os.path.isabs(pwd) and os.path.samefile(pwd, os.curdir):
            return pwd
    except OSError:
        pass
    return os.getcwd()


def find_holding(s: Session, path: str) -> dict[str, Any] | None:
    """The innermost project whose folder holds `path`, or None."""
    real = os.path.realpath(path)
    tried: set[str] = set()
    for candidate in (path, real):
        found = _walk_up(s, candidate, tried)
        if found is not None:
            return found
    # A Dev root reached through a link: projects under it are kept by the link's path.
    root = s.call("daemon.status").get("dev_root")
    if not isinstance(root, str):
        return None
    root_real = os.path.realpath(root)
    if root_real != root and (real == root_real or real.startswith(root_real + os.sep)):
        return _walk_up(s, root + real[len(root_real) :], tried)
    return None


def _walk_up(s: Session, path: str, tried: set[str]) -> dict[str, Any] | None:
    for folder in _ancestors(path):
        if folder in tried:
            continue
        tried.add(folder)
        try:
            project: dict[str, Any] = s.call("projects.get", {"project": folder})
        except errors.RemoteError as e:
            if e.kind != "not_found":
                raise
            continue
        return project
    return None


def _ancestors(path: str) -> Iterator[str]:
    """`path`, its parent, and so on, short of the filesystem root (never a project)."""
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return
        yield path
        path = parent
