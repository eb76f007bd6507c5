"""A bounded walk of one project's files for the memory: the instruction files nested in it,
the source files to chunk. It prunes what the scanner prunes (dependencies, virtualenvs, build
output, dot-folders), what .gitignore files ignore (each applies below its own folder; the
last matching line wins, `!` re-includes), and stops at a depth and an entry budget. It never
follows a link to a folder and never opens a file but the .gitignore files (through
daemon.platform.untrusted).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from daemon.domain.quality.walk import PRUNED
from daemon.platform import untrusted

from .globs import compile_glob

GITIGNORE_MAX_BYTES = 64 * 1024
GITIGNORE_MAX_RULES = 1000


@dataclass(frozen=True, slots=True)
class _Rule:
    base: str  # the folder holding the .gitignore, relative ("" for the root)
    pattern: str
    negate: bool
    dir_only: bool


@dataclass(slots=True)
class Ignore:
    rules: list[_Rule] = field(default_factory=list)

    def add_file(self, root: str, rel_dir: str) -> None:
        path = (
            os.path.join(root, rel_dir, ".gitignore")
            if rel_dir
            else os.path.join(root, ".gitignore")
        )
        try:
            text = untrusted.read_text(
                path, within=root, max_bytes=GITIGNORE_MAX_BYTES, whole=False
            )
        except (OSError, ValueError):
            return
        for raw in text.splitlines():
            line = raw.rstrip()
            if not line or line.startswith("#") or len(self.rules) >= GITIGNORE_MAX_RULES:
                continue
            negate = line.startswith("!")
            pattern = line[1:] if negate else line
            self.rules.append(_Rule(rel_dir, pattern.rstrip("/"), negate, pattern.endswith("/")))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        verdict = False
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.base and not rel.startswith(rule.base + "/"):
                continue
            below = rel[len(rule.base) + 1 :] if rule.base else rel
            anchored = "/" in rule.pattern.strip("/")
            compiled = compile_glob(("/" if anchored else "") + rule.pattern)
            if compiled is not None and compiled.match(below):
                verdict = not rule.negate
        return verdict


@dataclass(slots=True)
class Walked:
    files: list[str]  # relative, "/"-separated
    truncated: bool  # the depth or entry budget cut the walk short
    folders: int


def _visit(
    entry: os.DirEntry[str], rel_dir: str, ignore: Ignore, want: Callable[[str, str], bool]
) -> tuple[str, bool] | None:
    """(relative path, is a wanted file) for a folder to enter or a file to keep; None to
    leave it."""
    rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
    try:
        is_dir = entry.is_dir(follow_symlinks=False)
        is_file = not is_dir and entry.is_file(follow_symlinks=False)
    except OSError:
        return None
    if is_dir:
        if entry.name in PRUNED or entry.name.startswith("."):
            return None
        return None if ignore.rules and ignore.ignored(rel, True) else (rel, False)
    if not is_file or not want(entry.name, rel):
        return None
    return None if ignore.rules and ignore.ignored(rel, False) else (rel, True)


def walk(
    root: str,
    *,
    want: Callable[[str, str], bool],
    max_depth: int,
    max_entries: int,
    gitignore: bool = True,
) -> Walked:
    """Files below `root` for which `want(name, rel)` holds, breadth-first."""
    ignore = Ignore()
    files: list[str] = []
    queue: deque[tuple[str, int]] = deque([("", 0)])
    budget = max_entries
    folders = 0
    truncated = False
    while queue:
        if budget <= 0:
            truncated = True
            break
        rel_dir, depth = queue.popleft()
        folder = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(folder) as listing:
                entries = list(itertools.islice(listing, budget))
        except OSError:
            continue
        folders += 1
        budget -= len(entries)
        names = {e.name for e in entries}
        if depth and "pyvenv.cfg" in names:
            continue  # a virtualenv, whatever its name
        if gitignore and ".gitignore" in names:
            ignore.add_file(root, rel_dir)
        for entry in entries:
            child = _visit(entry, rel_dir, ignore, want)
            if child is None:
                continue
            if child[1]:
                files.append(child[0])
            elif depth < max_depth:
                queue.append((child[0], depth + 1))
            else:
                truncated = True
    return Walked(files=sorted(files), truncated=truncated, folders=folders)
