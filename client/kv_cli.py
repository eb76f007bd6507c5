"""`pm kv get|set|delete|list|clear`: the key-value store."""

from __future__ import annotations

import sys

from client import errors, fastjson, output
from client.args import stdin_or
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session


def _value(args: Args) -> Any:
    text = stdin_or(args.value)
    if args.string:
        # `echo text | pm kv set NS K - --string` stores "text": the newline ends the input.
        return text[:-1] if args.value == "-" and text.endswith("\n") else text
    try:
        return fastjson.loads(text)
    except ValueError:
        raise errors.UsageError(
            f"VALUE is not JSON: {output.visible(text[:200])!r}. Quote a string as JSON "
            "('\"text\"') or pass --string to store the text as it is"
        ) from None


def cmd_kv_get(args: Args, s: Session) -> int:
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


def cmd_kv_set(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"namespace": args.namespace, "key": args.key, "value": _value(args)}
    if args.ttl is not None:
        params["ttl_s"] = args.ttl
    if args.expires_at is not None:
        params["expires_at"] = args.expires_at
    result = s.call("kv.set", params)
    if args.json:
        output.print_json(result)
    return 0


def cmd_kv_delete(args: Args, s: Session) -> int:
    result = s.call("kv.delete", {"namespace": args.namespace, "key": args.key})
    if args.json:
        output.print_json(result)
    elif not result["deleted"]:
        output.error(f"{args.namespace}/{args.key} was not set; nothing deleted")
    return 0


def cmd_kv_clear(args: Args, s: Session) -> int:
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


def cmd_kv_list(args: Args, s: Session) -> int:
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


def command(word: str) -> Command:
    namespace, key = Arg("namespace"), Arg("key")
    return Command(
        "kv",
        help="the key-value store",
        verbs=[
            Command(
                "get",
                cmd_kv_get,
                [
                    namespace,
                    key,
                    Arg("raw", "--raw", flag=True, help="a string as its text, without quotes"),
                ],
                help="print the value (exit 1 when not set)",
            ),
            Command(
                "set",
                cmd_kv_set,
                [
                    namespace,
                    key,
                    Arg("value"),
                    Arg("string", "--string", flag=True, help="store VALUE as a plain string"),
                    Arg(
                        "ttl",
                        "--ttl",
                        convert=float,
                        group="expiry",
                        help="expire after this many seconds",
                    ),
                    Arg(
                        "expires_at",
                        "--expires-at",
                        group="expiry",
                        help="expire at this ISO 8601 time (with a timezone)",
                    ),
                ],
                help="VALUE is JSON unless --string; - reads stdin",
            ),
            Command("delete", cmd_kv_delete, [namespace, key], help="delete one key"),
            Command(
                "list",
                cmd_kv_list,
                [
                    Arg("namespace", optional=True),
                    Arg("prefix", "--prefix"),
                    Arg("limit", "--limit", convert=int, default=100, metavar="N"),
                    Arg("offset", "--offset", convert=int, default=0, metavar="N"),
                ],
                help="the live entries, by namespace and key",
            ),
            Command(
                "clear",
                cmd_kv_clear,
                [
                    namespace,
                    Arg("prefix", "--prefix"),
                    Arg("yes", "--yes", flag=True, help="confirm"),
                ],
                help="delete a namespace (or a key prefix)",
            ),
        ],
    )
