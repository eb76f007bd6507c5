"""A git repository read from its files: HEAD, refs, config, remotes, the HEAD reflog.

This runs for every project on each scan, so it never spawns git (except for reftable repos,
whose refs are binary) and never walks objects: a handful of small reads per repository.
Nothing here raises on a bad repository; the first problem is recorded in `GitInfo.error`.

A repository is untrusted input: each of its files is read through `daemon.platform.untrusted`
(non-blocking, regular files only, a cap per kind of file) and only from inside the
repository's own git directory (its common dir for config and refs), which `locate` decides.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from daemon.domain.projects.gitconfig import (
    CONFIG_MAX_BYTES,
    ConfigReader,
    Problems,
    global_config_paths,
    last_value,
    parse_config,
    read_file,
    read_text,
)
from daemon.domain.projects.model import GitInfo, GitKind, ReflogSummary
from daemon.domain.projects.remotes import remotes_from_config
from daemon.platform import untrusted
from daemon.store.clock import iso

# Caps per kind of file (a file over its cap is refused and noted, never read into memory).
POINTER_MAX_BYTES = 4096  # a `.git` file, commondir, a worktree's gitdir: one path
REF_MAX_BYTES = 4096  # HEAD, a loose ref: a sha or "ref: <name>"
PACKED_REFS_MAX_BYTES = 256 * 1024 * 1024  # streamed line by line, never held whole
_PACKED_LINE_MAX = 4096  # "<sha> <ref name>": a longer line is no ref pm-agent needs
_REFLOG_WHOLE = 1 << 20  # read a reflog this size or smaller whole …
_REFLOG_HALF = 512 << 10  # … else only its first and last halves of that
_GIT_TIMEOUT = 5.0
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # sha1, or sha256 repos
# Where a repository lives must come from the folder, not from the daemon's own environment.
_GIT_LOCATION_VARS = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"}
)
_OUTSIDE = "leads outside the project"
_UNLISTED = "a worktree its repository does not list at this folder (git worktree repair)"


class _Found(NamedTuple):
    kind: GitKind
    git_dir: str  # as found (not resolved): what GitInfo stores and the watcher watches
    common_dir: str


# --- locating the repository ------------------------------------------------------------------
#
# Every file of a repository is read only from inside its own git directory. Which folder that
# is, is decided here, from the project folder: its `.git` folder (which must really be inside
# the project, not a link out of it), the folder a `.git` file names when that is inside the
# project too, a linked worktree's folder under its main repository's `worktrees/` when that
# repository names this checkout back (git writes the back-link at `git worktree add`; a
# `.git` file alone can name any folder on the disk), or a submodule's folder under the
# `modules/` of the repository that holds the checkout. Anything else is not read at all.


def _first_line(path: str, within: str) -> str | None:
    """The first line of a small pointer file, stripped; None when absent or unreadable."""
    try:
        data = untrusted.read(path, within=within, max_bytes=POINTER_MAX_BYTES, whole=False)
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].strip()
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return os.fsdecode(line)  # paths are bytes; keep them exact


def _gitdir_of_file(dotgit: str) -> str | None:
    """The target of a `.git` file (`gitdir: <path>`, relative to the folder holding it)."""
    line = _first_line(dotgit, os.path.dirname(dotgit))
    if line is None or not line.startswith("gitdir:") or not line[7:].strip():
        return None
    return os.path.normpath(os.path.join(os.path.dirname(dotgit), line[7:].strip()))


def _is_bare(folder: str) -> bool:
    if not (
        os.path.isfile(os.path.join(folder, "HEAD"))
        and os.path.isdir(os.path.join(folder, "objects"))
        and os.path.isdir(os.path.join(folder, "refs"))
    ):
        return False
    # A checkout's own .git folder has the same layout; its config says core.bare = false.
    try:
        text = read_text(os.path.join(folder, "config"), within=folder, max_bytes=CONFIG_MAX_BYTES)
    except (OSError, UnicodeDecodeError):
        return True
    entries, _ = parse_config(text)
    return last_value(entries, "core", None, "bare", "true").lower() not in {
        "false",
        "no",
        "off",
        "0",
    }


def _linked_worktree(folder: str, git_dir: str) -> str | None:
    """The main repository's git dir when `git_dir` is really a linked worktree of it that
    names `folder` as its checkout; None otherwise."""
    parent = os.path.dirname(git_dir)
    if os.path.basename(parent) != "worktrees":
        return None
    common = os.path.dirname(parent)
    named = _first_line(os.path.join(git_dir, "commondir"), git_dir)
    if named is not None and os.path.realpath(os.path.join(git_dir, named)) != os.path.realpath(
        common
    ):
        return None  # a commondir elsewhere: not the repository the layout says
    back = _first_line(os.path.join(git_dir, "gitdir"), git_dir)
    if back is None:
        return None
    dotgit = os.path.join(folder, ".git")
    if os.path.realpath(os.path.join(git_dir, back)) != os.path.realpath(dotgit):
        return None
    return common


def _in_superproject_modules(folder: str, git_dir: str, depth: int) -> bool:
    """`git_dir` lies under `modules/` of the git dir of the repository holding `folder`."""
    real = os.path.realpath(folder)
    parent = os.path.dirname(real)
    while parent != os.path.dirname(parent):
        if os.path.lexists(os.path.join(parent, ".git")):
            holder = _find(parent, depth + 1)
            if not isinstance(holder, _Found):
                return False
            modules = os.path.join(os.path.realpath(holder.git_dir), "modules")
            return untrusted.is_inside(os.path.realpath(git_dir), modules)
        parent = os.path.dirname(parent)
    return False


def _find(folder: str, depth: int = 0) -> _Found | str | None:
    """Where the repository of `folder` is; a reason when `.git` is there but refused; None
    when the folder is not git."""
    if depth > 8:  # submodules of submodules…: deeper is not worth following
        return None
    folder = os.path.abspath(folder)
    top = os.path.realpath(folder)
    dotgit = os.path.join(folder, ".git")
    try:
        mode = os.stat(dotgit).st_mode
    except OSError:
        return _Found("bare", folder, folder) if _is_bare(folder) else None
    if stat.S_ISDIR(mode):
        inside = untrusted.is_inside(os.path.realpath(dotgit), top)
        return _Found("worktree", dotgit, dotgit) if inside else _OUTSIDE
    if not stat.S_ISREG(mode):
        return None
    if not untrusted.is_inside(os.path.realpath(dotgit), top):
        return _OUTSIDE
    git_dir = _gitdir_of_file(dotgit)
    if git_dir is None:
        return None
    common = _linked_worktree(folder, git_dir)
    if common is not None:
        return _Found("linked-worktree", git_dir, os.path.normpath(common))
    if untrusted.is_inside(os.path.realpath(git_dir), top):
        return _Found("worktree", git_dir, git_dir)  # --separate-git-dir inside the project
    if _in_superproject_modules(folder, git_dir, depth):
        return _Found("worktree", git_dir, git_dir)
    # A moved checkout, or a `.git` naming another checkout's worktree: git refuses it too.
    return _UNLISTED if os.path.basename(os.path.dirname(git_dir)) == "worktrees" else _OUTSIDE


def locate(folder: str) -> tuple[GitKind, str, str] | None:
    """(kind, git_dir, common_dir) for a project folder, or None when it is not git or its
    `.git` leads where pm-agent does not read (see `refusal`)."""
    found = _find(folder)
    return (found.kind, found.git_dir, found.common_dir) if isinstance(found, _Found) else None


def refusal(folder: str) -> str | None:
    """Why the folder's `.git` is not read (it leads outside the project, or to a worktree
    its repository does not list at this folder), or None."""
    found = _find(folder)
    return found if isinstance(found, str) else None


def is_submodule(folder: str) -> bool:
    """A `.git` file pointing under some git dir's `modules/`: part of its superproject."""
    dotgit = os.path.join(os.path.abspath(folder), ".git")
    if not os.path.isfile(dotgit):
        return False
    git_dir = _gitdir_of_file(dotgit)
    if git_dir is None:
        return False
    parent = os.path.dirname(git_dir)
    while parent != os.path.dirname(parent):
        if os.path.basename(parent) == "modules":
            holder = os.path.dirname(parent)
            # `.git/modules` by name; otherwise any git dir (a worktree's, a separate one).
            if os.path.basename(holder) == ".git" or os.path.isfile(os.path.join(holder, "HEAD")):
                return True
        parent = os.path.dirname(parent)
    return False


# --- refs -------------------------------------------------------------------------------------


def _packed_ref(common: str, ref: str, problems: Problems) -> str | None:
    """`ref` from packed-refs, read line by line: branches sort first, so it stops early."""
    target = (" " + ref).encode("utf-8", "surrogateescape")
    try:
        path = os.path.join(common, "packed-refs")
        with untrusted.open_file(path, within=common, max_bytes=PACKED_REFS_MAX_BYTES) as f:
            while raw := f.readline(_PACKED_LINE_MAX):
                line = raw.rstrip(b"\n")
                if line.endswith(target) and not line.startswith((b"#", b"^")):
                    sha = line[: -len(target)].decode("ascii", "replace")
                    return sha if _SHA.fullmatch(sha) else None
    except FileNotFoundError:
        pass
    except OSError as exc:
        problems.note("packed-refs", exc)
    return None


def _resolve(common: str, ref: str, problems: Problems) -> str | None:
    """The sha a ref points at (loose file, then packed-refs); None for an unborn branch."""
    for _ in range(5):  # symbolic refs chain; git stops at 5 levels as well
        if not ref.startswith("refs/") or ".." in ref:
            return None
        path = os.path.join(common, ref)
        text = read_file(path, problems, ref, within=common, max_bytes=REF_MAX_BYTES)
        if text is None:
            return _packed_ref(common, ref, problems)
        text = text.strip()
        if not text.startswith("ref:"):
            return text if _SHA.fullmatch(text) else None
        ref = text[4:].strip()
    return None


def read_head(git_dir: str, problems: Problems) -> str | None:
    """The text of HEAD (a git dir from `locate`), or None with the problem noted."""
    path = os.path.join(git_dir, "HEAD")
    return read_file(path, problems, "HEAD", within=git_dir, max_bytes=REF_MAX_BYTES, required=True)


def _default_branch(common: str, problems: Problems) -> str | None:
    path = os.path.join(common, "refs/remotes/origin/HEAD")
    text = read_file(path, problems, "origin/HEAD", within=common, max_bytes=REF_MAX_BYTES)
    prefix = "ref: refs/remotes/origin/"
    if text is None or not text.startswith(prefix):
        return None
    return text[len(prefix) :].strip() or None


def _run_git(folder: str, env: Mapping[str, str], *args: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in env.items() if k not in _GIT_LOCATION_VARS}
    clean.setdefault("PATH", os.environ.get("PATH", os.defpath))
    done = subprocess.run(
        ["git", "-C", folder, *args],
        env={**clean, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        capture_output=True,
        text=True,
        timeout=_GIT_TIMEOUT,
        check=False,
    )
    return done.returncode, done.stdout.strip(), done.stderr.strip()


def _refs_by_git(
    folder: str, env: Mapping[str, str], problems: Problems
) -> tuple[str | None, str | None, str | None]:
    """(head_ref, head_sha, default_branch) from the git binary, for reftable repositories."""
    try:
        code, head_ref, err = _run_git(folder, env, "symbolic-ref", "-q", "HEAD")
        if code > 1:  # 1 is a detached HEAD; more is git failing
            problems.note("git symbolic-ref", " ".join(err.split()) or f"exit {code}")
            return None, None, None
        _, sha, _ = _run_git(folder, env, "rev-parse", "-q", "--verify", "HEAD")
        _, origin, _ = _run_git(folder, env, "symbolic-ref", "-q", "refs/remotes/origin/HEAD")
    except (OSError, subprocess.SubprocessError) as exc:
        problems.note("git", exc)
        return None, None, None
    default = origin.removeprefix("refs/remotes/origin/") if origin else None
    return (head_ref if code == 0 else None), (sha if _SHA.fullmatch(sha) else None), default


# --- reflog -----------------------------------------------------------------------------------


def _reflog_lines(path: str, git_dir: str) -> list[str]:
    """Whole lines of a reflog, at most ~1 MiB of them: its start and its end when bigger."""
    # Any size is fine: no more than _REFLOG_WHOLE bytes are ever read.
    with untrusted.open_file(path, within=git_dir, max_bytes=sys.maxsize) as f:
        size = os.fstat(f.fileno()).st_size
        if size <= _REFLOG_WHOLE:
            raw = f.read().split(b"\n")
        else:
            head = f.read(_REFLOG_HALF).split(b"\n")[:-1]  # the cut line is dropped
            f.seek(size - _REFLOG_HALF)
            raw = head + f.read().split(b"\n")[1:]
    # The last piece is "" or a line still being written. Names and messages are free text
    # in whatever encoding the user had, so a bad byte is replaced rather than fatal.
    return [line.decode("utf-8", "replace") for line in raw[:-1] if line]


def _entry(line: str) -> tuple[str, int, str] | None:
    """(email, unix time, message) of `<old> <new> Name <email> <time> <tz>\\t<message>`."""
    ident, _, message = line.partition("\t")
    lt, gt = ident.rfind("<"), ident.rfind(">")
    when = ident[gt + 1 :].split()
    if lt < 0 or gt < lt or not when or not when[0].isdigit():
        return None
    return ident[lt + 1 : gt], int(when[0]), message


def _reflog(git_dir: str, problems: Problems) -> ReflogSummary:
    try:
        lines = _reflog_lines(os.path.join(git_dir, "logs", "HEAD"), git_dir)
    except FileNotFoundError:
        return ReflogSummary()  # expired, or never written (bare repositories)
    except OSError as exc:
        problems.note("logs/HEAD", exc)
        return ReflogSummary()
    if not lines:
        return ReflogSummary()
    entries = [e for e in map(_entry, lines) if e is not None]
    first = _entry(lines[0])
    first_message = first[2] if first else ""
    emails = dict.fromkeys(email for email, _, msg in entries if msg.startswith("commit"))
    last_time = None
    # A mangled time is no time, not a failed read.
    with contextlib.suppress(IndexError, OverflowError, OSError, ValueError):
        last_time = iso(datetime.fromtimestamp(entries[-1][1], UTC))
    return ReflogSummary(
        first_line=lines[0],
        first_is_initial_commit=first_message.startswith("commit (initial)"),
        first_is_clone=first_message.startswith("clone:"),
        commits_by=list(emails),
        last_time=last_time,
    )


# --- putting it together ----------------------------------------------------------------------


def read_git(folder: str, *, env: Mapping[str, str] = os.environ) -> GitInfo | None:
    """Everything GitInfo holds, from files; None when the folder is not a git repository or
    its `.git` leads outside the project (`refusal` says so)."""
    found = locate(folder)
    if found is None:
        return None
    kind, git_dir, common = found
    problems = Problems()
    reader = ConfigReader(git_dir, env.get("HOME") or None, problems)
    # The repository's config, and what it includes, only from its own common dir.
    repo = reader.read(os.path.join(common, "config"), "config", within=common, required=True)
    if last_value(repo, "extensions", None, "worktreeconfig", "false").lower() in {
        "true",
        "yes",
        "1",
    }:
        path = os.path.join(git_dir, "config.worktree")
        repo += reader.read(path, "config.worktree", within=git_dir)
    # The user's own files (and their includes) are read wherever they are, with a budget of
    # their own: a repository's include bomb must not leave the user's identity unread.
    users = ConfigReader(git_dir, env.get("HOME") or None, problems)
    every = [e for p in global_config_paths(env) for e in users.read(p, p, within=None)] + repo

    used_git = last_value(repo, "extensions", None, "refstorage", "files").lower() == "reftable"
    head_ref = head_sha = default_branch = None
    if used_git:
        head_ref, head_sha, default_branch = _refs_by_git(os.path.abspath(folder), env, problems)
    else:
        head = read_head(git_dir, problems)
        if head is not None and head.startswith("ref:"):
            head_ref = head[4:].strip()
            head_sha = _resolve(common, head_ref, problems)
        elif head is not None and _SHA.fullmatch(head.strip()):
            head_sha = head.strip()
        elif head is not None:
            problems.note("HEAD", "unrecognised")
        default_branch = _default_branch(common, problems)

    user_name = last_value(every, "user", None, "name", "") or None
    user_email = last_value(every, "user", None, "email", "") or None
    return GitInfo(
        kind=kind,
        git_dir=git_dir,
        common_dir=common,
        head_ref=head_ref,
        head_sha=head_sha,
        branch=head_ref.removeprefix("refs/heads/") if head_ref else None,
        detached=head_ref is None and head_sha is not None,
        default_branch=default_branch,
        remotes=remotes_from_config(repo, every),
        user_name=user_name,
        user_email=user_email,
        reflog=_reflog(git_dir, problems),
        used_git_binary=used_git,
        error=problems.first,
    )
