"""`pm events`: the newest change events, a page of them, or a live stream that lasts.

`pm events` shows the newest 20 (oldest of them first, like `tail`); `--before SEQ` pages
back, `--since SEQ` pages forward, `--limit N` sets the page. `--follow` streams live events
until Ctrl-C: quiet hours are fine (no read timeout; the daemon never closes a connection that
has a subscription), and when the daemon goes away (a restart, an upgrade) it reconnects with
a backoff, saying so on stderr, and resumes after the last event it printed — no gap, no
duplicate (`events.subscribe {since}` replays what the log holds).
"""

from __future__ import annotations

import sys
import time

from client import errors, output
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session
    from client.sync import Client

NEWEST = 20  # `pm events` and `--before`: one screen
FORWARD = 100  # `--since`: a page of the log, oldest first
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
_RETRY_KINDS = ("starting", "shutting_down", "busy")


def print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(output.json_text(event) + "\n")
    else:
        kind = output.visible(str(event["type"]))
        sys.stdout.write(
            f"{event['seq']:>8}  {event['ts'][:19]}Z  {kind:<16} "
            f"{output.compact(event['data'], 80)}\n"
        )
    sys.stdout.flush()


def cmd_events(args: Args, s: Session) -> int:
    topics: list[str] = args.topic or []
    if args.follow:
        if args.before is not None:
            raise errors.UsageError("--before pages back through the log; --follow goes forward")
        return follow(s, topics, args.since, args.json)
    if args.since is not None and args.before is not None:
        raise errors.UsageError("give --since (pages forward) or --before (pages back), not both")
    if args.since is not None:
        _forward(s, topics, args.since, args.limit or FORWARD, args.json)
    else:
        _backward(s, topics, args.before, args.limit or NEWEST, args.json)
    return 0


def _page(s: Session, since: int, topics: list[str], limit: int, offset: int) -> Any:
    params = {"since": since, "topics": topics, "limit": limit, "offset": offset}
    return s.call("events.list", params)


def _hint(flag: str, seq: int, topics: list[str]) -> str:
    return " ".join(["pm events", flag, str(seq), *(f"--topic {t}" for t in topics)])


def _forward(s: Session, topics: list[str], since: int, limit: int, as_json: bool) -> None:
    page = _page(s, since, topics, limit, 0)
    items = page["items"]
    for event in items:
        print_event(event, as_json)
    if page["total"] > len(items) and items:
        output.error(
            f"{len(items)} of the {page['total']} events after {since}; "
            f"next: {_hint('--since', items[-1]['seq'], topics)}"
        )


def _backward(s: Session, topics: list[str], before: int | None, limit: int, as_json: bool) -> None:
    """The `limit` events just before `before` (or the newest), oldest of them first. The log
    is paged oldest first, so count, then skip; again if it changed meanwhile."""
    for _ in range(3):
        total = _page(s, 0, topics, 1, 0)["total"]
        later = 0 if before is None else _page(s, max(0, before - 1), topics, 1, 0)["total"]
        count = total - later
        if count <= 0:
            output.error("no events" + (f" before {before}" if before is not None else ""))
            return
        offset = max(0, count - limit)
        page = _page(s, 0, topics, min(limit, count), offset)
        if page["total"] == total:
            break
    items = [e for e in page["items"] if before is None or e["seq"] < before]
    for event in items:
        print_event(event, as_json)
    if offset and items:
        shown = "the newest" if before is None else "the last"
        where = "" if before is None else f" before {before}"
        output.error(
            f"{shown} {len(items)} of {count} events{where}; "
            f"earlier: {_hint('--before', items[0]['seq'], topics)}"
        )


def follow(s: Session, topics: list[str], since: int | None, as_json: bool) -> int:
    """Print live events until Ctrl-C, surviving quiet hours and daemon restarts."""
    return _Follower(s, topics, since, as_json).run()


class _Follower:
    def __init__(self, s: Session, topics: list[str], since: int | None, as_json: bool) -> None:
        self.s = s
        self.topics = topics
        self.as_json = as_json
        self.printed = since  # the newest event printed: never print it or an older one again
        self.resume = since  # `since` for the next subscription

    def run(self) -> int:
        client = self._subscribe(spawn=None)  # the first time, as any command: errors end it
        while True:
            for message in client.notifications():
                if message.get("method") == "events.event":
                    self._show(message["params"]["event"])
            client = self._reconnect(client.lost or "the daemon closed the connection")

    def _show(self, event: dict[str, Any]) -> None:
        if self.printed is not None and event["seq"] <= self.printed:
            return  # shown before the connection was lost
        print_event(event, self.as_json)
        self.printed = self.resume = event["seq"]

    def _subscribe(self, *, spawn: bool | None) -> Client:
        self.s.close()  # a fresh connection: the old one is gone
        client = self.s.client(spawn=spawn)
        params: dict[str, Any] = {"topics": self.topics}
        if self.resume is not None:
            params["since"] = self.resume
        reply = self.s.call("events.subscribe", params)
        if reply.get("missed"):
            output.error(
                f"events after {self.resume} up to {reply.get('oldest_seq')} were "
                "removed from the log (retention) before they could be shown"
            )
        if self.resume is None:
            self.resume = int(reply["last_seq"])  # live only: what came before is not ours
        client.settimeout(None)  # quiet is normal: wait for the next event however long
        return client

    def _reconnect(self, why: str) -> Client:
        output.error(
            f"lost pm-agentd ({why}); reconnecting, every {RETRY_FIRST_S:g} s at first, "
            f"backing off to every {RETRY_MAX_S:g} s (Ctrl-C to stop)"
        )
        delay = RETRY_FIRST_S
        while True:
            time.sleep(delay)
            try:
                client = self._subscribe(spawn=False)  # wait for it; never start one meanwhile
            except (errors.Unreachable, errors.ProtocolError):
                pass
            except errors.RemoteError as e:
                if e.kind not in _RETRY_KINDS:
                    raise
            else:
                output.error(f"reconnected; resuming after event {self.resume}")
                return client
            delay = min(delay * 2, RETRY_MAX_S)


def command(word: str) -> Command:
    return Command(
        "events",
        cmd_events,
        [
            Arg(
                "follow",
                "--follow",
                "-f",
                flag=True,
                help="print live events until Ctrl-C; survives daemon restarts",
            ),
            Arg(
                "since",
                "--since",
                convert=int,
                metavar="SEQ",
                help="events after this sequence number",
            ),
            Arg("before", "--before", convert=int, metavar="SEQ", help="events before this one"),
            Arg(
                "topic",
                "--topic",
                repeat=True,
                metavar="T",
                help="only this topic (kv) or type (kv.created)",
            ),
            Arg(
                "limit",
                "--limit",
                convert=int,
                metavar="N",
                help=f"how many (default {NEWEST}; {FORWARD} with --since)",
            ),
        ],
        help="the newest change events, a page of them, or --follow live ones",
        description=f"Without options: the newest {NEWEST} events. Page back with "
        f"--before SEQ, forward with --since SEQ ({FORWARD} at a time), or set --limit.",
    )
