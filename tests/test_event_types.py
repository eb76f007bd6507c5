"""Events are typed kinds named by the namespace of the methods that change the same rows, and
the topic filters' names come from those kinds, not from a copy of them."""

from __future__ import annotations

import ast
import re

from daemon.domain import modules
from daemon.domain.events import names
from daemon.rpc.registry import Registry
from daemon.runtime import daemon_methods, db_events, db_methods
from daemon.store import events_catalogue
from tests.helpers import REPO, DaemonProcess

EVENT_TYPE = re.compile(r"[a-z_]+\.[a-z_]+")  # what a type looks like (`kv.created`)


def namespaces() -> set[str]:
    registry = Registry()
    for module in (daemon_methods, db_methods, *modules.MODULES):
        module.methods.bind(registry, None)
    return {m.name.partition(".")[0] for m in registry.methods()}


def test_every_topic_is_a_method_namespace(daemon: DaemonProcess) -> None:
    """Asked of a real daemon: its catalogue holds only the kinds the daemon declares (this
    test process may hold tests' own scratch kinds too)."""
    refused = daemon.call_error("events.list", {"topics": ["no-such-topic"]})
    topics, types = refused.data["topics"], refused.data["types"]
    assert db_events.RESTORED.name in types and len(types) > 20
    strays = sorted(set(topics) - namespaces())
    assert not strays, f"events whose topic names no methods: {strays}"
    assert {"kv", "projects", "jobs", "quality", "db", "tasks"} <= set(topics)


def test_the_filter_names_are_the_kinds() -> None:
    known = names.names()
    assert known.types == sorted(k.name for k in events_catalogue.kinds())
    assert set(known.topics) == {k.topic for k in events_catalogue.kinds()}


def test_nothing_emits_a_bare_string() -> None:
    """`Tx.emit` takes a declared kind (mypy holds it); no call site hands it a literal."""
    found = []
    for path in sorted((REPO / "daemon").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"emit", "_emit", "announce", "swap_in"}
                and any(
                    isinstance(a, ast.Constant)
                    and isinstance(a.value, str)
                    and EVENT_TYPE.fullmatch(a.value)
                    for a in node.args
                )
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, found
