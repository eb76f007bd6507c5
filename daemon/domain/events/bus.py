"""Live change events: subscriptions fed after each commit, with replay from the log.

A subscriber that gives `since` first receives every logged event after that sequence
number, then live ones, with no gap and no duplicate: live events that arrive during the
replay are held and sent after it, skipping any the replay already sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
import structlog

from daemon.store import events as events_db
from daemon.store.database import Database
from daemon.store.events import Event

log = structlog.get_logger("pm.events")

_REPLAY_PAGE = 1000


class Peer(Protocol):
    """The side of a connection that receives notifications."""

    closed: bool
    subscriptions: int

    def notify(self, method: str, params: Any) -> None: ...


class EventNotice(msgspec.Struct):
    subscription: int
    event: Event


class Subscription:
    def __init__(self, sub_id: int, peer: Peer, topics: frozenset[str], replaying: bool) -> None:
        self.id = sub_id
        self.peer = peer
        self.topics = topics
        self.replaying = replaying
        self.held: list[Event] = []
        self.last_sent = 0

    def wants(self, event: Event) -> bool:
        return not self.topics or event.topic in self.topics or event.type in self.topics

    def send(self, event: Event) -> None:
        if event.seq <= self.last_sent:
            return
        self.last_sent = event.seq
        self.peer.notify("events.event", EventNotice(self.id, event))


class EventBus:
    def __init__(self) -> None:
        self._db: Database | None = None
        self._subs: dict[int, Subscription] = {}
        self._next_id = 1
        # In-daemon consumers (the quality service follows project changes), after clients.
        self.listeners: list[Callable[[list[Event]], None]] = []

    def attach(self, db: Database) -> None:
        self._db = db

    def publish(self, events: list[Event]) -> None:
        """Called on the loop after each commit, in commit order."""
        for listener in self.listeners:
            try:
                listener(events)
            except Exception:
                log.exception("an event listener failed")
        for sub in list(self._subs.values()):
            if sub.peer.closed:
                self._drop(sub)
                continue
            for event in events:
                if sub.wants(event):
                    if sub.replaying:
                        sub.held.append(event)
                    else:
                        sub.send(event)

    def subscribe(self, peer: Peer, topics: Sequence[str], since: int | None) -> Subscription:
        sub = Subscription(self._next_id, peer, frozenset(topics), replaying=since is not None)
        self._next_id += 1
        self._subs[sub.id] = sub
        peer.subscriptions += 1
        return sub

    async def replay(self, sub: Subscription, since: int) -> None:
        """Send logged events after `since`, then what arrived meanwhile, then go live."""
        assert self._db is not None
        cursor = since
        topics = sorted(sub.topics)
        try:
            while sub.id in self._subs and not sub.peer.closed:
                page = await self._db.read(events_db.list_since, cursor, topics, _REPLAY_PAGE)
                if not page:  # (a page may stop short at its byte budget: only none is the end)
                    break
                for event in page:
                    sub.send(event)
                cursor = page[-1].seq
        except Exception:
            log.exception("event replay failed", subscription=sub.id)
        held, sub.held = sub.held, []
        for event in sorted(held, key=lambda e: e.seq):
            sub.send(event)
        sub.replaying = False

    def unsubscribe(self, peer: Peer, sub_id: int) -> bool:
        sub = self._subs.get(sub_id)
        if sub is None or sub.peer is not peer:
            return False
        self._drop(sub)
        return True

    def drop_peer(self, peer: Peer) -> None:
        for sub in [s for s in self._subs.values() if s.peer is peer]:
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        if self._subs.pop(sub.id, None) is not None:
            sub.peer.subscriptions -= 1

    @property
    def count(self) -> int:
        return len(self._subs)


def start_replay(bus: EventBus, sub: Subscription, since: int) -> None:
    """Start the replay as its own task once the subscribe reply is on the wire."""
    task = asyncio.get_running_loop().create_task(bus.replay(sub, since))
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()
