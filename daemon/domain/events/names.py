"""The names a topic filter may use: every event type the daemon emits, and their topics.

Event kinds are declared where they are emitted, as `EventKind`s in daemon/store/
events_catalogue.py. Some services still emit theirs as bare strings (`tx.emit("kv.set", …)`);
those are listed in LEGACY_TYPES until they are declared as kinds. tests/test_event_types.py
reads the daemon's source and fails when a bare string it emits is in neither place, or when an
entry here is emitted as a bare string nowhere (declared as a kind since, or renamed): so the
names follow the code that emits them.
"""

from __future__ import annotations

from daemon.store import events_catalogue

LEGACY_TYPES: frozenset[str] = frozenset()  # every emitter declares its kinds now
ALL = "*"  # in a filter: every topic (the same as no filter)


def topic_of(event_type: str) -> str:
    return event_type.partition(".")[0]


class Names:
    """The event types and topics there are, sorted."""

    def __init__(self, types: frozenset[str]) -> None:
        self.types = sorted(types)
        self.topics = sorted({topic_of(t) for t in types})
        self.filters = types | frozenset(self.topics)


def names() -> Names:
    """Asked at each call (a few dozen names): kinds are declared as their modules load."""
    declared = frozenset(kind.name for kind in events_catalogue.kinds())
    return Names(declared | LEGACY_TYPES)
