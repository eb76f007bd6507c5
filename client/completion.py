"""Shell completion: `pm completion bash|zsh|fish` prints a script; on every Tab the script
asks `pm __complete -- WORD… CURRENT` for what may come next.

The answer is read from the parser itself (commands, verbs, options, choices), so it never
drifts from what `pm` accepts, and project names come from the daemon when it answers: over a
connection with a short timeout, never starting the daemon, never waiting on one that hangs.
When nothing is offered (a path is expected, say) the shell completes file names.
"""

from __future__ import annotations

import argparse
import os
import sys

from client import errors, locations
from client.cli import split_globals
from client.commands import DEFAULT_VERB, build_parser, route, subcommands
from client.sync import Client

NAMES_TIMEOUT_S = 0.5  # per socket operation: a Tab must never hang on a stuck daemon

_BASH = """\
# pm completion for bash: eval "$(pm completion bash)" in ~/.bashrc
_pm_complete() {
    local IFS=$'\\n'
    COMPREPLY=($(%(pm)s __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -o bashdefault -F _pm_complete pm
"""

_ZSH = """\
#compdef pm
# pm completion for zsh: eval "$(pm completion zsh)" in ~/.zshrc, after compinit
_pm() {
    local -a candidates
    candidates=(${(f)"$(%(pm)s __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)"})
    if (( ${#candidates} )); then
        compadd -a candidates
    else
        _files
    fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _pm "$@"
else
    compdef _pm pm
fi
"""

_FISH = """\
# pm completion for fish: pm completion fish > ~/.config/fish/completions/pm.fish
function __pm_complete
    set -l words (commandline -opc)
    set -e words[1]
    set -l candidates (%(pm)s __complete -- $words (commandline -ct) 2>/dev/null)
    if test (count $candidates) -gt 0
        printf '%%s\\n' $candidates
    else
        __fish_complete_path (commandline -ct)
    end
end
complete -c pm -f -a '(__pm_complete)'
"""

SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}


def _pm_command() -> str:
    """This very `pm` when run as the console script (so completion works off PATH too)."""
    import shlex

    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "pm" and os.path.isfile(argv0):
        return shlex.quote(os.path.abspath(argv0))
    return "command pm"


def script(shell: str) -> str:
    return SCRIPTS[shell] % {"pm": _pm_command()}


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
    parser = build_parser()
    # A command alone is not routed yet: its verbs (and, for `pm project`, names) are offered.
    routed = route(parser, before) if before[1:] else before
    node, positionals, pending = _walk(parser, routed)
    if pending is not None:
        offered = _values(pending)
    elif current.startswith("-"):
        offered = [*_options(node), "--json", "--no-spawn", "--socket"]
    else:
        offered = _positionals(node, positionals, parser, routed, flags["socket"])
    return sorted({c for c in offered if c.startswith(current)})


def _walk(
    parser: argparse.ArgumentParser, words: list[str]
) -> tuple[argparse.ArgumentParser, int, argparse.Action | None]:
    """The (sub)parser the words lead to, how many of its positionals they filled, and the
    option still waiting for its value (if the last word was one)."""
    node, positionals, pending = parser, 0, None
    for word in words:
        if pending is not None:
            pending = None
            continue
        if word.startswith("-"):
            action = _option(node, word.split("=", 1)[0])
            if action is not None and action.nargs != 0 and "=" not in word:
                pending = action
            continue
        verbs = subcommands(node)
        if word in verbs:
            node, positionals = verbs[word], 0
            continue
        positionals += 1
    return node, positionals, pending


def _option(node: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    for action in node._actions:
        if flag in action.option_strings:
            return action
    return None


def _options(node: argparse.ArgumentParser) -> list[str]:
    return [s for a in node._actions for s in a.option_strings if s.startswith("--")]


def _values(action: argparse.Action) -> list[str]:
    if action.choices is not None:
        return [str(c) for c in action.choices]
    if action.dest == "reset":  # `pm project set --reset FIELD`
        from client.projects_cli import SETTABLE

        return list(SETTABLE)
    return []


def _positionals(
    node: argparse.ArgumentParser,
    filled: int,
    top: argparse.ArgumentParser,
    routed: list[str],
    socket: str | None,
) -> list[str]:
    offered: list[str] = []
    verbs = subcommands(node)
    if verbs:
        offered += [name for name in verbs if " " not in name]
        if node.get_default(DEFAULT_VERB) == "show":  # `pm project NAME` shows it
            offered += project_names(socket)
        if node is top:
            return offered
    if len(routed) == 1 and filled == 0:
        # A command named by two words may start here (`pm quality scan`).
        offered += [n.split(" ", 1)[1] for n in subcommands(top) if n.startswith(routed[0] + " ")]
    wanted = [
        a
        for a in node._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
    ]
    if filled < len(wanted):
        action = wanted[filled]
        if action.metavar == "PROJECT":
            offered += project_names(socket)
        elif action.choices is not None:
            offered += [str(c) for c in action.choices]
    return offered


def project_names(socket: str | None) -> list[str]:
    """Every present project's name, if a daemon answers at once; else none. Never starts
    one (the client connects, and nothing more), never waits more than a moment."""
    try:
        path = locations.client_socket_path(socket)
        with Client(path, timeout=NAMES_TIMEOUT_S).connect() as client:
            page = client.call("projects.list", {"order": "name", "limit": 10000})
    except (errors.ClientError, locations.ConfigFileError, OSError):
        return []
    names = [p.get("name") for p in page.get("items", [])]
    # One name a line: a name a line cannot carry (or a shell would act on) is left out.
    return [n for n in names if isinstance(n, str) and n.isprintable() and n]
