"""Every `pm …` line of the README's command block parses as written, in each of its forms.

A synopsis line is expanded into the command lines it stands for: `[…]` with and without,
`a|b` each way, `…` as a repeat, and each placeholder (NAME, PATH, N…) as a sample value.
Some commands take their options from the daemon's `rpc.discover` (`pm jobs`, `pm project
set`, the generated ones), so the lines are read against a real daemon.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from client.commands import resolve
from client.errors import UsageError
from client.session import Session
from client.spec import ShowHelp
from tests.helpers import REPO, DaemonProcess

# A sample for each placeholder, by the command (or option) it follows where that matters.
SAMPLES: dict[str, str | dict[str, str]] = {
    "METHOD": "kv.get",
    "PARAMS_JSON": '{"namespace":"a","key":"b"}',
    "NS": "ns",
    "KEY": "key",
    "VALUE": "1",
    "S": {
        "projects": "active",
        "jobs": "queued",
        "--ttl": "60",
        "--lease": "60",
        "task": "pending",
        "agents": "idle",
        "": "active",
    },
    "ISO": "2099-01-01T00:00:00Z",
    "P": "pre",
    "N": "5",
    "TEXT": "words",
    "NAME": "alpha",
    "PATH": "/tmp/somewhere",
    "ID": "3",
    "PROJECT": "alpha",
    "KIND": {"session": "development", "note": "knowledge", "search": "note", "": "backup"},
    "T": "kv",
    "FIELD": "status",
    "SHELL": "bash",
    "SEQ": "7",
    "URL": "https://example.com",
    "NOUN": "tasks",  # a noun of the shipped daemon's, its commands generated
    "TYPE:ID": "task:12",
}
# `--FIELD VALUE` of a generated command: a field that noun's verb takes, and a value.
FIELDS = {("tasks", "list"): ("--status", "pending"), ("tasks", "add"): ("--title", "words"),
          ("tasks", "update"): ("--title", "words"), ("jobs", "list"): ("--kind", "backup"),
          ("jobs", "update"): ("--response", "words"), ("task", "update"): ("--title", "words"),
          ("plan", "update"): ("--title", "words"), ("project", "set"): ("--status", "on-hold"),
          ("agents", "list"): ("--status", "idle")}  # fmt: skip


def readme_synopses() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## The `pm` command", 1)[1].split("```", 2)[1]
    # The description starts after two spaces (or one, after a closing `]` or `…`).
    return [re.split(r"\s{2,}|(?<=[…\]])\s(?=[a-z])", line.strip())[0]
            for line in block.splitlines() if line.startswith("pm ")]  # fmt: skip


def tokens(line: str) -> list[str]:
    return re.findall(r"\[|\]|…|\s\|\s|[^\s\[\]…]+", line)


def expand(items: list[str], *, top: bool = False) -> Iterator[list[str]]:
    """Every command line a synopsis (as tokens) stands for."""
    alternatives: list[list[str]] = []
    current: list[str] = []
    depth = 0
    for item in items:  # split at top-level " | "
        depth += item == "["
        depth -= item == "]"
        if item.strip() == "|" and depth == 0:
            alternatives.append(current)
            current = []
        else:
            current.append(item)
    if alternatives:
        # `pm jobs run KIND | show ID`: at the top, the other branches share `pm jobs`.
        head = alternatives[0][:2] if top else []
        for branch in [*alternatives, current]:
            yield from expand(branch if branch[:2] == head else head + branch)
        return
    yield from _sequence(items)


def _sequence(items: list[str]) -> Iterator[list[str]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    if first == "[":
        depth, end = 1, 0
        while depth:
            depth += (rest[end] == "[") - (rest[end] == "]")
            end += 1
        end -= 1
        inner, after = rest[:end], rest[end + 1 :]
        repeat = after[:1] == ["…"]
        after = after[1:] if repeat else after
        for tail in _sequence(after):
            yield tail
            for body in expand(inner):
                yield body + tail
                if repeat:
                    yield body + body + tail
        return
    choices = first.split("|") if "|" in first and not first.startswith("{") else [first]
    for choice, tail in itertools.product(choices, list(_sequence(rest))):
        yield [choice, *tail]


def concrete(words: list[str]) -> list[str]:
    out: list[str] = []
    for i, word in enumerate(words):
        if word == "--FIELD" or (word == "VALUE" and words[i - 1] == "--FIELD"):
            noun = SAMPLES.get(words[1], words[1])
            out.append(FIELDS[str(noun), words[2]][word == "VALUE"])
            continue
        sample = SAMPLES.get(word, word)
        if isinstance(sample, dict):
            context = words[i - 1] if words[i - 1].startswith("-") else ""
            sample = sample.get(context if context in sample else words[1], sample[""])
        out.append(sample)
    return out


def readme_command_lines() -> list[list[str]]:
    lines = []
    for synopsis in readme_synopses():
        for words in expand(tokens(synopsis), top=True):
            lines.append(concrete(words)[1:])  # without "pm"
    return lines


def test_the_readme_block_is_read() -> None:
    synopses = readme_synopses()
    assert len(synopses) >= 25 and all(s.startswith("pm ") for s in synopses)
    assert ["kv", "set", "ns", "key", "1", "--string", "--ttl", "60"] in readme_command_lines()
    assert ["jobs", "show", "3"] in readme_command_lines()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("readme")
    world = DaemonProcess(root, config={"watch": False, "rescan_interval_s": 0})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))  # pm's cache: never the real home
        world.start()
        s = Session({"json": False, "socket": world.socket_path, "no_spawn": True})
        try:
            yield s
        finally:
            s.close()
            world.cleanup()


@pytest.mark.parametrize("argv", readme_command_lines(), ids=" ".join)
def test_every_readme_command_line_parses(argv: list[str], session: Session) -> None:
    try:
        path, _ = resolve(argv, session)
    except UsageError as e:
        pytest.fail(f"pm {' '.join(argv)}: {e}")
    except ShowHelp:
        pytest.fail(f"pm {' '.join(argv)} asked for help")
    assert callable(path[-1].run)


def test_a_line_that_is_not_a_command_is_refused(session: Session) -> None:
    for argv in (["frobnicate"], ["kv", "get", "ns"], ["jobs", "--status", "someday"],
                 ["kv", "list", "--limit", "many"]):  # fmt: skip
        with pytest.raises(UsageError):
            resolve(argv, session)
