"""The kinds of change events, each with its payload type, declared where they are emitted.

An event's type is `<topic>.<what happened>` and its topic is the namespace of the methods that
change the same rows (`projects`, `tasks`…). Every kind is declared once, as an `EventKind`
with the Struct its data has; the catalogue of kinds is what `events.subscribe` checks topics
against and what in-daemon consumers decode with, so nobody guesses keys.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

P = TypeVar("P")

_KINDS: dict[str, EventKind[Any]] = {}


class EventKind(Generic[P]):
    __slots__ = ("_decoder", "name", "payload", "topic")

    name: str  # the event's type: `<topic>.<what happened>`
    topic: str
    payload: type[P]

    def __init__(self, type_: str, payload: type[P]) -> None:
        topic, dot, what = type_.partition(".")
        if not (topic and dot and what):
            raise ValueError(f"an event type is <topic>.<what>, not {type_!r}")
        known = _KINDS.get(type_)
        if known is not None and known.payload is not payload:
            raise ValueError(f"event {type_} is declared twice with different payloads")
        self.name = type_
        self.topic = topic
        self.payload = payload
        self._decoder: msgspec.json.Decoder[P] = msgspec.json.Decoder(payload)
        _KINDS[type_] = self

    def decode(self, data: bytes | msgspec.Raw) -> P:
        return self._decoder.decode(data)

    def __repr__(self) -> str:
        return f"EventKind({self.name!r}, {self.payload.__name__})"


def kind(type_: str) -> EventKind[Any] | None:
    return _KINDS.get(type_)


def kinds() -> list[EventKind[Any]]:
    return [_KINDS[name] for name in sorted(_KINDS)]


def topics() -> frozenset[str]:
    return frozenset(k.topic for k in _KINDS.values())
