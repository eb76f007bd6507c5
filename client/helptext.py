"""A command's usage line and help text, from its description (client.spec).

Apart from the parser: only a mistake or `--help` pays for loading it.
"""

from __future__ import annotations

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from client.spec import Arg, Command


def usage(path: list[Command]) -> str:
    node = path[-1]
    words = " ".join(["pm", *(c.name for c in path[1:])])
    if node.verbs and node.run is None:
        return f"usage: {words} {{{','.join(node.verbs)}}} …\n"
    parts = [words]
    if node.verbs:
        parts.append(f"[{{{','.join(node.verbs)}}} …]")
    grouped: dict[str, list[Arg]] = {}
    for arg in node.args:
        if arg.group is not None:
            grouped.setdefault(arg.group, []).append(arg)
    shown: set[str] = set()
    for arg in [a for a in node.args if not a.positional] + node.positionals():
        if arg.group is not None:
            if arg.group not in shown:
                shown.add(arg.group)
                members = " | ".join(a.synopsis().strip("[]") for a in grouped[arg.group])
                parts.append(f"[{members}]")
            continue
        parts.append(arg.synopsis())
    return _wrap("usage: ", parts)


def _wrap(head: str, parts: list[str], width: int = 100) -> str:
    """`head` and the parts on lines of at most `width`, the later ones indented under the
    first part's end."""
    first, rest = parts[0], parts[1:]
    indent = " " * (len(head) + len(first) + 1)
    lines = [head + first]
    for part in rest:
        if len(lines[-1]) + 1 + len(part) > width and lines[-1].strip() != first:
            lines.append(indent + part)
        else:
            lines[-1] += " " + part
    return "\n".join(lines) + "\n"


def help_text(path: list[Command], extra: Sequence[tuple[str, str]] = ()) -> str:
    """The usage line, what the command does, its verbs and arguments. `extra`: more
    (name, help) lines for the verbs list (the root's generated nouns)."""
    node = path[-1]
    out = [usage(path).rstrip("\n"), ""]
    about = node.description or node.help
    if about:
        out += [about, ""]
    verbs = [(name, verb.help) for name, verb in node.verbs.items()] + list(extra)
    if verbs:
        out.append("commands:" if len(path) == 1 else "verbs:")
        width = max(len(name) for name, _ in verbs)
        out += [f"  {name:<{width}}  {text}".rstrip() for name, text in verbs]
        out.append("")
    rows = [(a.metavar, a.help) for a in node.positionals()]
    rows += [(_option_label(a), _option_help(a)) for a in node.args if not a.positional]
    if len(path) == 1:
        rows += [
            ("--json", "machine-readable output on stdout (anywhere on the line)"),
            ("--socket PATH", "the daemon's socket (default: as the daemon resolves it)"),
            ("--no-spawn", "never start the daemon"),
            ("--version", "this pm's version"),
        ]
    if rows:
        out.append("arguments:")
        width = max(len(label) for label, _ in rows)
        out += [f"  {label:<{width}}  {text}".rstrip() for label, text in rows]
        out.append("")
    return "\n".join(out)


def _option_label(arg: Arg) -> str:
    names = ", ".join(arg.flags)
    return names if arg.flag else f"{names} {arg.metavar}"


def _option_help(arg: Arg) -> str:
    text = arg.help
    if arg.choices is not None:
        text += (" " if text else "") + "(" + ", ".join(str(c) for c in arg.choices) + ")"
    if arg.repeat:
        text += (" " if text else "") + "(repeatable)"
    if arg.default is not None:
        text += (" " if text else "") + f"(default {arg.default})"
    if arg.required:
        text += (" " if text else "") + "(required)"
    return text
