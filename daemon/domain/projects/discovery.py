"""Finding candidate projects under the Dev roots: a bounded walk that looks only at names.

Folders are listed with `os.scandir` from an explicit work list (no recursion). Dependency and
build folders are pruned by name before they are entered, and the walk stops at the first folder
that is a project, so a monorepo is one project and no `node_modules` inside a project is ever
listed. What a project *is* belongs to `gitmeta` and `metadata`: the only file read here is the
first line of a `.git` file, to tell a worktree from a submodule.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from typing import Literal

from daemon.domain.projects.model import Candidate, Discovery, WalkError
from daemon.platform import untrusted

PRUNED_NAMES = frozenset(
    {
        "node_modules",
        ".venv",
        "venv",
        "env",
        "target",
        "build",
        "dist",
        ".git",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".next",
        ".nuxt",
        ".gradle",
        "vendor",
        "Pods",
        ".terraform",
        "coverage",
    }
)
MANIFEST_NAMES = frozenset(
    {
        "package.json",
        "pyproject.toml",
        "setup.py",
        "Cargo.toml",
        "go.mod",
        "pom.xml",
        "build.gradle",
        "build.gradle.kts",
        "Gemfile",
        "composer.json",
        "CMakeLists.txt",
        "deno.json",
        "pubspec.yaml",
        "mix.exs",
    }
)
MANIFEST_SUFFIXES = (".csproj", ".sln")

_GITDIR = b"gitdir:"
_FIRST_LINE_LIMIT = 4096  # a `.git` file is one short line; never read more than this

Reason = Literal["git", "bare", "manifest"]
GitMarker = Literal["git", "submodule"]


class _Listing:
    """What one listing of a folder says, from entry names and d_types only."""

    __slots__ = ("bare_parts", "git", "manifests", "subdirs", "venv")

    def __init__(self) -> None:
        self.git: os.DirEntry[str] | None = None
        self.bare_parts = 0  # HEAD file, objects/ and refs/ seen: 3 means a bare repository
        self.venv = False
        self.manifests: list[str] = []
        self.subdirs: list[tuple[str, bool]] = []  # (name, reached through a symlink)


class _Walk:
    def __init__(self, max_depth: int, follow_symlinks: bool, excluded: frozenset[str]) -> None:
        self.max_depth = max_depth
        self.follow = follow_symlinks
        self.excluded = excluded
        self.candidates: list[Candidate] = []
        self.groups: set[str] = set()
        self.errors: dict[tuple[str, str], WalkError] = {}  # overlapping roots meet one twice
        self.found: set[tuple[int, int]] = set()  # candidates' (st_dev, st_ino), across roots
        self.entered: set[tuple[int, int]] = set()  # folders entered, only when following links

    def root(self, root: str) -> None:
        if root in self.excluded:
            return
        # A heap ordered by (depth, through a symlink, path) instead of a plain stack: the order
        # then never depends on the file system's listing order, each folder is met first at its
        # shallowest depth, and a real path wins over a symlinked alias of the same folder.
        work: list[tuple[int, bool, str]] = [(0, False, root)]
        while work:
            depth, via_link, path = heapq.heappop(work)
            try:
                self.folder(root, depth, via_link, path, work)
            except OSError as exc:  # unreadable, vanished or replaced mid-scan: skip the folder
                self.error(path, exc)

    def folder(
        self, root: str, depth: int, via_link: bool, path: str, work: list[tuple[int, bool, str]]
    ) -> None:
        st: os.stat_result | None = None
        if self.follow:
            # Links can lead back up the tree or twice into one folder: enter each folder once.
            st = os.stat(path)
            key = (st.st_dev, st.st_ino)
            if key in self.entered:
                return
            self.entered.add(key)
        listing = self.scan(path)
        verdict = self.judge(path, listing)
        if verdict == "skip":
            return
        if verdict is not None:
            self.candidate(root, path, verdict, listing.manifests, st)
            return  # stop at a project: whatever is below belongs to it
        self.groups.add(path)
        if depth >= self.max_depth:
            return
        for name, is_link in listing.subdirs:
            child = os.path.join(path, name)
            if child not in self.excluded:
                heapq.heappush(work, (depth + 1, via_link or is_link, child))

    def scan(self, path: str) -> _Listing:
        listing = _Listing()
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                if name == ".git":
                    listing.git = entry
                elif name == "pyvenv.cfg":
                    listing.venv = True
                elif name in MANIFEST_NAMES or name.endswith(MANIFEST_SUFFIXES):
                    if not entry.is_dir(follow_symlinks=False):
                        listing.manifests.append(name)
                elif name == "HEAD":
                    listing.bare_parts += entry.is_file(follow_symlinks=False)
                elif name in ("objects", "refs"):
                    listing.bare_parts += entry.is_dir(follow_symlinks=False)
                if name in PRUNED_NAMES:
                    continue
                if entry.is_symlink():
                    if self.follow and self.links_to_dir(entry):
                        listing.subdirs.append((name, True))
                elif entry.is_dir(follow_symlinks=False):
                    listing.subdirs.append((name, False))
        listing.manifests.sort()
        return listing

    def judge(self, path: str, listing: _Listing) -> Reason | Literal["skip"] | None:
        """The folder's project reason; "skip" to neither report nor enter it; None: a group."""
        if listing.git is not None:
            marker = self.git_marker(path, listing.git)
            if marker == "submodule":
                return "skip"  # part of its superproject, not a project of its own
            if marker == "git":
                return "git"
        if listing.bare_parts == 3:
            return "bare"
        if listing.venv:
            return "skip"  # a virtualenv under a custom name: site-packages is full of manifests
        return "manifest" if listing.manifests else None

    def links_to_dir(self, entry: os.DirEntry[str]) -> bool:
        try:
            return entry.is_dir()  # a dangling link is simply not a folder (no error)
        except OSError as exc:  # a link to itself (ELOOP) and the like: note it, go on
            self.error(entry.path, exc)
            return False

    def git_marker(self, path: str, entry: os.DirEntry[str]) -> GitMarker | None:
        try:
            if entry.is_dir():  # follows a symlinked `.git`: it is still this folder's repository
                return "git"
            if not entry.is_file():
                return None
            head = untrusted.read(entry.path, within=path, max_bytes=_FIRST_LINE_LIMIT, whole=False)
        except untrusted.Outside:
            return "git"  # a project, as a `.git` folder linked out is; gitmeta refuses to read it
        except OSError as exc:
            self.error(entry.path, exc)
            return None
        line = head.split(b"\n", 1)[0]
        if not line.startswith(_GITDIR):
            return None  # not git's pointer file; the folder may still be a manifest project
        gitdir = os.path.normpath(os.path.join(path, os.fsdecode(line[len(_GITDIR) :].strip())))
        return "submodule" if _is_submodule_gitdir(gitdir) else "git"

    def error(self, path: str, exc: OSError) -> None:
        message = exc.strerror or type(exc).__name__
        self.errors[path, message] = WalkError(path=path, error=message)

    def candidate(
        self,
        root: str,
        path: str,
        reason: Reason,
        manifests: list[str],
        st: os.stat_result | None,
    ) -> None:
        # stat, not lstat: only a root can be a symlink when links are not followed, and the
        # identity wanted is the folder's own.
        st = st or os.stat(path)
        key = (st.st_dev, st.st_ino)
        if key in self.found:
            return  # overlapping roots, or two links to one folder: the first path met wins
        self.found.add(key)
        self.candidates.append(
            Candidate(
                path=path,
                root=root,
                reason=reason,
                manifests=manifests,
                device=st.st_dev,
                inode=st.st_ino,
            )
        )


def walk(
    roots: Sequence[str],
    *,
    max_depth: int = 4,
    follow_symlinks: bool = False,
    exclude: Sequence[str] = (),
) -> Discovery:
    """Find the projects under `roots` (each root is depth 0; nothing below `max_depth`).

    Never raises for the file system: a missing root or an unreadable folder becomes a
    `WalkError` and the walk goes on. Results are sorted by path. Roots count in the order
    given: when they overlap, a project is reported under the first one that reaches it.
    """
    walker = _Walk(max_depth, follow_symlinks, frozenset(_normal(p) for p in exclude))
    for root in roots:
        walker.root(_normal(root))
    return Discovery(
        candidates=sorted(walker.candidates, key=lambda c: c.path),
        groups=sorted(walker.groups),
        errors=[walker.errors[key] for key in sorted(walker.errors)],
    )


def _normal(path: str) -> str:
    return os.path.abspath(path)  # abspath also normalises (`..`, `//`, trailing slash)


def _is_submodule_gitdir(gitdir: str) -> bool:
    """True when a `.git` file points into a superproject's `modules/` folder.

    Git keeps a submodule's repository in `<gitdir>/modules/<name>`, and for a superproject's
    linked worktree in `<gitdir>/worktrees/<wt>/modules/<name>`; a worktree of a normal
    repository points into `<gitdir>/worktrees/<wt>` and is a project of its own.
    """
    parts = gitdir.split(os.sep)
    for i, part in enumerate(parts):
        if part.endswith(".git"):
            rest = parts[i + 1 :]
            if rest[:1] == ["worktrees"]:
                rest = rest[2:]
            if rest[:1] == ["modules"]:
                return True
    return False
