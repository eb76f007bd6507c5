"""Glob patterns as instruction files write them (`applyTo`, a Cursor rule's `globs`) and as
.gitignore lines do, matched against "/"-separated paths relative to the project root.

`**` any number of folders, `*` within one name, `?` one character, `[abc]` a class, `{a,b}`
alternatives; a pattern with no "/" matches a name at any depth (`*.py`), one with a leading
"/" only from the root. Compiled once (cached), bounded in length, never given to a shell.
"""

from __future__ import annotations

import functools
import re

MAX_PATTERN = 500


@functools.lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str] | None:
    """The pattern as a regex over a whole relative path; None for one that cannot be used
    (empty, too long, an unclosed class or brace)."""
    pattern = pattern.strip()
    if not pattern or len(pattern) > MAX_PATTERN:
        return None
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    pattern = pattern.removeprefix("./").lstrip("/")
    directory = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    try:
        body = _translate(pattern)
    except ValueError:
        return None
    prefix = "" if anchored else "(?:.*/)?"
    # A folder pattern (or any pattern naming a folder) covers what is below it.
    suffix = "(?:/.*)?" if directory or not pattern.endswith("**") else ""
    return re.compile(f"^{prefix}{body}{suffix}$", re.DOTALL)


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    depth = 0  # inside {…}
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise ValueError("unclosed [")
            inner = pattern[i + 1 : end]
            negate = inner[:1] in ("!", "^")
            inner = inner[1:] if negate else inner
            escaped = inner.replace("\\", "\\\\").replace("[", "\\[")
            out.append(f"[{'^' if negate else ''}{escaped}]")
            i = end
        elif char == "{":
            depth += 1
            out.append("(?:")
        elif char == "}" and depth:
            depth -= 1
            out.append(")")
        elif char == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(char))
        i += 1
    if depth:
        raise ValueError("unclosed {")
    return "".join(out)


def matches(pattern: str, path: str) -> bool:
    compiled = compile_glob(pattern)
    return compiled is not None and compiled.match(path) is not None


def literal_depth(pattern: str) -> int:
    """How many leading folder names the pattern fixes (`src/api/**` → 2): how specific it
    is, for ranking."""
    depth = 0
    for part in pattern.strip().lstrip("/").split("/")[:-1]:
        if any(c in part for c in "*?[{"):
            break
        depth += 1
    return depth
