"""What a `pm` command accepts, said once: its positionals and options, its verbs, its help.

Every command — written by hand or generated from `rpc.discover` — is a `Command` of `Arg`s;
`parse` reads the words into an `Args`, and the same description gives the usage line and the
help text (client.helptext) and the shell completion (client.completion). It replaces
argparse on purpose: argparse (with the gettext it pulls in) costs ~2.5 ms of start-up and
building its parser more, paid by every `pm` call a shell prompt or an agent's hook makes;
this module imports nothing.
"""

from __future__ import annotations

from client.args import Args
from client.errors import UsageError

__all__ = ["Arg", "Args", "Command", "ShowHelp", "WrongWords", "is_option", "parse"]

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from client.session import Session

    Convert = Callable[[str], Any]
    Handler = Callable[["Args", Session], int]


class Arg:
    """A positional (no `flags`) or an option (`flags`: `--name`, maybe `-n`).

    `convert` turns the text into the value (int, float, or any function raising ValueError);
    `choices` limits it; `flag` is an option without a value (True when given); `repeat`
    collects every use in a list; `optional` makes a positional optional; `required` makes an
    option required; `group` names options of which at most one may be given; `complete` says
    what completion offers (`"project"`: project names) and `suggest` values offered without
    being enforced."""

    __slots__ = (
        "choices",
        "complete",
        "convert",
        "default",
        "dest",
        "flag",
        "flags",
        "group",
        "help",
        "metavar",
        "optional",
        "repeat",
        "required",
        "suggest",
        "type_name",
    )

    def __init__(
        self,
        dest: str,
        *flags: str,
        convert: Convert | None = None,
        choices: Sequence[Any] | None = None,
        flag: bool = False,
        repeat: bool = False,
        optional: bool = False,
        required: bool = False,
        group: str | None = None,
        default: Any = None,
        metavar: str | None = None,
        help: str = "",
        complete: str | None = None,
        suggest: Sequence[str] = (),
    ) -> None:
        self.dest = dest
        self.flags = flags
        self.convert = convert
        self.type_name = getattr(convert, "__name__", "value")
        self.choices = list(choices) if choices is not None else None
        self.flag = flag
        self.repeat = repeat
        self.optional = optional
        self.required = required
        self.group = group
        self.default = default
        self.metavar = metavar or dest.upper()
        self.help = help
        self.complete = complete
        self.suggest = tuple(suggest)

    @property
    def positional(self) -> bool:
        return not self.flags

    def value(self, text: str, shown: str) -> Any:
        try:
            value = self.convert(text) if self.convert is not None else text
        except ValueError as e:
            detail = f" ({e})" if str(e) and self.type_name not in ("int", "float") else ""
            raise UsageError(
                f"argument {shown}: invalid {self.type_name} value: {text!r}{detail}"
            ) from None
        if self.choices is not None and value not in self.choices:
            choices = ", ".join(repr(c) for c in self.choices)
            raise UsageError(f"argument {shown}: invalid choice: {text!r} (choose from {choices})")
        return value

    def synopsis(self) -> str:
        if self.positional:
            return f"[{self.metavar}]" if self.optional else self.metavar
        text = self.flags[0] if self.flag else f"{self.flags[0]} {self.metavar}"
        text = text + " …" if self.repeat else text
        return text if self.required else f"[{text}]"


class Command:
    """A command: its arguments and handler (`run`), and the verbs that may follow its name.

    A command with both verbs and a handler runs the handler when the next word is not one of
    its verbs (`pm project NAME` is `pm project show NAME`, `pm jobs` lists jobs). `later`
    gives the arguments that only the daemon knows (`pm project set`'s fields), asked when
    the command is reached."""

    __slots__ = ("args", "description", "help", "later", "name", "run", "verbs")

    def __init__(
        self,
        name: str,
        run: Handler | None = None,
        args: Iterable[Arg] = (),
        *,
        help: str = "",
        description: str = "",
        verbs: Iterable[Command] = (),
        later: Callable[[Session], list[Arg]] | None = None,
    ) -> None:
        self.name = name
        self.later = later
        self.run = run
        self.args = list(args)
        self.help = help
        self.description = description
        self.verbs = {verb.name: verb for verb in verbs}

    def option(self, word: str) -> Arg | None:
        for arg in self.args:
            if word in arg.flags:
                return arg
        return None

    def positionals(self) -> list[Arg]:
        return [arg for arg in self.args if arg.positional]


def is_option(word: str) -> bool:
    """`-x`, `--x`, but not `-` (stdin) nor a negative number (a value)."""
    return word.startswith("-") and word != "-" and not _number(word)


def _number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


class WrongWords(UsageError):
    """The words are not a command as described: `path` is the command they reached (its
    usage line is shown with the message: client.helptext)."""

    def __init__(self, message: str, path: list[Command]) -> None:
        super().__init__(message)
        self.path = path


class ShowHelp(Exception):
    """`-h`/`--help` was given: show the help of the command at `path`."""

    def __init__(self, path: list[Command]) -> None:
        super().__init__("help")
        self.path = path


def parse(
    root: Command, words: Sequence[str], s: Session | None = None
) -> tuple[list[Command], Args]:
    """The command the words name (with the commands above it) and its arguments; `s`, when
    given, completes a command whose arguments come `later`. Raises UsageError (exit 2, with
    the usage line) or ShowHelp."""
    path = [root]
    node = root
    i = 0
    while i < len(words) and node.verbs:  # descend through verbs while they are named
        word = words[i]
        if word in ("-h", "--help"):
            _arrive(node, s)
            raise ShowHelp(path)
        if word not in node.verbs:
            break
        node = node.verbs[word]
        path.append(node)
        i += 1
    _arrive(node, s)
    if node.run is None:
        what = "command" if len(path) == 1 else "verb"
        problem = f"unknown {what} {words[i]!r}" if i < len(words) else f"a {what} is needed"
        raise WrongWords(f"{problem} (choose from {', '.join(node.verbs)})", path)
    try:
        values = _read(node, words[i:], path)
    except UsageError as e:
        raise WrongWords(str(e), path) from None
    values["command"] = " ".join(c.name for c in path[1:])
    return path, Args(**values)


def _arrive(node: Command, s: Session | None) -> None:
    """The arguments only the daemon knows, asked now that the command is reached."""
    if node.later is not None and s is not None:
        node.args, node.later = node.later(s), None


def _read(node: Command, words: Sequence[str], path: list[Command]) -> dict[str, Any]:
    reader = _Reader(node, path)
    i = 0
    while i < len(words):
        i = reader.take(words, i)
    return reader.finish()


class _Reader:
    """One command's words read one at a time into its arguments' values."""

    def __init__(self, node: Command, path: list[Command]) -> None:
        self.node = node
        self.path = path
        self.values: dict[str, Any] = {
            a.dest: ([] if a.repeat else False if a.flag else a.default) for a in node.args
        }
        self.given: dict[str, str] = {}  # dest → the flag it was given with
        self.positionals = node.positionals()
        self.filled = 0
        self.only_positionals = False  # after `--`

    def take(self, words: Sequence[str], i: int) -> int:
        """Read the word at `i` (and its value); the index of the next one."""
        word = words[i]
        if not self.only_positionals:
            if word == "--":
                self.only_positionals = True
                return i + 1
            if word in ("-h", "--help"):
                raise ShowHelp(self.path)
            if is_option(word):
                return self._option(words, i)
        if self.filled >= len(self.positionals):
            raise UsageError(f"unrecognized arguments: {' '.join(words[i:])}")
        arg = self.positionals[self.filled]
        self.values[arg.dest] = arg.value(word, arg.metavar)
        self.filled += 1
        return i + 1

    def _option(self, words: Sequence[str], i: int) -> int:
        name, has_value, inline = words[i].partition("=")
        arg = self.node.option(name)
        if arg is None:
            raise UsageError(f"unrecognized arguments: {words[i]}")
        i += 1
        if arg.flag:
            if has_value:
                raise UsageError(f"argument {name}: ignored explicit argument {inline!r}")
            self.values[arg.dest] = True
        else:
            if not has_value:
                if i >= len(words) or is_option(words[i]):
                    raise UsageError(f"argument {name}: expected one argument")
                inline = words[i]
                i += 1
            value = arg.value(inline, name)
            if arg.repeat:
                self.values[arg.dest].append(value)
            else:
                self.values[arg.dest] = value
        self.given[arg.dest] = name
        return i

    def finish(self) -> dict[str, Any]:
        missing = [a.metavar for a in self.positionals[self.filled :] if not a.optional]
        missing += [a.flags[0] for a in self.node.args if a.required and a.dest not in self.given]
        if missing:
            raise UsageError(f"the following arguments are required: {', '.join(missing)}")
        groups: dict[str, str] = {}
        for arg in self.node.args:
            if arg.group is None or arg.dest not in self.given:
                continue
            flag = self.given[arg.dest]
            if arg.group in groups:
                raise UsageError(f"argument {flag}: not allowed with argument {groups[arg.group]}")
            groups[arg.group] = flag
        return self.values
