"""`pm status` (when the fast path hands over: after an upgrade), `pm call METHOD [PARAMS]`
and `pm completion SHELL`."""

from __future__ import annotations

import sys

from client import errors, output
from client.args import stdin_or
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from client.args import Args
    from client.session import Session


def cmd_status(args: Args, s: Session) -> int:
    from client.status_view import render_status

    output.show(s.call("daemon.status"), args.json, render_status)
    return 0


def cmd_call(args: Args, s: Session) -> int:
    from client import fastjson

    params = None
    if args.params is not None:
        text = stdin_or(args.params)
        try:
            params = fastjson.loads(text)
        except ValueError as e:
            raise errors.UsageError(f"PARAMS is not valid JSON: {e}") from None
        if params == []:
            params = None  # JSON-RPC's "no params", as `null` is
        if params is not None and not isinstance(params, dict):
            raise errors.UsageError("PARAMS must be a JSON object (params are by name), or null")
    output.print_json(s.call(args.method, params))
    return 0


def cmd_completion(args: Args, s: Session) -> int:
    from client import completion_scripts

    sys.stdout.write(completion_scripts.script(args.shell))
    return 0


def command(word: str) -> Command:
    if word == "status":
        return Command("status", cmd_status, help="the daemon's state and figures")
    if word == "call":
        return Command(
            "call",
            cmd_call,
            [
                Arg("method"),
                Arg("params", optional=True, help="a JSON object or null; - reads stdin"),
            ],
            help="call any method: pm call kv.get '{\"namespace\":…}'",
        )
    return Command(
        "completion",
        cmd_completion,
        [Arg("shell", choices=["bash", "zsh", "fish"])],
        help='a completion script: eval "$(pm completion bash)" (zsh, fish)',
    )
