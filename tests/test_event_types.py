"""The topic filters' names come from the code that emits events, not from a copy of them."""

from __future__ import annotations

import ast
import re

from daemon.runtime import db_events, event_types
from daemon.store import events_catalogue
from tests.helpers import REPO

# Tx.emit, and the helpers that hand their type on to it (BackupService._emit, announce, swap_in)
EMITTERS = frozenset({"emit", "_emit", "announce", "swap_in"})
EVENT_TYPE = re.compile(r"[a-z_]+\.[a-z_]+")


def emitted_as_strings() -> dict[str, list[str]]:
    """Each event type the daemon's source passes to an emitter as a string literal, with
    where."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "daemon").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in EMITTERS
            ):
                continue
            for arg in node.args:
                if (
                    isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str)
                    and EVENT_TYPE.fullmatch(arg.value)
                ):
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    found.setdefault(arg.value, []).append(where)
    return found


def test_every_emitted_type_can_be_filtered_on_and_no_name_is_stale() -> None:
    assert db_events.RESTORED.name in event_types.names().types  # a declared kind is a name
    emitted = emitted_as_strings()
    assert set(emitted) == event_types.LEGACY_TYPES or not emitted  # the reading works
    declared = {kind.name for kind in events_catalogue.kinds()}
    unknown = {t: emitted[t] for t in sorted(set(emitted) - event_types.LEGACY_TYPES - declared)}
    assert not unknown, (
        f"emitted, but neither in daemon/runtime/event_types.py LEGACY_TYPES nor declared as an "
        f"EventKind: {unknown}"
    )
    stale = sorted(event_types.LEGACY_TYPES - set(emitted))
    assert not stale, (
        "in daemon/runtime/event_types.py LEGACY_TYPES but emitted as a string nowhere "
        f"(declared as an "
        f"EventKind since, or renamed?): {stale}"
    )
    names = event_types.names()
    assert set(names.types) == set(emitted) | declared
    assert set(names.topics) == {event_types.topic_of(t) for t in names.types}
