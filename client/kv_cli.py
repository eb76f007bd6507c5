"""`pm kv get|set|delete|list|clear`: the key-value store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from client import errors, output
from client.commands import stdin_or

if TYPE_CHECKING:
    from client.commands import Session


def _value(args: argparse.Namespace) -> Any:
    text = stdin_or(args.value)
    if args.string:
        # `echo text | pm kv set NS K - --string` stores "text": the newline ends the input.
        return text[:-1] if args.value == "-" and text.endswith("\n") else text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise errors.UsageError(
            f"VALUE is not JSON: {output.visible(text[:200])!r}. Quote a string as JSON "
            "('\"text\"') or pass --string to store the text as it is"
        ) from None


def cmd_kv_get(args: argparse.Namespace, s: Session) -> int:
    result = s.call("kv.get", {"namespace": args.namespace, "key": args.key})
    value = result["value"]
    if args.json:
        output.print_json(result)
    elif args.raw and isinstance(value, str):
        sys.stdout.write(value + "\n")  # the text itself, for a pipe or $(…)
    elif value is not None:
        output.print_json(value)
    if value is None:
        raise errors.ClientError(f"{args.namespace}/{args.key} is not set", kind="not_found")
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
        raise errors.UsageError(
            f"this deletes every key of {args.namespace!r}: add --yes to confirm"
        )
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


def add_parsers(sub: Any) -> None:
    kv = sub.add_parser("kv", help="the key-value store")
    kv_sub = kv.add_subparsers(dest="kv_command", required=True)
    get = kv_sub.add_parser("get", help="print the value (exit 1 when not set)")
    get.add_argument("namespace")
    get.add_argument("key")
    get.add_argument("--raw", action="store_true", help="a string as its text, without quotes")
    get.set_defaults(fn=cmd_kv_get)
    delete = kv_sub.add_parser("delete")
    delete.add_argument("namespace")
    delete.add_argument("key")
    delete.set_defaults(fn=cmd_kv_delete)
    kv_set = kv_sub.add_parser("set", help="VALUE is JSON unless --string; - reads stdin")
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
