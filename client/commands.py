"""Every `pm` command but the fast `pm status`: argparse, then one function per command.

Global flags (`--json`, `--socket PATH`, `--no-spawn`) may stand anywhere (client.cli takes
them out first). A failure ends with one message on stderr — under `--json`, a JSON object
`{"message", "kind", "exit_code"}` — and the exit code of the README.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from client import errors, locations, output
from client.cli import render_status, split_globals
from client.sync import Client
from client.version import __version__

Handler = Callable[[argparse.Namespace, "Session"], int]


UsageError = errors.UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 with the usage, as argparse's default does
        raise UsageError(message, self.format_usage())


class Session:
    """The connection a command uses, made (and the daemon started) only when needed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.socket_path = locations.client_socket_path(args.socket)
        self._client: Client | None = None

    def client(self, *, spawn: bool | None = None) -> Client:
        if self._client is None:
            allowed = not self.args.no_spawn if spawn is None else spawn
            try:
                self._client = Client(self.socket_path).connect()
            except errors.Unreachable:
                if not allowed:
                    raise
                from client import spawn as spawner

                spawner.start(self.socket_path)
                self._client = Client(self.socket_path).connect()
            from client import upgrade

            self._client = upgrade.greet(self._client, self.socket_path)
        return self._client

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        on_notification: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any:
        """Call, waiting (bounded) while the daemon is still starting or migrating."""
        waited = 0.0
        delay = 0.05
        while True:
            try:
                return self.client().call(method, params, on_notification)
            except errors.RemoteError as e:
                if e.kind != "starting" or waited > 120:
                    raise
                if waited == 0:
                    output.error("the daemon is starting; waiting…")
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 1.0)

    def call_with_progress(self, method: str, params: dict[str, Any]) -> Any:
        """A long call with `$/progress` shown as a bar on stderr (on a terminal)."""
        self.client()  # connect (and start the daemon) before the bar appears
        bar = output.ProgressBar()

        def on_notification(message: dict[str, Any]) -> None:
            if message.get("method") == "$/progress":
                value = message.get("params", {}).get("value", {})
                bar.update(value.get("percentage"), value.get("message", ""))

        try:
            return self.call(method, {**params, "workDoneToken": f"pm-{method}"}, on_notification)
        finally:
            bar.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


# --- commands -------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, s: Session) -> int:
    output.show(s.call("daemon.status"), args.json, render_status)
    return 0


def stdin_or(text: str) -> str:
    """`-` means the text on stdin, as in `pm call METHOD -` and `pm kv set NS K -`."""
    return sys.stdin.read() if text == "-" else text


def cmd_call(args: argparse.Namespace, s: Session) -> int:
    params = None
    if args.params is not None:
        text = stdin_or(args.params)
        try:
            params = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"PARAMS is not valid JSON: {e}") from None
        if params == []:
            params = None  # JSON-RPC's "no params", as `null` is
        if params is not None and not isinstance(params, dict):
            raise UsageError("PARAMS must be a JSON object (params are by name), or null")
    output.print_json(s.call(args.method, params))
    return 0


def cmd_daemon(args: argparse.Namespace, s: Session) -> int:
    from client import daemonctl

    return daemonctl.run(args.daemon_command, s)


def cmd_completion(args: argparse.Namespace, s: Session) -> int:
    from client import completion

    sys.stdout.write(completion.script(args.shell))
    return 0


def _resolving(fn: Handler, dest: str) -> Handler:
    """`fn` with its project argument resolved first (`.`, a subfolder: client.current)."""

    def handler(args: argparse.Namespace, s: Session) -> int:
        from client import current

        text = getattr(args, dest)
        if text is not None and current.is_path(text):
            setattr(args, dest, str(current.project_ref(s, text)))
        return fn(args, s)

    return handler


# --- parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pm", description="Talk to pm-agentd, the project-memory daemon.")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--socket", help="the daemon's socket (default: as the daemon resolves it)")
    p.add_argument("--no-spawn", action="store_true", help="never start the daemon")
    p.add_argument("--version", action="version", version=f"pm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    sub.add_parser("status", help="the daemon's state and figures").set_defaults(fn=cmd_status)

    call = sub.add_parser("call", help="call any method: pm call kv.get '{\"namespace\":…}'")
    call.add_argument("method")
    call.add_argument("params", nargs="?", help="params: a JSON object or null; - reads stdin")
    call.set_defaults(fn=cmd_call)

    from client import (
        db_cli,
        doctor,
        events_cli,
        jobs_cli,
        kv_cli,
        projects_cli,
        quality_cli,
        scans_cli,
    )

    for module in (kv_cli, events_cli, projects_cli, scans_cli, quality_cli, jobs_cli, db_cli,
                   doctor):  # fmt: skip
        module.add_parsers(sub)
    quality = sub.choices["quality"]
    quality.set_defaults(fn=_resolving(quality_cli.cmd_quality, "name"))
    for action in quality._actions:  # its NAME is a project: say so (help, completion)
        if action.dest == "name":
            action.metavar = "PROJECT"

    dm = sub.add_parser(
        "daemon", help="start, stop, restart or inspect pm-agentd; run it at login (install)"
    )
    dm.add_argument(
        "daemon_command",
        choices=["start", "stop", "restart", "status", "install", "uninstall"],
    )
    dm.add_argument(
        "--manager",
        choices=["systemd", "launchd"],
        help="the service manager to install for or act through (default: launchd on macOS, "
        "systemd elsewhere)",
    )
    dm.set_defaults(fn=cmd_daemon)

    comp = sub.add_parser(
        "completion", help='a completion script: eval "$(pm completion bash)" (zsh, fish)'
    )
    comp.add_argument("shell", choices=["bash", "zsh", "fish"])
    comp.set_defaults(fn=cmd_completion)
    return p


DEFAULT_VERB = "default_verb"  # set_defaults(default_verb="show"): the verb when none is given


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices: dict[str, argparse.ArgumentParser] = action.choices
            return choices
    return {}


def route(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """The words as the parser reads them. A command with a default verb takes it when none
    is given (`pm project NAME` is `pm project show NAME`); a command named by two words is
    one command (`pm quality scan`, while `pm quality NAME` stays as it was). Completion
    reads the words the same way."""
    commands = subcommands(parser)
    if len(words) >= 2 and f"{words[0]} {words[1]}" in commands:
        return [f"{words[0]} {words[1]}", *words[2:]]
    if words and words[0] in commands:
        command = commands[words[0]]
        verb = command.get_default(DEFAULT_VERB)
        given = words[1] if len(words) > 1 else None
        if verb and given not in (*subcommands(command), "-h", "--help"):
            return [words[0], verb, *words[1:]]
    return words


def parse(argv: list[str]) -> argparse.Namespace:
    """argv (global flags anywhere) → the command's arguments; UsageError or SystemExit."""
    flags, rest = split_globals(argv)
    parser = build_parser()
    args = parser.parse_args(route(parser, rest))
    args.json, args.socket, args.no_spawn = flags["json"], flags["socket"], flags["no_spawn"]
    return args


def run(argv: list[str]) -> int:
    if argv[:1] == ["__complete"]:  # what the completion scripts ask, on every Tab
        from client.completion import complete

        return complete(argv[1:])
    output.use_json_stderr(split_globals(argv)[0]["json"])
    try:
        args = parse(argv)
    except UsageError as e:
        if e.usage and not output.json_stderr():
            sys.stderr.write(e.usage)
        return output.fail(str(e), kind="usage", exit_code=errors.EXIT_USAGE)
    except SystemExit as e:  # --help, --version
        return int(e.code or 0)
    try:
        session = Session(args)
    except locations.ConfigFileError as e:
        return output.fail(str(e), kind="config", exit_code=errors.EXIT_FAILED)
    try:
        handler: Handler = args.fn
        return handler(args, session)
    except errors.RemoteError as e:
        return output.fail(
            f"{args.command}: {e.message}",
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
        session.close()


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's last flush at exit must not fail again
    os.close(devnull)
