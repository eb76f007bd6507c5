"""The task runners' own files, read as far as `steps` needs: a Makefile's rules, a justfile's
recipes, a Taskfile's tasks (each: what it depends on, and its lines), a key's value in a
pyproject table; and a named entry with what it pulls in from the same file (bounded).

By lines, not by a make, just, YAML or TOML parser: only command lines are wanted, and a line
misread costs a point at worst (daemon.domain.quality.steps).
"""

from __future__ import annotations

import re
from collections.abc import Callable

EXPAND_MAX = 32  # entries of one file pulled in through its own references (deps, pre/post)
Rules = dict[str, tuple[list[str], list[str]]]  # name → (what it depends on, its lines)

_MAKE_CALL = re.compile(r"\$[({]MAKE[)}]")
_JUST_NAME = re.compile(r"[A-Za-z_][\w-]*")
_JUST_DEP = re.compile(r"[A-Za-z_][\w-]*")
_TOML_KEY = re.compile(r"^[ \t]*[\"']?[\w.:-]+[\"']?[ \t]*=", re.M)


def make_rules(text: str) -> Rules:
    """target → (what it depends on, its recipe lines), in the file's order."""
    rules: Rules = {}
    current: list[list[str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("\t"):
            for recipe in current:
                recipe.append(_MAKE_CALL.sub("make", line.strip().lstrip("@-+")))
            continue
        rule = _rule(line, make=True)
        if rule is None:
            if line.strip() and not line.lstrip().startswith("#"):
                current = []
            continue
        prerequisites, _, inline = rule[1].partition(";")
        current = []
        for name in rule[0].split():
            deps, recipe = rules.setdefault(name, ([], []))
            deps += prerequisites.split()
            recipe += [inline.strip()] if inline.strip() else []
            current.append(recipe)
    return rules


def expand(
    names: list[str],
    rules: Rules,
    calls: Callable[[str], list[str]],
) -> str:
    """The lines of `names` and of what they pull in from the same file (bounded)."""
    lines: list[str] = []
    todo, done = list(names), set[str]()
    while todo and len(done) < EXPAND_MAX:
        name = todo.pop(0)
        if name in done or name not in rules:
            continue
        done.add(name)
        deps, recipe = rules[name]
        lines += recipe
        todo += deps + [called for line in recipe for called in calls(line)]
    return "\n".join(lines)


def just_recipes(text: str) -> Rules:
    """A justfile's recipes: `name params: deps` at column 0, then its indented lines."""
    recipes: Rules = {}
    body: list[str] | None = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t"):
            if body is not None:
                body.append(line.strip().lstrip("@-"))
            continue
        rule = _rule(line, make=False)
        head = rule[0].lstrip("@").split() if rule else []
        body = None
        if rule and head and _JUST_NAME.fullmatch(head[0]):
            deps, body = recipes.setdefault(head[0], ([], []))
            deps += _JUST_DEP.findall(rule[1])
    return recipes


def _rule(line: str, *, make: bool) -> tuple[str, str] | None:
    """(names, rest) of a rule line `names: rest` (a Makefile's or a justfile's), or None
    for anything else: an assignment (`X := y`, make's `X = a:b`), a comment, a special
    target (.PHONY). Found with str.find: a regex for it backtracked for seconds on a long
    line without a colon."""
    colon = line.find(":")
    if colon <= 0 or line[0] in " \t#.%" or (make and "=" in line[:colon]):
        return None
    rest = line[colon + 1 :]
    rest = rest[1:] if make and rest.startswith(":") else rest  # make's double-colon rule
    return None if rest.startswith("=") else (line[:colon], rest)


def taskfile_tasks(text: str) -> Rules:
    """A Taskfile's tasks: each `name:` under `tasks:`, with the lines indented below it."""
    tasks: Rules = {}
    inside, indent, body = False, -1, None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:
            inside, indent, body = stripped.startswith("tasks:"), -1, None
            continue
        if not inside:
            continue
        if indent < 0 or depth <= indent:
            indent = depth
            name = stripped.rstrip(":").strip("'\"")
            deps, body = tasks.setdefault(name, ([], []))
            continue
        if body is not None:
            body.append(stripped)
            if stripped.startswith("deps:"):
                deps += re.findall(r"[\w:.-]+", stripped[5:])
    return tasks


def toml_value(body: str, key: str) -> str:
    """The text of `key = …` in a table body, up to the next key (a string or an array)."""
    start = re.search(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=", body, re.M)
    if start is None:
        return ""
    end = _TOML_KEY.search(body, start.end())
    return body[start.end() : end.start() if end else len(body)]
