"""git's config files, read the way git reads them: the repository's, then the global ones,
with include.path and includeIf "gitdir:" followed. Never raises: problems are noted.

A repository's config is untrusted: it and everything it includes must lie inside the
repository's own git directory (an include that leads elsewhere is not followed, and noted).
The user's global config files and their includes are the user's own and may lie anywhere.
Either way every file goes through `daemon.platform.untrusted` (non-blocking, regular files
only, capped), and one repository's config chain has a budget in files and bytes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from daemon.platform import untrusted

ConfigEntry = tuple[str, str | None, str, str]  # (section, subsection, name, value)

_INCLUDE_DEPTH = 10  # git's own limit is 10 too
# Real config files are a few KiB; one with thousands of [branch] sections is still < 1 MiB.
CONFIG_MAX_BYTES = 4 * 1024 * 1024
# For one repository: the global files, the repository's, and every include of either. Enough
# for any real setup; an include bomb (a file including itself twice, ten levels deep) stops.
CONFIG_CHAIN_MAX_FILES = 64
CONFIG_CHAIN_MAX_BYTES = 8 * 1024 * 1024
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_SECTION = re.compile(r"[A-Za-z0-9.-]+")
_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", '"': '"', "\\": "\\"}


class Problems:
    """Keeps the first problem only: one short line is what the UI shows."""

    def __init__(self) -> None:
        self.first: str | None = None

    def note(self, what: str, problem: BaseException | str) -> None:
        if self.first is None:
            if isinstance(problem, str):
                detail = problem
            elif isinstance(problem, untrusted.RefusedFile):
                detail = problem.strerror or type(problem).__name__  # why it was refused
            else:
                detail = type(problem).__name__
            self.first = f"{what}: {detail}"[:200]


def read_text(path: str, *, within: str | None, max_bytes: int) -> str:
    """A file read whole (UTF-8, strict), through `untrusted`. `within=None`: the user's own
    file, which may be a link to anywhere (dotfiles managers link ~/.gitconfig)."""
    if within is None:
        path = os.path.realpath(path)
    return untrusted.read_text(path, within=within, max_bytes=max_bytes, errors="strict")


def read_file(
    path: str,
    problems: Problems,
    what: str,
    *,
    within: str | None,
    max_bytes: int,
    required: bool = False,
) -> str | None:
    """A file's text, or None with the problem noted; most files may legitimately be absent."""
    try:
        return read_text(path, within=within, max_bytes=max_bytes)
    except FileNotFoundError as exc:
        if required:
            problems.note(what, exc)
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.note(what, exc)
        return None


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


def last_value(
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


class ConfigReader:
    """Reads config files for one repository, following include.path and includeIf gitdir:.

    `within` confines a file and all it includes to one folder (the repository's git
    directory); None reads the user's own files wherever they are."""

    def __init__(self, git_dir: str, home: str | None, problems: Problems) -> None:
        self.git_dir, self.home, self.problems = git_dir, home, problems
        self.files_left = CONFIG_CHAIN_MAX_FILES
        self.bytes_left = CONFIG_CHAIN_MAX_BYTES

    def read(
        self,
        path: str,
        what: str,
        *,
        within: str | None,
        required: bool = False,
        depth: int = 0,
    ) -> list[ConfigEntry]:
        if self.files_left <= 0 or self.bytes_left <= 0:
            self.problems.note(what, "too many config files or includes; the rest not read")
            return []
        self.files_left -= 1
        text = read_file(
            path,
            self.problems,
            what,
            within=within,
            max_bytes=min(CONFIG_MAX_BYTES, self.bytes_left),
            required=required,
        )
        if text is None:
            return []
        self.bytes_left -= len(text)
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
                out.extend(self.read(included, what, within=within, depth=depth + 1))
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


def global_config_paths(env: Mapping[str, str]) -> list[str]:
    """The files git reads as --global, lowest priority first."""
    if env.get("GIT_CONFIG_GLOBAL"):
        return [env["GIT_CONFIG_GLOBAL"]]
    home = env.get("HOME") or None
    xdg = env.get("XDG_CONFIG_HOME") or (os.path.join(home, ".config") if home else None)
    paths = [os.path.join(xdg, "git", "config")] if xdg else []
    return paths + ([os.path.join(home, ".gitconfig")] if home else [])
