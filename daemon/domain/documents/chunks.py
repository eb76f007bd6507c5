"""Source files cut into chunks for the memory (Nexus' code_chunks): by top-level definition
where a line at the margin says one starts (def/class, function/export, func, fn/impl…), else
in windows of lines; a chunk longer than a window is cut into windows too. Each chunk knows
its lines, the symbols it defines, a rough complexity (branch keywords), and a hash of its
text, so a reindex keeps the chunks that did not change (and the embeddings stored on them).
Pure text work on a thread: nothing here reads a file or writes.
"""

from __future__ import annotations

import hashlib
import re

import msgspec

WINDOW = 60  # lines in a window, and the most a definition chunk holds before it is cut
MIN_CHUNK = 3  # a definition shorter than this joins the one before it

# A line at the margin that starts a top-level definition, per language; group 1 the name.
_DEFINITIONS: dict[str, re.Pattern[str]] = {
    "Python": re.compile(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)"),
    "JavaScript": re.compile(
        r"^(?:export\s+(?:default\s+)?)?(?:async\s+)?(?:function\*?|class|const|let|var)\s+"
        r"([A-Za-z_$][\w$]*)"
    ),
    "Go": re.compile(r"^(?:func|type)\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)"),
    "Rust": re.compile(
        r"^(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:fn|struct|enum|trait|impl|mod)\s+"
        r"(?:<[^>]*>\s*)?([A-Za-z_]\w*)"
    ),
    "Ruby": re.compile(r"^(?:def|class|module)\s+([A-Za-z_][\w.:]*)"),
    "Java": re.compile(
        r"^(?:public|private|protected|abstract|final|static|\s)*(?:class|interface|enum|record)"
        r"\s+([A-Za-z_]\w*)"
    ),
}
_DEFINITIONS["TypeScript"] = re.compile(
    r"^(?:export\s+(?:default\s+)?)?(?:declare\s+)?(?:async\s+)?"
    r"(?:function\*?|class|const|let|var|interface|type|enum)\s+([A-Za-z_$][\w$]*)"
)
_DEFINITIONS["Kotlin"] = _DEFINITIONS["Java"]
_DEFINITIONS["C#"] = _DEFINITIONS["Java"]
_BRANCHES = re.compile(r"\b(?:if|elif|else if|for|while|case|catch|except|match)\b|&&|\|\|")


class Chunk(msgspec.Struct, kw_only=True):
    start_line: int  # 1-based, inclusive
    end_line: int
    text: str
    symbols: list[str]
    chunk_type: str  # "definition", "preamble" (what comes before the first), "window"
    complexity: int
    hash: str


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def chunk(text: str, language: str | None) -> list[Chunk]:
    lines = text.splitlines()
    if not lines:
        return []
    pattern = _DEFINITIONS.get(language or "")
    starts: list[tuple[int, str]] = []  # (0-based line, name)
    if pattern is not None:
        for index, line in enumerate(lines):
            if line[:1].isspace() or not line:
                continue
            found = pattern.match(line)
            if found:
                if starts and index - starts[-1][0] < MIN_CHUNK:
                    continue  # a decorator stack or one-liners: one chunk
                starts.append((index, found[1]))
    if not starts:
        return _windows(lines, 0, len(lines), "window", [])
    out: list[Chunk] = []
    if starts[0][0] > 0:
        out += _windows(lines, 0, starts[0][0], "preamble", [])
    for number, (begin, name) in enumerate(starts):
        end = starts[number + 1][0] if number + 1 < len(starts) else len(lines)
        out += _windows(lines, begin, end, "definition", [name])
    return [c for c in out if c.text.strip()]


def _windows(lines: list[str], begin: int, end: int, kind: str, symbols: list[str]) -> list[Chunk]:
    out = []
    for start in range(begin, end, WINDOW):
        stop = min(start + WINDOW, end)
        text = "\n".join(lines[start:stop])
        out.append(
            Chunk(
                start_line=start + 1, end_line=stop, text=text,
                symbols=symbols if start == begin else [],
                chunk_type=kind if start == begin else "window",
                complexity=len(_BRANCHES.findall(text)), hash=digest(text),
            )
        )  # fmt: skip
    return out
