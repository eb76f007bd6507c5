"""events.subscribe, events.unsubscribe, events.list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from daemon.domain.app import App
from daemon.domain.events import history
from daemon.domain.events import names as event_types
from daemon.domain.events.bus import Peer, start_replay
from daemon.domain.projects.ref import ProjectRef, resolve
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods, Params
from daemon.store import events as events_db
from daemon.store.clock import iso
from daemon.store.events import Event
from daemon.store.limits import SQL_INT_MAX, Limit, Offset

Topic = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        description="a topic (`kv`, `projects`…), an event type (`kv.created`…), or `*` for "
        "all;"
        "a name no event has is refused with the list of topics",
    ),
]
# Bounded: each list becomes an SQL `IN (?, …)`, and SQLite keeps every statement it compiled
# in the connection's cache (one with 100,000 topics held 8 MiB until it was pushed out).
Topics = Annotated[list[Topic], msgspec.Meta(max_length=64)]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True, description="ISO 8601 with a timezone")]
Seq = Annotated[
    int, msgspec.Meta(ge=0, le=SQL_INT_MAX, description="a sequence number; events after it")
]


class SubscribeParams(Params, frozen=True):
    topics: Topics = msgspec.field(default_factory=list)
    since: Seq | None = None


class Subscribed(msgspec.Struct, kw_only=True):
    subscription: int
    last_seq: int
    oldest_seq: int | None
    missed: bool  # events after `since` were already pruned from the log


class UnsubscribeParams(Params, frozen=True):
    subscription: int


class Unsubscribed(msgspec.Struct):
    unsubscribed: bool


class EventsListParams(Params, frozen=True):
    since: Seq = 0
    topics: Topics = msgspec.field(default_factory=list)
    project: ProjectRef | None = None  # events naming this project
    after: UtcTime | None = None  # stamped at or after
    before: UtcTime | None = None  # stamped before
    limit: Limit = 100
    offset: Offset = 0


class EventPage(msgspec.Struct, kw_only=True):
    items: list[Event]
    total: int


def _filter(topics: list[str]) -> list[str]:
    """The topics and types to keep (none: all). A name the daemon never emits is refused with
    the names there are: a typo must not be a silent, empty stream."""
    if event_types.ALL in topics:
        return []
    known = event_types.names()
    unknown = sorted(set(topics) - known.filters)
    if unknown:
        said = ", ".join(repr(name) for name in unknown)
        raise InvalidParams(
            f"Invalid params: no event has the topic {said}; the topics are "
            f"{', '.join(known.topics)} (or name a type, such as {known.types[0]}, or "
            f"{event_types.ALL} for all)",
            field="topics",
            unknown=unknown,
            topics=known.topics,
            types=known.types,
        )
    return sorted(set(topics))


methods = Methods()


@methods("events.subscribe")
async def subscribe(app: App, call: Call, params: SubscribeParams) -> Subscribed:
    """Stream change events as `events.event` notifications ({subscription, event}).

    `topics` filters by topic (`kv`) or type (`kv.created`); none (or `*`) means all, and a name
    no event has is refused. With `since`, every logged event after that sequence number
    comes first, then live ones.
    """
    topics = _filter(params.topics)
    peer: Peer = call.session
    sub = app.bus.subscribe(peer, topics, params.since)
    call.session.on_close(lambda: app.bus.drop_peer(peer))
    oldest = await app.db.read(events_db.oldest_seq)
    since = params.since
    if since is not None:
        call.after_reply(lambda: start_replay(app.bus, sub, since))
    return Subscribed(
        subscription=sub.id,
        last_seq=app.db.writer.last_seq,
        oldest_seq=oldest,
        missed=since is not None and oldest is not None and oldest > since + 1,
    )


@methods("events.unsubscribe")
async def unsubscribe(app: App, call: Call, params: UnsubscribeParams) -> Unsubscribed:
    """Stop one subscription of this connection."""
    peer: Peer = call.session
    return Unsubscribed(app.bus.unsubscribe(peer, params.subscription))


@methods("events.list")
async def list_(app: App, call: Call, params: EventsListParams) -> EventPage:
    """Logged events after `since`, oldest first; `topics` as for events.subscribe; only
    those naming `project` (its id, path or name); stamped from `after`, before `before`."""
    topics = _filter(params.topics)
    project = (await resolve(app.db, params.project)).id if params.project else None
    items, total = await app.db.read(
        history.page, params.since, topics, project,
        iso(params.after) if params.after else None,
        iso(params.before) if params.before else None, params.limit, params.offset,
    )  # fmt: skip
    return EventPage(items=items, total=total)
