"""The domain: one module (or small package) per aggregate, each holding its row Structs (also
the wire types), params, the rules that are really its own, its few special queries and its
RPC handlers (`methods`, bound to the runtime's `App` at start).

`MODULES` lists the modules whose `methods` the runtime binds; a new entity's module adds
itself here (README, "How to add an entity")."""

from __future__ import annotations

from types import ModuleType


def modules() -> list[ModuleType]:
    """The domain modules with RPC methods, imported on first use (not at `import daemon`)."""
    from daemon.domain import kv

    return [kv]
