"""A git repository read from its files: HEAD, refs, config, remotes, the HEAD reflog.

This runs for every project on each scan, so it never spawns git (except for reftable repos,
whose refs are binary) and never walks objects: a handful of small reads per repository.
Nothing here raises on a bad repository; the first problem is recorded in `GitInfo.error`.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import msgspec

from daemon.clock import iso
from daemon.projects.model import GitInfo, GitKind, ReflogSummary, Remote

ConfigEntry = tuple[str, str | None, str, str]  # (section, subsection, name, value)

_REFLOG_WHOLE = 1 << 20  # read a reflog this size or smaller whole …
_REFLOG_HALF = 512 << 10  # … else only its first and last halves of that
_GIT_TIMEOUT = 5.0
_INCLUDE_DEPTH = 10  # git's own limit is 10 too
_HOSTED_SCHEMES = frozenset({"https", "http", "ssh", "git", "git+ssh", "ssh+git"})
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_SECTION = re.compile(r"[A-Za-z0-9.-]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_HELPER = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)::(.*)", re.DOTALL)
_SCP = re.compile(r"(?:.*@)?([^:/@]+):(.*)", re.DOTALL)  # [user@]host:path (user may hold ':')
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # sha1, or sha256 repos
_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", '"': '"', "\\": "\\"}
# Where a repository lives must come from the folder, not from the daemon's own environment.
_GIT_LOCATION_VARS = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"}
)


class _Problems:
    """Keeps the first problem only: one short line is what the UI shows."""

    def __init__(self) -> None:
        self.first: str | None = None

    def note(self, what: str, problem: BaseException | str) -> None:
        if self.first is None:
            detail = problem if isinstance(problem, str) else type(problem).__name__
            self.first = f"{what}: {detail}"[:200]


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read(path: str, problems: _Problems, what: str, *, required: bool = False) -> str | None:
    """A file's text, or None with the problem noted; most files may legitimately be absent."""
    try:
        return _read_text(path)
    except FileNotFoundError as exc:
        if required:
            problems.note(what, exc)
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.note(what, exc)
        return None


# --- locating the repository ------------------------------------------------------------------


def _gitdir_of_file(dotgit: str) -> str | None:
    """The target of a `.git` file (`gitdir: <path>`, relative to the folder holding it)."""
    try:
        with open(dotgit, encoding="utf-8") as f:
            line = f.readline(4096).strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not line.startswith("gitdir:") or not line[7:].strip():
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
        entries, _ = parse_config(_read_text(os.path.join(folder, "config")))
    except (OSError, UnicodeDecodeError):
        return True
    return _last(entries, "core", None, "bare", "true").lower() not in {"false", "no", "off", "0"}


def locate(folder: str) -> tuple[GitKind, str, str] | None:
    """(kind, git_dir, common_dir) for a project folder, or None when it is not git."""
    folder = os.path.abspath(folder)
    dotgit = os.path.join(folder, ".git")
    try:
        mode = os.stat(dotgit).st_mode
    except OSError:
        return ("bare", folder, folder) if _is_bare(folder) else None
    if stat.S_ISDIR(mode):
        return ("worktree", dotgit, dotgit)
    if not stat.S_ISREG(mode):
        return None
    git_dir = _gitdir_of_file(dotgit)
    if git_dir is None:
        return None
    try:
        common = _read_text(os.path.join(git_dir, "commondir")).strip()
    except (OSError, UnicodeDecodeError):
        # No commondir: a submodule or --separate-git-dir, a whole repository of its own.
        # Unreadable yet plainly a linked worktree: its common dir is two levels up.
        if os.path.basename(os.path.dirname(git_dir)) != "worktrees":
            return ("worktree", git_dir, git_dir)
        common = "../.."
    return ("linked-worktree", git_dir, os.path.normpath(os.path.join(git_dir, common)))


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


# --- config -----------------------------------------------------------------------------------


class _ConfigError(ValueError):
    pass


def _header(text: str, i: int) -> tuple[tuple[str, str | None], int]:
    """`[section]`, `[section "sub"]` or the old `[section.sub]`; `i` is just past `[`."""
    m = _SECTION.match(text, i)
    if m is None:
        raise _ConfigError("bad section header")
    name, i = m.group(), m.end()
    if text.startswith("]", i):
        section, dot, sub = name.partition(".")
        # The old dotted form is case-insensitive throughout.
        return (section.lower(), sub.lower() if dot else None), i + 1
    while text.startswith((" ", "\t"), i):
        i += 1
    if not text.startswith('"', i):
        raise _ConfigError("bad section header")
    i += 1
    chars: list[str] = []
    while i < len(text) and text[i] not in '"\n':
        if text[i] == "\\":
            i += 1
            if i >= len(text) or text[i] == "\n":
                raise _ConfigError("bad section header")
        chars.append(text[i])
        i += 1
    if not text.startswith('"]', i):
        raise _ConfigError("bad section header")
    return (name.lower(), "".join(chars)), i + 2


def _value(text: str, i: int) -> tuple[str, int]:
    """A value after `=`: quotes, escapes, `\\` line continuation, trailing comment/space."""
    out: list[str] = []
    keep = 0  # unquoted trailing whitespace is dropped: keep out[:keep]
    quoted = False
    while i < len(text):
        c = text[i]
        i += 1
        if c == "\n":
            if quoted:
                raise _ConfigError("unterminated quote")
            break
        if c in "#;" and not quoted:
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
            break
        if c == "\\":
            escaped = text[i] if i < len(text) else ""
            i += 1
            if escaped == "\n":
                continue
            if escaped not in _ESCAPES:
                raise _ConfigError("bad escape")
            out.append(_ESCAPES[escaped])
            keep = len(out)
        elif c == '"':
            quoted = not quoted
            keep = len(out)
        elif c in " \t" and not quoted:
            if out:
                out.append(c)
        else:
            out.append(c)
            keep = len(out)
    if quoted:
        raise _ConfigError("unterminated quote")
    return "".join(out[:keep]), i


def parse_config(text: str) -> tuple[list[ConfigEntry], str | None]:
    """Git's config format. Section and key names are lower-cased, subsections kept as written.

    On a malformed line it stops and returns what came before with a short message: git itself
    refuses such a file, but the lines before are still the user's settings.
    """
    text = text.replace("\r\n", "\n")
    entries: list[ConfigEntry] = []
    section: tuple[str, str | None] | None = None
    i = 0
    try:
        while i < len(text):
            c = text[i]
            if c in " \t\n\ufeff":
                i += 1
            elif c in "#;":
                end = text.find("\n", i)
                i = len(text) if end < 0 else end + 1
            elif c == "[":
                section, i = _header(text, i + 1)
            else:
                m = _KEY.match(text, i)
                if m is None or section is None:
                    raise _ConfigError("bad line")
                i = m.end()
                while i < len(text) and text[i] in " \t":
                    i += 1
                if i < len(text) and text[i] == "=":
                    value, i = _value(text, i + 1)
                elif i >= len(text) or text[i] in "\n#;":
                    value = "true"  # a bare key is a boolean true
                    i = _value(text, i)[1]
                else:
                    raise _ConfigError("bad line")
                entries.append((section[0], section[1], m.group().lower(), value))
    except _ConfigError as exc:
        return entries, f"line {text.count(chr(10), 0, i) + 1}: {exc}"
    return entries, None


def _last(
    entries: Iterable[ConfigEntry], section: str, sub: str | None, name: str, default: str
) -> str:
    found = default
    for s, ss, n, v in entries:
        if s == section and ss == sub and n == name:
            found = v
    return found


def _glob(pattern: str, icase: bool) -> re.Pattern[str]:
    """Git's wildmatch as includeIf uses it: `**/` crosses folders, `*` and `?` do not."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        else:
            parts.append({"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i])))
            i += 1
    return re.compile("".join(parts), re.IGNORECASE if icase else 0)


def _gitdir_matches(condition: str, git_dir: str, config_dir: str, home: str | None) -> bool:
    icase = condition.startswith("gitdir/i:")
    pattern = condition.split(":", 1)[1]
    if pattern.startswith("~/"):
        if home is None:
            return False
        pattern = os.path.join(home, pattern[2:])
    elif pattern.startswith("./"):
        pattern = os.path.join(config_dir, pattern[2:])
    elif not os.path.isabs(pattern):
        pattern = "**/" + pattern
    if pattern.endswith("/"):
        pattern += "**"
    regex = _glob(pattern, icase)
    return any(regex.fullmatch(p) for p in {git_dir, os.path.realpath(git_dir)})


class _ConfigReader:
    """Reads config files for one repository, following include.path and includeIf gitdir:."""

    def __init__(self, git_dir: str, home: str | None, problems: _Problems) -> None:
        self.git_dir, self.home, self.problems = git_dir, home, problems

    def read(
        self, path: str, what: str, *, required: bool = False, depth: int = 0
    ) -> list[ConfigEntry]:
        text = _read(path, self.problems, what, required=required)
        if text is None:
            return []
        entries, error = parse_config(text)
        if error is not None:
            self.problems.note(what, error)
        if depth >= _INCLUDE_DEPTH:
            return entries
        out: list[ConfigEntry] = []
        for entry in entries:
            out.append(entry)
            included = self._include_path(entry, os.path.dirname(path))
            if included is not None:
                out.extend(self.read(included, what, depth=depth + 1))
        return out

    def _include_path(self, entry: ConfigEntry, config_dir: str) -> str | None:
        section, sub, name, value = entry
        if name != "path" or not value:
            return None
        if section == "includeif":
            # onbranch:/hasconfig: are left out: they would need refs and remotes first.
            if sub is None or not sub.startswith(("gitdir:", "gitdir/i:")):
                return None
            if not _gitdir_matches(sub, self.git_dir, config_dir, self.home):
                return None
        elif section != "include":
            return None
        if value.startswith("~/"):
            return None if self.home is None else os.path.join(self.home, value[2:])
        return os.path.join(config_dir, value)


def _global_config_paths(env: Mapping[str, str]) -> list[str]:
    """The files git reads as --global, lowest priority first."""
    if env.get("GIT_CONFIG_GLOBAL"):
        return [env["GIT_CONFIG_GLOBAL"]]
    home = env.get("HOME") or None
    xdg = env.get("XDG_CONFIG_HOME") or (os.path.join(home, ".config") if home else None)
    paths = [os.path.join(xdg, "git", "config")] if xdg else []
    return paths + ([os.path.join(home, ".gitconfig")] if home else [])


# --- remotes ----------------------------------------------------------------------------------


def _strip_userinfo(url: str) -> str:
    """`scheme://user:token@host/…` → `scheme://host/…`."""
    m = _SCHEME.fullmatch(url)
    if m is None:
        return url
    rest = m.group(2)
    end = min((p for p in (rest.find(c) for c in "/?#") if p >= 0), default=len(rest))
    return f"{m.group(1)}://{rest[:end].rpartition('@')[2]}{rest[end:]}"


def _hosted(host: str, path: str, port: str = "") -> Remote:
    segments = [s for s in path.strip("/").removesuffix(".git").split("/") if s]
    host = host.lower()
    where = f"{host}:{port}" if port not in {"", "80", "443"} else host
    return Remote(
        name="",
        url="/".join([f"https://{where}", *segments]),
        owner=segments[0] if len(segments) >= 2 else None,  # one segment is a repo, not owner
        host=host,
    )


def normalise_remote(url: str, insteadof: Mapping[str, str] | None = None) -> Remote:
    """A remote URL as stored: insteadOf applied, credentials gone, https://host/owner/repo.

    `insteadof` maps a prefix to its replacement (git's `url.<base>.insteadOf = <prefix>`); the
    longest matching prefix wins. Local paths and file:// URLs stay as given. `name` is left
    empty for the caller.
    """
    url = url.strip()
    rules = insteadof or {}
    prefixes = [p for p in rules if p and url.startswith(p)]
    if prefixes:
        longest = max(prefixes, key=len)
        url = rules[longest] + url[len(longest) :]
    if m := _HELPER.fullmatch(url):
        # A remote helper (`transport::address`): kept, minus any credentials inside.
        return Remote(name="", url=f"{m.group(1)}::{_strip_userinfo(m.group(2))}")
    if m := _SCHEME.fullmatch(url):
        scheme, rest = m.group(1).lower(), m.group(2)
        if scheme == "file":
            return Remote(name="", url=url)
        end = min((p for p in (rest.find(c) for c in "/?#") if p >= 0), default=len(rest))
        hostport = rest[:end].rpartition("@")[2]
        path = re.split(r"[?#]", rest[end:], maxsplit=1)[0]  # a query may carry a token too
        if hostport.startswith("["):  # an IPv6 literal
            host, _, port = hostport.partition("]")
            host, port = host + "]", port.removeprefix(":")
        else:
            host, _, port = hostport.partition(":")
        if scheme not in _HOSTED_SCHEMES or not host:
            return Remote(name="", url=f"{scheme}://{hostport}{path}", host=host.lower() or None)
        # An ssh or git:// port says nothing about where the web page is.
        return _hosted(host, path, port if scheme in {"http", "https"} else "")
    colon, slash = url.find(":"), url.find("/")
    drive = colon == 1 and url[2:3] in {"/", "\\"}  # C:\… is a Windows path
    if colon > 0 and (slash < 0 or colon < slash) and not drive and (m := _SCP.fullmatch(url)):
        return _hosted(m.group(1), m.group(2))
    return Remote(name="", url=url)  # a local path


def _remotes(repo: list[ConfigEntry], every: list[ConfigEntry]) -> list[Remote]:
    insteadof = {v: ss for s, ss, n, v in every if s == "url" and ss and n == "insteadof"}
    urls: dict[str, str] = {}
    for section, sub, name, value in repo:
        if section == "remote" and sub is not None and name == "url" and value:
            urls.setdefault(sub, value)  # git fetches from the first url
    return [
        msgspec.structs.replace(normalise_remote(url, insteadof), name=name)
        for name, url in urls.items()
    ]


# --- refs -------------------------------------------------------------------------------------


def _packed_ref(common: str, ref: str, problems: _Problems) -> str | None:
    """`ref` from packed-refs, read line by line: branches sort first, so it stops early."""
    target = " " + ref
    try:
        with open(os.path.join(common, "packed-refs"), encoding="utf-8") as f:
            for raw in f:
                line = raw.rstrip("\n")
                if line.endswith(target) and not line.startswith(("#", "^")):
                    sha = line[: -len(target)]
                    return sha if _SHA.fullmatch(sha) else None
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        problems.note("packed-refs", exc)
    return None


def _resolve(common: str, ref: str, problems: _Problems) -> str | None:
    """The sha a ref points at (loose file, then packed-refs); None for an unborn branch."""
    for _ in range(5):  # symbolic refs chain; git stops at 5 levels as well
        if not ref.startswith("refs/") or ".." in ref:
            return None
        text = _read(os.path.join(common, ref), problems, ref)
        if text is None:
            return _packed_ref(common, ref, problems)
        text = text.strip()
        if not text.startswith("ref:"):
            return text if _SHA.fullmatch(text) else None
        ref = text[4:].strip()
    return None


def _default_branch(common: str, problems: _Problems) -> str | None:
    text = _read(os.path.join(common, "refs/remotes/origin/HEAD"), problems, "origin/HEAD")
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
    folder: str, env: Mapping[str, str], problems: _Problems
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


def _reflog_lines(path: str) -> list[str]:
    """Whole lines of a reflog, at most ~1 MiB of them: its start and its end when bigger."""
    with open(path, "rb") as f:
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


def _reflog(git_dir: str, problems: _Problems) -> ReflogSummary:
    try:
        lines = _reflog_lines(os.path.join(git_dir, "logs", "HEAD"))
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
    """Everything GitInfo holds, from files; None when the folder is not a git repository."""
    found = locate(folder)
    if found is None:
        return None
    kind, git_dir, common = found
    problems = _Problems()
    reader = _ConfigReader(git_dir, env.get("HOME") or None, problems)
    repo = reader.read(os.path.join(common, "config"), "config", required=True)
    if _last(repo, "extensions", None, "worktreeconfig", "false").lower() in {"true", "yes", "1"}:
        repo += reader.read(os.path.join(git_dir, "config.worktree"), "config.worktree")
    every = [e for p in _global_config_paths(env) for e in reader.read(p, p)] + repo

    used_git = _last(repo, "extensions", None, "refstorage", "files").lower() == "reftable"
    head_ref = head_sha = default_branch = None
    if used_git:
        head_ref, head_sha, default_branch = _refs_by_git(os.path.abspath(folder), env, problems)
    else:
        head = _read(os.path.join(git_dir, "HEAD"), problems, "HEAD", required=True)
        if head is not None and head.startswith("ref:"):
            head_ref = head[4:].strip()
            head_sha = _resolve(common, head_ref, problems)
        elif head is not None and _SHA.fullmatch(head.strip()):
            head_sha = head.strip()
        elif head is not None:
            problems.note("HEAD", "unrecognised")
        default_branch = _default_branch(common, problems)

    user_name = _last(every, "user", None, "name", "") or None
    user_email = _last(every, "user", None, "email", "") or None
    return GitInfo(
        kind=kind,
        git_dir=git_dir,
        common_dir=common,
        head_ref=head_ref,
        head_sha=head_sha,
        branch=head_ref.removeprefix("refs/heads/") if head_ref else None,
        detached=head_ref is None and head_sha is not None,
        default_branch=default_branch,
        remotes=_remotes(repo, every),
        user_name=user_name,
        user_email=user_email,
        reflog=_reflog(git_dir, problems),
        used_git_binary=used_git,
        error=problems.first,
    )
