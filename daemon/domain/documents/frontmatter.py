"""Front matter of a repository's Markdown file, read as untrusted text: never executed, never
given to a YAML loader, bounded in size, lines, keys and value lengths.

The subset instruction, rule, skill and agent files use: `key: value` lines between two `---`
lines at the top; a value is a scalar (quoted or not), `true`/`false`, a flow list `[a, "b"]`,
or a block list (`- item` lines under an empty value); `>`/`|` block text is joined. Anything
else is a problem the caller reports (the file is still indexed, its body searchable); the
keys read before the problem are kept.
"""

from __future__ import annotations

import re

import msgspec

MAX_LINES = 200
MAX_BYTES = 16 * 1024
MAX_KEYS = 50
MAX_VALUE_CHARS = 1000
MAX_ITEMS = 100
MAX_ITEM_CHARS = 200  # a name, a tag, a glob

Value = str | bool | list[str]
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]{0,63})\s*:(?:\s+(.*))?$")
_ITEM = re.compile(r"^\s+-\s*(.*)$|^-\s+(.*)$")


class FrontMatter(msgspec.Struct, kw_only=True):
    fields: dict[str, Value]
    body: str  # the text after the front matter (the whole text when there is none)
    problem: str | None = None


def parse(text: str) -> FrontMatter:
    text = text.lstrip("\ufeff")
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return FrontMatter(fields={}, body=text)
    end = None
    size = 0
    for number, line in enumerate(lines[1 : MAX_LINES + 2], start=1):
        size += len(line) + 1
        if line.rstrip() == "---":
            end = number
            break
        if size > MAX_BYTES:
            break
    if end is None:
        return FrontMatter(
            fields={},
            body=text,
            problem=f"front matter: no closing `---` within {MAX_LINES} lines or "
            f"{MAX_BYTES // 1024} KB",
        )
    fields, problem = _fields(lines[1:end])
    return FrontMatter(fields=fields, body="\n".join(lines[end + 1 :]), problem=problem)


def _fields(lines: list[str]) -> tuple[dict[str, Value], str | None]:
    fields: dict[str, Value] = {}
    key: str | None = None  # the key whose block (list or text) is being read
    block: str | None = None  # ">" or "|": folded or literal text
    for number, raw in enumerate(lines, start=2):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if key is not None and raw[:1] in (" ", "\t", "-"):
            problem = _continue(fields, key, block, line)
            if problem:
                return fields, f"front matter line {number}: {problem}"
            continue
        key, block = None, None
        match = _KEY.match(line)
        if match is None:
            return fields, f"front matter line {number} is not `key: value`: {_shown(line)}"
        if len(fields) >= MAX_KEYS:
            return fields, f"front matter: more than {MAX_KEYS} keys"
        name, value = match[1], (match[2] or "").strip()
        if value in ("", ">", "|", ">-", "|-"):
            key, block = name, (value[:1] or None)
            fields[name] = "" if block else []
            continue
        parsed = _scalar_or_list(value)
        if isinstance(parsed, tuple):
            return fields, f"front matter line {number}: {parsed[0]}"
        fields[name] = parsed
    return fields, None


def _continue(fields: dict[str, Value], key: str, block: str | None, line: str) -> str | None:
    current = fields[key]
    if block is not None:
        joiner = "\n" if block == "|" else " "
        text = str(current)
        fields[key] = (text + joiner + line.strip() if text else line.strip())[:MAX_VALUE_CHARS]
        return None
    item = _ITEM.match(line)
    if item is None or not isinstance(current, list):
        return f"expected a `- item` of {key}: {_shown(line)}"
    if len(current) < MAX_ITEMS:
        value = _unquoted((item[1] or item[2] or "").strip())
        if value:
            current.append(value[:MAX_VALUE_CHARS])
    return None


def _scalar_or_list(value: str) -> Value | tuple[str]:
    if value.startswith("["):
        if not value.endswith("]"):
            return (f"a list that does not close: {_shown(value)}",)
        items = [_unquoted(part.strip()) for part in _split(value[1:-1])]
        return [item[:MAX_VALUE_CHARS] for item in items if item][:MAX_ITEMS]
    if value.startswith("{"):
        return (f"a mapping is not read here: {_shown(value)}",)
    if value in ("true", "True", "yes"):
        return True
    if value in ("false", "False", "no"):
        return False
    if value[:1] in ("'", '"') and (len(value) < 2 or value[-1] != value[0]):
        return (f"a quoted value that does not close: {_shown(value)}",)
    return _unquoted(value)[:MAX_VALUE_CHARS]


def _split(text: str) -> list[str]:
    """Comma-separated items, commas inside quotes or braces kept (`{a,b}` in a glob)."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
        return value[1:-1]
    if " #" in value:  # a trailing comment
        value = value.split(" #", 1)[0].rstrip()
    return value


def _shown(line: str) -> str:
    return line if len(line) <= 60 else line[:57] + "…"


def string_list(value: Value | None) -> list[str]:
    """A value that may be a list or one comma-separated string (`applyTo: "a,b"`)."""
    if value is None or isinstance(value, bool):
        return []
    items = value if isinstance(value, list) else _split(value)
    return [_unquoted(item.strip())[:MAX_ITEM_CHARS] for item in items if item.strip()][:MAX_ITEMS]


def text(value: Value | None) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value:
        return ", ".join(value)[:MAX_VALUE_CHARS]
    return None


def flag(value: Value | None) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "yes"))
