"""The names a topic filter may use: every kind of event the daemon emits, and their topics.

Event kinds are declared where they are emitted (`EventKind`s, daemon/store/
events_catalogue.py), and `Tx.emit` takes nothing else: the names follow the code."""

from __future__ import annotations

from daemon.store import events_catalogue

ALL = "*"  # in a filter: every topic (the same as no filter)


class Names:
    """The event types and topics there are, sorted."""

    def __init__(self) -> None:
        kinds = events_catalogue.kinds()
        self.types = [kind.name for kind in kinds]
        self.topics = sorted({kind.topic for kind in kinds})
        self.filters = frozenset(self.types) | frozenset(self.topics)


def names() -> Names:
    """Asked at each call (a few dozen names): kinds are declared as their modules load."""
    return Names()
