"""What a project is, from its files: description, languages, activity, origin and identity.

`analyze` reads a candidate folder plus the `GitInfo` that `gitmeta` read and never raises: the
first problem goes to `ProjectFacts.error`. `fingerprint` is the cheap check the scanner runs
first, to skip `analyze` for a project where nothing it reads has changed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tomllib
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from daemon.domain.projects import gitmeta
from daemon.domain.projects.model import (
    Candidate,
    GitInfo,
    OriginType,
    Ownership,
    ProjectFacts,
    Remote,
    Status,
)
from daemon.domain.projects.readme import README_MAX_BYTES, first_paragraph, readme_files
from daemon.platform import untrusted
from daemon.store.clock import iso

DESCRIPTION_MAX_CHARS = 200
ACTIVE_DAYS = 30
ON_HOLD_DAYS = 180
WALK_MAX_DEPTH = 3  # folders this deep below the root are listed, deeper ones are not
WALK_MAX_ENTRIES = 2_000
# Bigger files are bundles, dumps or generated code: they would drown what was written by hand.
SOURCE_MAX_BYTES = 10 * 1024 * 1024
MANIFEST_MAX_BYTES = 1024 * 1024
GIT_DESCRIPTION_MAX_BYTES = 4096  # one line by design; more would be cut at 200 chars anyway
FINGERPRINT_VERSION = b"fp1"  # bump when the fingerprint's inputs change

GIT_PLACEHOLDER = "Unnamed repository; edit this file 'description' to name the repository."
ARCHIVE_MARKERS = frozenset({"ARCHIVED", ".archived"})
MANIFEST_DESCRIPTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("package.json", ("description",)),
    ("pyproject.toml", ("project", "description")),
    ("Cargo.toml", ("package", "description")),
)
# Dot-folders are pruned too (tool state, editor settings, caches): none holds the project's code.
PRUNED_NAMES = frozenset(
    {"node_modules", "venv", "env", "target", "build", "dist", "__pycache__", "vendor"}
    | {"Pods", "coverage"}
)
MINIFIED_SUFFIXES = (".min.js", ".min.css")  # bundles checked in beside the source
_LANGUAGE_TABLE = """
Python: py pyi; JavaScript: js mjs cjs jsx; TypeScript: ts tsx mts cts; Go: go; Rust: rs
Java: java; Kotlin: kt kts; C: c h; C++: cc cpp cxx hh hpp hxx; C#: cs; F#: fs; Ruby: rb rake
PHP: php; Swift: swift; Objective-C: m; Shell: sh bash zsh fish; PowerShell: ps1; HTML: html htm
CSS: css; SCSS: scss sass; Less: less; Vue: vue; Svelte: svelte; Astro: astro; Dart: dart
Elixir: ex exs; Erlang: erl; Lua: lua; SQL: sql; Scala: scala; Clojure: clj cljs cljc
Haskell: hs; OCaml: ml mli; R: r; Julia: jl; Zig: zig; Nim: nim; Perl: pl pm; Groovy: groovy
HCL: tf; Solidity: sol; Jupyter Notebook: ipynb
"""
LANGUAGES: dict[str, str] = {  # lowercased extension → language
    f".{extension}": language.strip()
    for item in _LANGUAGE_TABLE.replace("\n", ";").split(";")
    if item.strip()
    for language, _, extensions in [item.partition(":")]
    for extension in extensions.split()
}


def analyze(
    candidate: Candidate,
    git: GitInfo | None,
    *,
    now: datetime,
    own_handles: Sequence[str] = (),
) -> ProjectFacts:
    """Facts about one project from its files; never raises (see `ProjectFacts.error`)."""
    try:
        return _analyze(candidate, git, now, own_handles)
    except Exception as exc:  # a last guard: one odd project must not stop a scan
        # An empty fingerprint never matches, so the next scan tries this project again.
        return _facts(candidate, git, fingerprint="", error=_short(f"analyze: {exc!r}"))


def fingerprint(path: str, git: GitInfo | None) -> str:
    """A short hash of the stats of everything `analyze` depends on; no file is read.

    Of `git` only git_dir, common_dir and head_ref are used, so a GitInfo with just those is
    enough. The root is listed once (not walked) so a README of any spelling is covered; a
    project without git also stats its root entries, since their newest mtime is its
    last_worked_on. Changes deeper in the tree (languages) wait for something here to change.
    """
    parts: list[object] = [FINGERPRINT_VERSION, os.fsencode(path), _stat(path, size=False)]
    if git is not None:
        git_files = ("HEAD", "logs/HEAD", "index")
        parts += [_stat(os.path.join(git.git_dir, name)) for name in git_files]
        # config holds the remotes (origin_type), description is the chain's last source,
        # reftable/tables.list changes with every ref update in a reftable repository
        common_files = ["packed-refs", "config", "description", "reftable/tables.list"]
        common_files += [git.head_ref] if git.head_ref else []
        parts += [_stat(os.path.join(git.common_dir, name)) for name in common_files]
    names = _listdir(path)
    files = [os.path.join(path, name) for name in names if name in _DESCRIBING_FILES]
    files += readme_files(path, names)
    parts += [(os.fsencode(name), _stat(name)) for name in sorted(files)]
    if git is None:
        parts.append(max((_stat(os.path.join(path, n), follow=False) for n in names), default=()))
    return hashlib.blake2b(repr(parts).encode(), digest_size=10).hexdigest()


def identity(candidate: Candidate, git: GitInfo | None) -> str:
    """Path-independent identity, to recognise a moved or renamed project.

    The reflog's first line names the first commit or the clone and its time: unique per
    checkout, and it moves with the folder. Without one, the folder's inode does (within a
    file system). A copied folder keeps the reflog, so the scanner must expect duplicates.
    """
    first = git.reflog.first_line.rstrip("\r\n") if git and git.reflog.first_line else None
    if first:
        return "reflog:" + hashlib.sha256(first.encode("utf-8", "surrogateescape")).hexdigest()
    return f"inode:{candidate.device}:{candidate.inode}"


def own_handles_of(git: GitInfo | None, own_handles: Iterable[str] = ()) -> set[str]:
    """The user's account names, lowercased: configured handles plus git's user.name and
    the local part of user.email (for GitHub's noreply address, the login inside it)."""
    handles = {handle.strip().lower() for handle in own_handles}
    if git is not None and git.user_name:
        handles.add(git.user_name.strip().lower())
    if git is not None and git.user_email and "@" in git.user_email:
        local, _, domain = git.user_email.strip().lower().rpartition("@")
        handles.add(local)
        if domain == "users.noreply.github.com":  # "<id>+<login>@users.noreply.github.com"
            handles.add(local.rpartition("+")[2])
    handles.discard("")
    return handles


def origin_type(git: GitInfo | None, handles: set[str]) -> OriginType:
    if git is None or git.reflog.first_is_initial_commit or not git.remotes:
        return "created"
    origin = _origin(git.remotes)
    if not _owned(origin, handles):
        return "cloned"
    elsewhere = any(r is not origin and r.owner and not _owned(r, handles) for r in git.remotes)
    return "forked" if elsewhere else "created"


def ownership(kind: OriginType, git: GitInfo | None) -> Ownership:
    if kind == "created":
        return "mine"
    email = (git.user_email or "").strip().lower() if git is not None else ""
    if git is None or not email:
        return "exploring"
    authors = {author.strip().lower() for author in git.reflog.commits_by}
    return "customized-fork" if email in authors else "exploring"


def status(last_worked_on: str | None, *, archived: bool, now: datetime) -> Status:
    """Archived by marker or age. Unknown activity is on-hold: calling it active would keep a
    project we know nothing about at the top, calling it archived would hide it."""
    if archived:
        return "archived"
    try:
        when = datetime.fromisoformat(last_worked_on) if last_worked_on else None
    except ValueError:
        when = None
    if when is None:
        return "on-hold"
    days = (_aware(now) - _aware(when)).total_seconds() / 86_400
    return "active" if days <= ACTIVE_DAYS else "on-hold" if days <= ON_HOLD_DAYS else "archived"


def languages(path: str) -> dict[str, int]:
    """Bytes per language, largest first, from a breadth-first walk bounded in depth and
    entries (breadth-first so the budget goes to the top levels, which say the most)."""
    totals: dict[str, int] = {}
    queue: deque[tuple[str, int]] = deque([(path, 0)])
    budget = WALK_MAX_ENTRIES
    while queue and budget > 0:
        folder, depth = queue.popleft()
        try:
            with os.scandir(folder) as listing:
                entries = list(itertools.islice(listing, budget))
        except OSError:
            continue  # unreadable subfolders (docker volumes, …) are common and not worth an error
        budget -= len(entries)
        if depth and any(entry.name == "pyvenv.cfg" for entry in entries):
            continue  # a virtualenv, whatever its name
        for entry in entries:
            try:
                _count(entry, depth, queue, totals)
            except OSError:
                continue  # vanished or unreadable: count what can be counted
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def truncate(text: str, limit: int = DESCRIPTION_MAX_CHARS) -> str:
    """`text` cut at a word boundary with "…" so the result is at most `limit` chars."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = head.rfind(" ")
    head = head[:space] if space > limit // 2 else head[: limit - 1]
    return head.rstrip(" ,;:-\u2013\u2014") + "…"  # no dangling punctuation or dashes


_DESCRIBING_FILES = frozenset(name for name, _ in MANIFEST_DESCRIPTIONS)


def _analyze(
    candidate: Candidate, git: GitInfo | None, now: datetime, own_handles: Sequence[str]
) -> ProjectFacts:
    problems: list[str] = []
    path = candidate.path
    try:
        with os.scandir(path) as listing:
            entries = list(listing)
    except OSError as exc:
        entries = []
        problems.append(_problem("root", exc))
    files = {entry.name for entry in entries if _is_file(entry)}
    bare = git is not None and git.kind == "bare"  # no work tree: nothing to describe or count
    description = None if bare else _description(path, files, problems)
    if description is None and git is not None:
        description = _git_description(git.common_dir, problems)
    if git is None and (why := gitmeta.refusal(path)) is not None:
        problems.append(f".git: {why}")  # read as a folder without git
    last = _last_worked_on(entries, git)
    archived = any(entry.name in ARCHIVE_MARKERS for entry in entries)
    kind = origin_type(git, own_handles_of(git, own_handles))
    return _facts(
        candidate,
        git,
        description=truncate(description) if description else None,
        languages={} if bare else languages(path),
        last_worked_on=last,
        status=status(last, archived=archived, now=now),
        origin_type=kind,
        ownership=ownership(kind, git),
        archived_marker=archived,
        fingerprint=fingerprint(path, git),
        error=problems[0] if problems else None,
    )


def _facts(candidate: Candidate, git: GitInfo | None, **fields: Any) -> ProjectFacts:
    """ProjectFacts with what comes straight from the candidate and git filled in."""
    defaults: dict[str, Any] = {
        "description": None,
        "languages": {},
        "last_worked_on": None,
        "status": "on-hold",
        "origin_type": "created",
        "ownership": "mine",
        "archived_marker": False,
    }
    remotes = git.remotes if git is not None else []
    return ProjectFacts(
        path=candidate.path,
        # A display name: a non-UTF-8 folder name would not survive JSON, the path stays exact.
        name=_printable(os.path.basename(candidate.path.rstrip(os.sep)) or candidate.path),
        root=candidate.root,
        vcs="git" if git is not None else "none",
        git=git,
        repository_url=_origin(remotes).url if remotes else None,
        manifests=list(candidate.manifests),
        device=candidate.device,
        inode=candidate.inode,
        identity=identity(candidate, git),
        **(defaults | fields),
    )


def _description(path: str, files: set[str], problems: list[str]) -> str | None:
    """package.json → pyproject.toml → Cargo.toml → README → .github/README (git's is last)."""
    for name, keys in MANIFEST_DESCRIPTIONS:
        location = os.path.join(path, name)
        if name in files and (text := _manifest_description(path, location, keys, problems)):
            return text
    for location in readme_files(path, files):
        try:
            text = _read_text(location, path, README_MAX_BYTES)
        except OSError as exc:
            problems.append(_problem(os.path.basename(location), exc))
            continue
        if paragraph := first_paragraph(text, rst=location.lower().endswith(".rst")):
            return paragraph
    return None


def _manifest_description(
    path: str, location: str, keys: tuple[str, ...], problems: list[str]
) -> str | None:
    name = os.path.basename(location)
    try:
        text = _read_text(location, path, MANIFEST_MAX_BYTES)
        value: Any = json.loads(text) if name.endswith(".json") else tomllib.loads(text)
    except OSError as exc:
        problems.append(_problem(name, exc))
        return None
    except (ValueError, RecursionError):  # bad JSON/TOML (both are ValueErrors), absurd nesting
        problems.append(f"{name}: not valid {'JSON' if name.endswith('.json') else 'TOML'}")
        return None
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return _collapse(value) if isinstance(value, str) else None


def _git_description(common_dir: str, problems: list[str]) -> str | None:
    try:
        location = os.path.join(common_dir, "description")
        text = _collapse(_read_text(location, common_dir, GIT_DESCRIPTION_MAX_BYTES))
    except FileNotFoundError:
        return None
    except OSError as exc:
        problems.append(_problem(".git/description", exc))
        return None
    if "\x00" in text:  # a binary file (or a huge sparse one) describes nothing
        return None
    return None if not text or text == _collapse(GIT_PLACEHOLDER) else text


def _last_worked_on(entries: list[os.DirEntry[str]], git: GitInfo | None) -> str | None:
    """The reflog's newest entry → branch ref's or packed-refs' mtime → newest root entry."""
    if git is not None:
        if git.reflog.last_time:
            return git.reflog.last_time
        refs = [*([git.head_ref] if git.head_ref else []), "packed-refs"]
        for ref in refs:
            try:  # a link out of the git dir would give some other file's time
                inside = untrusted.resolve_within(os.path.join(git.common_dir, ref), git.common_dir)
                return _iso_mtime(os.stat(inside).st_mtime)
            except OSError:
                continue
    newest: float | None = None
    for entry in entries:
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        newest = mtime if newest is None else max(newest, mtime)
    return _iso_mtime(newest) if newest is not None else None


def _count(
    entry: os.DirEntry[str], depth: int, queue: deque[tuple[str, int]], totals: dict[str, int]
) -> None:
    """One walk entry: queue a folder worth entering, add a source file's size."""
    name = entry.name
    if entry.is_dir(follow_symlinks=False):  # never follow symlinks: loops, shared trees
        if depth < WALK_MAX_DEPTH and name not in PRUNED_NAMES and not name.startswith("."):
            queue.append((entry.path, depth + 1))
        return
    lower = name.lower()
    language = LANGUAGES.get(os.path.splitext(lower)[1])
    if (
        language is None
        or lower.endswith(MINIFIED_SUFFIXES)
        or not entry.is_file(follow_symlinks=False)
    ):
        return
    size = entry.stat(follow_symlinks=False).st_size
    if size <= SOURCE_MAX_BYTES:
        totals[language] = totals.get(language, 0) + size


def _origin(remotes: list[Remote]) -> Remote:
    return next((remote for remote in remotes if remote.name == "origin"), remotes[0])


def _owned(remote: Remote, handles: set[str]) -> bool:
    return remote.owner is not None and remote.owner.lower() in handles


def _stat(location: str, *, size: bool = True, follow: bool = True) -> tuple[int, ...]:
    """(mtime_ns, size) of a file; () when it is missing or cannot be seen."""
    try:
        st = os.stat(location, follow_symlinks=follow)
    except (OSError, ValueError):
        return ()
    return (st.st_mtime_ns, st.st_size) if size else (st.st_mtime_ns,)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()  # follows symlinks: README.md → docs/README.md is common
    except OSError:
        return False


def _read_text(location: str, within: str, limit: int) -> str:
    """The first `limit` bytes of a file inside `within`. A link within it (README.md →
    docs/README.md) is followed; one that leads out is refused: it could be any file."""
    text = untrusted.read_text(location, within=within, max_bytes=limit, whole=False)
    return text.lstrip("\ufeff")


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _iso_mtime(mtime: float) -> str:
    return iso(datetime.fromtimestamp(mtime, UTC))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _printable(text: str) -> str:
    """Undecodable bytes of a file name (surrogate escapes) as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _problem(where: str, exc: OSError) -> str:
    return _short(f"{_printable(where)}: {exc.strerror or type(exc).__name__}")


def _short(text: str) -> str:
    return _printable(truncate(text, 160))
