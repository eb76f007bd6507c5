"""Every `pm` command but the fast `pm status`: argparse, then one function per command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from client import errors, locations, output
from client.cli import render_status
from client.sync import Client

Handler = Callable[[argparse.Namespace, "Session"], int]


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's default exits 2 with usage: keep that
        self.print_usage(sys.stderr)
        raise UsageError(message)


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

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


# --- commands -------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, s: Session) -> int:
    output.show(s.call("daemon.status"), args.json, render_status)
    return 0


def cmd_call(args: argparse.Namespace, s: Session) -> int:
    text = sys.stdin.read() if args.params == "-" else args.params
    params = None
    if text is not None:
        try:
            params = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"PARAMS is not valid JSON: {e}") from None
        if not isinstance(params, dict):
            raise UsageError("PARAMS must be a JSON object (params are by name)")
    output.print_json(s.call(args.method, params))
    return 0


def _value(args: argparse.Namespace) -> Any:
    if args.string:
        return args.value
    try:
        return json.loads(args.value)
    except json.JSONDecodeError:
        raise UsageError(
            f"VALUE is not JSON: {args.value!r}. Quote a string as JSON ('\"text\"') "
            "or pass --string to store the text as it is"
        ) from None


def cmd_kv_get(args: argparse.Namespace, s: Session) -> int:
    result = s.call("kv.get", {"namespace": args.namespace, "key": args.key})
    if args.json:
        output.print_json(result)
    elif result["value"] is not None:
        output.print_json(result["value"])
    if result["value"] is None:
        output.error(f"{args.namespace}/{args.key} is not set")
        return 1
    return 0


def cmd_kv_set(args: argparse.Namespace, s: Session) -> int:
    params: dict[str, Any] = {"namespace": args.namespace, "key": args.key, "value": _value(args)}
    if args.ttl is not None:
        params["ttl_s"] = args.ttl
    if args.expires_at is not None:
        params["expires_at"] = args.expires_at
    result = s.call("kv.set", params)
    if args.json:
        output.print_json(result)
    return 0


def cmd_kv_delete(args: argparse.Namespace, s: Session) -> int:
    result = s.call("kv.delete", {"namespace": args.namespace, "key": args.key})
    if args.json:
        output.print_json(result)
    elif not result["deleted"]:
        output.error(f"{args.namespace}/{args.key} was not set; nothing deleted")
    return 0


def cmd_kv_clear(args: argparse.Namespace, s: Session) -> int:
    if not args.yes:
        raise UsageError(f"this deletes every key of {args.namespace!r}: add --yes to confirm")
    params: dict[str, Any] = {"namespace": args.namespace}
    if args.prefix:
        params["prefix"] = args.prefix
    result = s.call("kv.clear", params)
    if args.json:
        output.print_json(result)
    else:
        print(f"deleted {result['deleted']}")
    return 0


def cmd_kv_list(args: argparse.Namespace, s: Session) -> int:
    params: dict[str, Any] = {"limit": args.limit, "offset": args.offset}
    if args.namespace:
        params["namespace"] = args.namespace
    if args.prefix:
        params["prefix"] = args.prefix
    page = s.call("kv.list", params)
    if args.json:
        output.print_json(page)
        return 0
    rows = [
        [e["namespace"], e["key"], output.compact(e["value"], 50), e["updated_at"][:19] + "Z"]
        for e in page["items"]
    ]
    sys.stdout.write(output.table(["NAMESPACE", "KEY", "VALUE", "UPDATED"], rows))
    shown = len(page["items"])
    if page["total"] > args.offset + shown:
        output.error(f"showing {shown} of {page['total']}; use --offset/--limit for more")
    return 0


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(
            f"{event['seq']:>8}  {event['ts'][:19]}Z  {event['type']:<16} "
            f"{output.compact(event['data'], 80)}\n"
        )
    sys.stdout.flush()


def cmd_events(args: argparse.Namespace, s: Session) -> int:
    topics = args.topic or []
    if not args.follow:
        page = s.call(
            "events.list",
            {"since": args.since or 0, "topics": topics, "limit": args.limit},
        )
        for event in page["items"]:
            _print_event(event, args.json)
        return 0
    params: dict[str, Any] = {"topics": topics}
    if args.since is not None:
        params["since"] = args.since
    client = s.client()
    s.call("events.subscribe", params)
    try:
        for message in client.notifications():
            if message.get("method") == "events.event":
                _print_event(message["params"]["event"], args.json)
    except KeyboardInterrupt:
        return 130
    output.error("the daemon closed the connection")
    return errors.EXIT_UNAVAILABLE


def cmd_daemon(args: argparse.Namespace, s: Session) -> int:
    from client import daemonctl

    return daemonctl.run(args.daemon_command, s)


# --- parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pm", description="Talk to pm-agentd, the project-memory daemon.")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--socket", help="the daemon's socket (default: as the daemon resolves it)")
    p.add_argument("--no-spawn", action="store_true", help="never start the daemon")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("status", help="the daemon's state and figures").set_defaults(fn=cmd_status)

    call = sub.add_parser("call", help="call any method: pm call kv.get '{\"namespace\":…}'")
    call.add_argument("method")
    call.add_argument("params", nargs="?", help="params as a JSON object, or - for stdin")
    call.set_defaults(fn=cmd_call)

    kv = sub.add_parser("kv", help="the key-value store")
    kv_sub = kv.add_subparsers(dest="kv_command", required=True, parser_class=_Parser)
    for name, fn in (("get", cmd_kv_get), ("delete", cmd_kv_delete)):
        c = kv_sub.add_parser(name)
        c.add_argument("namespace")
        c.add_argument("key")
        c.set_defaults(fn=fn)
    kv_set = kv_sub.add_parser("set", help="VALUE is JSON unless --string")
    kv_set.add_argument("namespace")
    kv_set.add_argument("key")
    kv_set.add_argument("value")
    kv_set.add_argument("--string", action="store_true", help="store VALUE as a plain string")
    expiry = kv_set.add_mutually_exclusive_group()
    expiry.add_argument("--ttl", type=float, help="expire after this many seconds")
    expiry.add_argument("--expires-at", help="expire at this ISO 8601 time (with a timezone)")
    kv_set.set_defaults(fn=cmd_kv_set)
    kv_list = kv_sub.add_parser("list")
    kv_list.add_argument("namespace", nargs="?")
    kv_list.add_argument("--prefix")
    kv_list.add_argument("--limit", type=int, default=100)
    kv_list.add_argument("--offset", type=int, default=0)
    kv_list.set_defaults(fn=cmd_kv_list)
    kv_clear = kv_sub.add_parser("clear", help="delete a namespace (or a key prefix)")
    kv_clear.add_argument("namespace")
    kv_clear.add_argument("--prefix")
    kv_clear.add_argument("--yes", action="store_true", help="confirm")
    kv_clear.set_defaults(fn=cmd_kv_clear)

    ev = sub.add_parser("events", help="past change events, or follow live ones")
    ev.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    ev.add_argument("--since", type=int, help="events after this sequence number")
    ev.add_argument("--topic", action="append", help="only this topic (kv) or type (kv.set)")
    ev.add_argument("--limit", type=int, default=100)
    ev.set_defaults(fn=cmd_events)

    from client import db_cli, doctor, jobs_cli, projects_cli, quality_cli

    for module in (projects_cli, quality_cli, jobs_cli, db_cli, doctor):
        module.add_parsers(sub)

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
    return p


def run(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        output.error(str(e))
        return errors.EXIT_USAGE
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        session = Session(args)
    except locations.ConfigFileError as e:
        output.error(str(e))
        return errors.EXIT_FAILED
    try:
        handler: Handler = args.fn
        return handler(args, session)
    except UsageError as e:
        output.error(str(e))
        return errors.EXIT_USAGE
    except errors.RemoteError as e:
        kind = f" [{e.kind}]" if e.kind else ""
        output.error(f"{args.command}: {e.message}{kind}")
        return e.exit_code
    except errors.ClientError as e:
        output.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        session.close()
