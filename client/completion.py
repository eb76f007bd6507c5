"""Shell completion: on every Tab the script `pm completion SHELL` printed
(client.completion_scripts) asks `pm __complete -- WORD… CURRENT` for what may come next.

The answer is read from the commands' own description (client.spec: commands, verbs,
options, choices; the generated ones from the daemon's `rpc.discover`), so it never drifts
from what `pm` accepts, and project names come from the daemon when it answers: over a
connection with a short timeout, never starting the daemon, never greeting it, never waiting
on one that hangs. When nothing is offered (a path is expected, say) the shell completes file
names.
"""

from __future__ import annotations

import sys

from client import errors, locations
from client.flags import split_globals
from client.session import Session
from client.spec import Arg, Command, is_option

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GLOBAL_FLAGS = ("--json", "--no-spawn", "--socket")


def complete(argv: list[str]) -> int:
    """Print what may stand at the last word of `argv` (after an optional `--`), one a line.
    Never fails: a completion that goes wrong offers nothing."""
    words = argv[1:] if argv[:1] == ["--"] else argv
    try:
        found = candidates(words or [""])
    except Exception:  # a Tab must never print a traceback into the user's line
        return 0
    sys.stdout.write("".join(f"{c}\n" for c in found))
    return 0


def candidates(words: list[str]) -> list[str]:
    *before, current = words
    flags, before = split_globals(before)
    if before[-1:] == ["--socket"]:
        return []  # a path: the shell's file names
    try:
        s = Session(flags, quick=True)
    except locations.ConfigFileError:
        return []
    try:
        if not before:
            offered = [*_top_words(s), *(GLOBAL_FLAGS if current.startswith("-") else ())]
        else:
            offered = _after(s, before, current)
    finally:
        s.close()
    return sorted({c for c in offered if c.startswith(current)})


def _nouns(s: Session) -> dict[str, str]:
    try:
        return s.nouns()
    except (errors.ClientError, OSError):
        return {}


def _noun(s: Session, name: str) -> dict[str, Any] | None:
    try:
        return s.noun(name)
    except (errors.ClientError, OSError):
        return None


def _add_generated(node: Command, s: Session) -> None:
    from client import commands

    try:
        commands.add_generated(node, s)
    except (errors.ClientError, OSError):
        return  # its own verbs only


def _top_words(s: Session) -> list[str]:
    from client.commands import TOP

    return [*TOP, *(noun.replace("_", "-") for noun in _nouns(s) if noun not in TOP)]


def _top(s: Session, word: str) -> Command | None:
    from client import commands, generated

    if word in commands.TOP:
        node = commands.hand_written(word)
        if commands.TOP[word].generated:
            _add_generated(node, s)
        return node
    entry = _noun(s, commands.noun_word(word))
    if entry is None or not generated.well_formed(entry):
        return None
    return generated.command(word, entry)


def _after(s: Session, before: list[str], current: str) -> list[str]:
    node = _top(s, before[0])
    if node is None:
        return []
    node, arrived, filled, pending = _walk(s, node, before[1:])
    if pending is not None:
        return _values(pending, s)
    if current.startswith("-"):
        return [*(f for a in node.args for f in a.flags if f.startswith("--")), *GLOBAL_FLAGS]
    offered = list(node.verbs) if arrived else []
    positionals = node.positionals() if node.run is not None else []
    if filled < len(positionals):
        offered += _values(positionals[filled], s)
    return offered


def _walk(s: Session, node: Command, words: list[str]) -> tuple[Command, bool, int, Arg | None]:
    """The command the words lead to, whether a verb may still follow (no word of its own
    yet), how many of its positionals they filled, and the option still waiting for its
    value (if the last word was one)."""
    filled, pending = 0, None
    arrived = True
    for word in words:
        if pending is not None:
            pending = None
            continue
        if arrived and word in node.verbs:
            node = node.verbs[word]
            continue
        arrived = False
        if node.later is not None:
            _complete_later(s, node)
        if is_option(word):
            arg = node.option(word.split("=", 1)[0])
            if arg is not None and not arg.flag and "=" not in word:
                pending = arg
            continue
        filled += 1
    if node.later is not None:
        _complete_later(s, node)
    return node, arrived, filled, pending


def _complete_later(s: Session, node: Command) -> None:
    """The arguments only the daemon knows (a Tab goes on without them if it cannot say)."""
    later, node.later = node.later, None
    if later is None:
        return
    try:
        node.args = later(s)
    except (errors.ClientError, OSError, KeyError, TypeError):
        return


def _values(arg: Arg, s: Session) -> list[str]:
    if arg.complete == "project":
        return project_names(s)
    if arg.choices is not None:
        return [str(c) for c in arg.choices]
    return list(arg.suggest)


def project_names(s: Session) -> list[str]:
    """Every present project's name, if a daemon answers at once; else none. Never starts
    one (the client connects, and nothing more), never waits more than a moment."""
    try:
        page = s.client().call("projects.list", {"order": "name", "limit": 10000})
    except (errors.ClientError, OSError):
        return []
    names = [p.get("name") for p in page.get("items", [])]
    # One name a line: a name a line cannot carry (or a shell would act on) is left out.
    return [n for n in names if isinstance(n, str) and n.isprintable() and n]
