"""Every `pm` command but the fast `pm status`: which module answers which word, then parse,
then run. A word no module claims is a noun of the daemon's, with commands generated from
its `rpc.discover` (client.generated).

Global flags (`--json`, `--socket PATH`, `--no-spawn`) may stand anywhere (client.flags takes
them out first). A failure ends with one message on stderr — under `--json`, a JSON object
`{"message", "kind", "exit_code"}` — and the exit code of the README.

Only the module of the command given is imported: a shell prompt's `pm kv get` loads the kv
commands and nothing else (no argparse, json, typing or daemon code).
"""

from __future__ import annotations

import sys

from client import errors, locations, output
from client.flags import split_globals
from client.session import Session
from client.spec import Command, ShowHelp, WrongWords, parse

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args


class Top:
    """A command written by hand: the module whose `command(word)` builds it, its one-line
    help, and the generated verbs it takes besides its own — those of the daemon's noun the
    word names (itself, or through ALIASES: `pm task` takes the `tasks` noun's)."""

    __slots__ = ("generated", "help", "module")

    def __init__(self, module: str, help: str, generated: tuple[str, ...] = ()) -> None:
        self.module = module
        self.help = help
        self.generated = generated


# Hand-written commands stay where a human shortcut earns them. kv is addressed by namespace
# and key, projects by name, path or `.`: neither has id-addressed verbs to generate. jobs
# keeps its listing with project names and durations, `show` with progress, `run` and
# `cancel`, and takes the generated `list` and `update` (a script recording its own jobs).
TOP: dict[str, Top] = {
    "status": Top("client.basic_cli", "the daemon's state and figures (starts it)"),
    "call": Top("client.basic_cli", "call any method: pm call kv.get '{\"namespace\":…}'"),
    "kv": Top("client.kv_cli", "the key-value store"),
    "projects": Top("client.projects_cli", "the projects in your Dev folder"),
    "project": Top("client.projects_cli", "one project: show it, set fields, register, forget"),
    "scan": Top("client.scans_cli", "read the Dev folder (or one project) now"),
    "quality": Top("client.quality_cli", "projects ranked by quality, or why one scores so"),
    "jobs": Top(
        "client.jobs_cli",
        "the daemon's runs and the jobs clients recorded",
        generated=("list", "update"),
    ),
    "events": Top("client.events_cli", "the newest change events, or --follow live ones"),
    "backup": Top("client.db_cli", "back up now, list, verify or restore backups"),
    "db": Top("client.db_cli", "check, repair, migrate, roll back, reset, export, import"),
    "doctor": Top("client.doctor", "check everything that can go wrong, with the fixes"),
    "daemon": Top("client.daemonctl", "start, stop, restart or inspect pm-agentd; install it"),
    "completion": Top("client.basic_cli", 'a completion script: eval "$(pm completion bash)"'),
    "mcp": Top("client.mcp.command", "serve pm-agent to an AI agent over MCP; pm mcp install"),
    # the memory (issue 16)
    "note": Top("client.memory_cli", "add a note (or knowledge, context…): pm note add"),
    "search": Top("client.memory_cli", "search every note and document, best first"),
    "context": Top("client.memory_cli", "the project's context items"),
    "knowledge": Top("client.memory_cli", "the project's knowledge"),
    "instructions": Top("client.memory_cli", "the instructions that apply to a path, and why"),
    "brief": Top("client.memory_cli", "what to know before starting here (Markdown, for hooks)"),
    "resume": Top("client.memory_cli", "where work stopped in this project, and what is next"),
    "agents": Top("client.memory_state_cli", "the agents at work", generated=("list", "show")),
    "checkpoint": Top("client.memory_state_cli", "a project's work saved, listed, restored"),
    "metrics": Top("client.memory_state_cli", "token use over time, as a sparkline table"),
    # work (issue 15): shortcuts beside the generated verbs of their nouns (ALIASES)
    "todo": Top("client.work_cli", "the todos of the project here: add, list, start, done"),
    "ready": Top("client.work_cli", "ready work across projects (or --project), best first"),
    "next": Top("client.work_cli", "the next step of the current plan"),
    "task": Top(
        "client.work_cli",
        "claim, complete, release, move and link tasks",
        generated=("list", "show", "add", "update", "remove"),
    ),
    "plan": Top(
        "client.plan_cli",
        "plans: new, show (a tree), list, archive, unarchive, export",
        generated=("update", "remove"),
    ),
    "session": Top(
        "client.plan_cli", "work sessions: start with goals, end", generated=("list", "show")
    ),
}
# A word that means one of the daemon's nouns (`pm feature list` is `pm features list`).
ALIASES = {
    "task": "tasks", "plan": "plans", "session": "sessions", "feature": "features",
    "req": "requirements",
}  # fmt: skip

ROOT_HELP = "Talk to pm-agentd, the project-memory daemon."


def hand_written(word: str) -> Command:
    top = TOP[word]
    module: Any = __import__(top.module, fromlist=["command"])
    built: Command = module.command(word)
    return built


def add_generated(node: Command, s: Session) -> None:
    """The generated verbs its Top takes, added to a hand-written command (whose own verbs
    win), shown with its noun's columns."""
    from client import generated

    noun = noun_word(node.name)
    entry = s.noun(noun)
    if entry is not None and generated.well_formed(entry):
        for verb in generated.verbs(noun, entry, TOP[node.name].generated):
            node.verbs.setdefault(verb.name, verb)


def noun_word(word: str) -> str:
    """A noun as typed (`continue-points`, `feature`) → as the daemon names it
    (`continue_points`, `features`)."""
    return ALIASES.get(word, word.replace("-", "_"))


def top_command(words: list[str], s: Session) -> Command:
    """The command the first word names, with its generated verbs unless one of its own is
    named (then they are not needed: no cache file is read)."""
    word = words[0]
    if word in TOP:
        node = hand_written(word)
        extra = TOP[word].generated
        asked = words[1] if len(words) > 1 else None
        if extra and asked not in node.verbs:  # a generated verb, help, a mistake to list
            add_generated(node, s)
        return node
    from client import generated

    noun = noun_word(word)
    entry = look_up(noun, s)
    if entry is not None and not generated.well_formed(entry):  # a cache file tampered with
        entry = s.noun(noun, fresh=True)
    if entry is None or noun in TOP:
        raise errors.UsageError(f"unknown command {word!r}; pm --help lists them", _usage())
    node = generated.command(noun, entry)  # shown with the noun's columns…
    node.name = word  # …and named as typed (`pm feature`)
    return node


def look_up(noun: str, s: Session) -> dict[str, Any] | None:
    """The daemon's noun of that name, or None. A word the last nouns seen do not include
    does not start a daemon just to be refused (unless pm has never seen any)."""
    seen = s.cached_nouns()
    may_spawn = seen is None or noun in seen
    try:
        return s.noun(noun, spawn=None if may_spawn else False)
    except errors.Unreachable:
        if may_spawn:
            raise
        return None


def root() -> Command:
    """`pm` itself, for its usage line and help."""
    return Command("pm", help=ROOT_HELP, verbs=[Command(w, help=t.help) for w, t in TOP.items()])


def _usage() -> str:
    from client.helptext import usage

    return usage([root()])


def _root_help(s: Session) -> str:
    """The commands, with the daemon's nouns (if one answers, or was seen before)."""
    nouns: dict[str, str] | None
    try:
        nouns = s.nouns(spawn=False)
    except errors.ClientError:
        nouns = s.cached_nouns()
    extra = [
        (noun.replace("_", "-"), str(about))
        for noun, about in (nouns or {}).items()
        if noun_word(noun) not in TOP
    ]
    from client.helptext import help_text

    text = help_text([root()], extra)
    if nouns is None:
        text += "(the daemon's own nouns are listed here once it has answered)\n"
    return text


def resolve(words: list[str], s: Session) -> tuple[list[Command], Args]:
    """The command the words name, and its arguments; UsageError or ShowHelp."""
    if not words:
        raise errors.UsageError("a command is needed; pm --help lists them", _usage())
    if words[0] in ("-h", "--help"):
        raise ShowHelp([])
    if words[0] == "--version":
        from client.version import __version__

        raise VersionAsked(f"pm {__version__}")
    node = top_command(words, s)
    return parse(Command("pm", verbs=[node]), words, s)


class VersionAsked(Exception):
    """`pm --version`: print this and exit 0."""


def run(argv: list[str]) -> int:
    opts, words = split_globals(argv)
    output.use_json_stderr(opts["json"])
    try:
        s = Session(opts)
    except locations.ConfigFileError as e:
        return output.fail(str(e), kind="config", exit_code=errors.EXIT_FAILED)
    command = words[0] if words else "pm"
    try:
        try:
            path, args = resolve(words, s)
        except ShowHelp as asked:
            from client.helptext import help_text

            text = help_text(asked.path) if asked.path else _root_help(s)
            sys.stdout.write("".join(output.visible(line) + "\n" for line in text.splitlines()))
            return errors.EXIT_OK
        except VersionAsked as asked:
            print(asked)
            return errors.EXIT_OK
        except errors.UsageError as e:
            if isinstance(e, WrongWords):
                from client.helptext import usage

                e.usage = usage(e.path)
            if e.usage and not output.json_stderr():
                sys.stderr.write(e.usage)
            return output.fail(str(e), kind="usage", exit_code=errors.EXIT_USAGE)
        args.__dict__.update(opts)  # json, socket, no_spawn
        command = args.command.split(" ", 1)[0]
        s.args = args
        handler = path[-1].run
        assert handler is not None  # parse returns only commands that run
        return handler(args, s)
    except errors.UsageError as e:  # found by the command itself (a value it cannot take)
        return output.fail(str(e), kind="usage", exit_code=errors.EXIT_USAGE)
    except errors.RemoteError as e:
        return output.fail(
            f"{command}: {e.message}",
            kind=e.kind or "remote",
            exit_code=e.exit_code,
            code=e.code,
            data=e.data,
            tagged=True,
        )
    except errors.ClientError as e:
        return output.fail(str(e), kind=e.kind, exit_code=e.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`pm events --follow | head`): that ends the command quietly.
        _silence_stdout()
        return errors.EXIT_OK
    finally:
        s.close()


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's last flush at exit must not fail again
    os.close(devnull)
