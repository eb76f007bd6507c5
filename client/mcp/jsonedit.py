"""Set one value deep inside a JSON (or JSONC) file's text, keeping every other byte.

A user's editor config is theirs: its order, indentation, comments (VS Code's mcp.json is
JSONC) and whatever else it holds must come out exactly as they went in. So the text is not
decoded and re-encoded: it is scanned once into spans (where each object member's value starts
and ends), and the change is spliced in — a member's value replaced, or a member inserted after
an object's last one, indented like its siblings. Text that is not valid JSON (JSONC: comments
and trailing commas allowed) is refused with the line and column, and nothing changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_LITERALS = {"true": True, "false": False, "null": None}


class JsonTextError(ValueError):
    """The text is not valid JSON (or JSONC); `where` says line:column."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        self.where = f"line {line} column {column}"
        super().__init__(f"{message} at {self.where}")


@dataclass
class Node:
    """A value's span in the text: [start, end). Objects keep their members in order."""

    start: int
    end: int
    value: Any = None
    members: dict[str, Member] = field(default_factory=dict)
    is_object: bool = False


@dataclass
class Member:
    key_start: int
    value: Node


class _Scanner:
    def __init__(self, text: str, *, comments: bool) -> None:
        self.text = text
        self.comments = comments

    def fail(self, message: str, pos: int) -> JsonTextError:
        return JsonTextError(message, self.text, pos)

    def skip(self, pos: int) -> int:
        """Past whitespace (and, in JSONC, comments)."""
        text = self.text
        while pos < len(text):
            char = text[pos]
            if char in " \t\r\n":
                pos += 1
            elif self.comments and text.startswith("//", pos):
                newline = text.find("\n", pos)
                pos = len(text) if newline < 0 else newline + 1
            elif self.comments and text.startswith("/*", pos):
                close = text.find("*/", pos + 2)
                if close < 0:
                    raise self.fail("unterminated comment", pos)
                pos = close + 2
            else:
                break
        return pos

    def value(self, pos: int) -> Node:
        pos = self.skip(pos)
        if pos >= len(self.text):
            raise self.fail("a value was expected", pos)
        char = self.text[pos]
        if char == "{":
            return self.object(pos)
        if char == "[":
            return self.array(pos)
        if char == '"':
            string, end = self.string(pos)
            return Node(pos, end, string)
        for word, literal in _LITERALS.items():
            if self.text.startswith(word, pos):
                return Node(pos, pos + len(word), literal)
        match = _NUMBER.match(self.text, pos)
        if match is None:
            raise self.fail(f"unexpected {char!r}", pos)
        return Node(pos, match.end(), json.loads(match.group()))

    def string(self, pos: int) -> tuple[str, int]:
        match = _STRING.match(self.text, pos)
        if match is None:
            raise self.fail("a malformed or unterminated string", pos)
        decoded: str = json.loads(match.group())
        return decoded, match.end()

    def object(self, start: int) -> Node:
        node = Node(start, start, {}, is_object=True)
        pos = self.skip(start + 1)
        while True:
            if pos < len(self.text) and self.text[pos] == "}":
                break
            if pos >= len(self.text) or self.text[pos] != '"':
                raise self.fail("a member name in double quotes was expected", pos)
            key_start = pos
            key, pos = self.string(pos)
            pos = self.skip(pos)
            if pos >= len(self.text) or self.text[pos] != ":":
                raise self.fail("':' was expected", pos)
            value = self.value(pos + 1)
            node.members.pop(key, None)  # a repeated name: the last one counts, as in parsers
            node.members[key] = Member(key_start, value)
            node.value[key] = value.value
            pos = self.skip(value.end)
            if pos < len(self.text) and self.text[pos] == ",":
                pos = self.skip(pos + 1)
                if not self.comments and pos < len(self.text) and self.text[pos] == "}":
                    raise self.fail("a trailing comma is not JSON", pos)
                continue
            if pos >= len(self.text) or self.text[pos] != "}":
                raise self.fail("',' or '}' was expected", pos)
        node.end = pos + 1
        return node

    def array(self, start: int) -> Node:
        items: list[Any] = []
        pos = self.skip(start + 1)
        while pos >= len(self.text) or self.text[pos] != "]":
            item = self.value(pos)
            items.append(item.value)
            pos = self.skip(item.end)
            if pos < len(self.text) and self.text[pos] == ",":
                pos = self.skip(pos + 1)
                if not self.comments and pos < len(self.text) and self.text[pos] == "]":
                    raise self.fail("a trailing comma is not JSON", pos)
            elif pos >= len(self.text) or self.text[pos] != "]":
                raise self.fail("',' or ']' was expected", pos)
        return Node(start, pos + 1, items)


def parse(text: str, *, comments: bool = False) -> Node:
    """The document's spans; JsonTextError if it is not one JSON value (JSONC with
    `comments`). A byte-order mark is allowed before it."""
    scanner = _Scanner(text, comments=comments)
    root = scanner.value(1 if text.startswith("\ufeff") else 0)
    end = scanner.skip(root.end)
    if end != len(text):
        raise scanner.fail("unexpected text after the value", end)
    return root


def set_in(text: str, path: list[str], value: Any, *, comments: bool = False) -> str:
    """`text` with the member at `path` (object keys from the root) set to `value`; objects
    missing on the way are created. Raises JsonTextError for text that is not JSON, and
    ValueError when something on the path is not an object."""
    if not text.strip():
        nested: Any = value
        for key in reversed(path):
            nested = {key: nested}
        return json.dumps(nested, indent=2, ensure_ascii=False) + "\n"
    root = parse(text, comments=comments)
    newline = "\r\n" if "\r\n" in text else "\n"
    unit = _indent_unit(text, root)
    node, depth = root, 0
    for i, key in enumerate(path):
        if not node.is_object:
            where = ".".join(path[:i]) or "the top level"
            raise ValueError(f"{where} is not a JSON object")
        member = node.members.get(key)
        if member is None:
            rest: Any = value
            for later in reversed(path[i + 1 :]):
                rest = {later: rest}
            return _insert(text, node, key, rest, depth, unit, newline)
        if i == len(path) - 1:
            if member.value.value == value and _same_type(member.value.value, value):
                return text
            indent = _line_indent(text, member.key_start) or unit * (depth + 1)
            rendered = _render(value, indent, unit, newline)
            return text[: member.value.start] + rendered + text[member.value.end :]
        node, depth = member.value, depth + 1
    return text


def _same_type(a: Any, b: Any) -> bool:
    """`1 == True` in Python; JSON tells them apart."""
    return type(a) is type(b)


def _insert(text: str, obj: Node, key: str, value: Any, depth: int, unit: str, newline: str) -> str:
    close = obj.end - 1  # the '}'
    members = list(obj.members.values())
    name = json.dumps(key, ensure_ascii=False)
    if "\n" not in text.strip() and (members or depth > 0):
        # A file on one line (minified) stays on one line.
        compact = f"{name}: {json.dumps(value, ensure_ascii=False)}"
        if not members:
            return text[: obj.start + 1] + compact + text[close:]
        last = members[-1].value.end
        return text[:last] + ", " + compact + text[last:]
    outer = _leading_whitespace(text, obj.start)
    indent = (members and _line_indent(text, members[0].key_start)) or outer + unit
    member = f"{name}: {_render(value, indent, unit, newline)}"
    last = max((m.value.end for m in members), default=obj.start + 1)
    # After the last member (and any comment ending its line), before the whitespace that
    # precedes '}'.
    at = close
    while at > last and text[at - 1] in " \t\r\n":
        at -= 1
    comma = "," if members and "," not in _code(text[last:at]) else ""  # JSONC: trailing comma
    tail = "" if "\n" in text[at:close] else newline + outer
    return text[:last] + comma + text[last:at] + f"{newline}{indent}{member}{tail}" + text[at:]


def _code(span: str) -> str:
    """The span without its comments (where a trailing comma would be)."""
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", span, flags=re.S)


def _render(value: Any, indent: str, unit: str, newline: str) -> str:
    lines = json.dumps(value, indent=unit or 2, ensure_ascii=False).split("\n")
    return newline.join([lines[0], *(indent + line for line in lines[1:])])


def _line_indent(text: str, pos: int) -> str | None:
    """The whitespace that starts the line holding `pos`, if only whitespace comes before."""
    start = text.rfind("\n", 0, pos) + 1
    before = text[start:pos]
    return before if before.strip() == "" and "\n" not in before else None


def _leading_whitespace(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    line = text[start:pos]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _indent_unit(text: str, root: Node) -> str:
    """The file's own indentation step (its first member's), else two spaces."""
    for member in root.members.values():
        found = _line_indent(text, member.key_start)
        if found:
            return found
    return "  "
