"""The client's shape, read from its source with `ast`: its modules import each other as a
DAG (no cycle, counting imports inside functions and under TYPE_CHECKING too, and a module
named in a string, as client.commands names the module of each command), and it reaches daemon
code through one door only: client/door.py, and from there `daemon.runtime.offline`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import REPO

CLIENT = REPO / "client"
DOOR = "daemon.runtime.offline"  # the daemon's one public entry point for the client
CLIENT_SIDE = CLIENT / "door.py"  # the one client module that goes through it


def modules() -> dict[str, Path]:
    return {
        "client." + ".".join(path.relative_to(CLIENT).with_suffix("").parts): path
        for path in sorted(CLIENT.rglob("*.py"))
        if path.name != "__init__.py"
    }


def imports(path: Path) -> Iterator[tuple[list[str], int]]:
    """Every import statement of `path`, wherever it stands, as the module names it may load
    (`from pkg import name` may load `pkg` and `pkg.name`), with its line."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield [alias.name], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            yield [node.module, *names], node.lineno


def imported(path: Path) -> Iterator[str]:
    for names, _ in imports(path):
        yield from names
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value  # `__import__(name)` of a name kept in a table


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {target for target in imported(path) if target in known and target != name}
        for name, path in known.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_client_modules_import_each_other_as_a_dag() -> None:
    edges = graph()
    assert len(edges) > 20 and "client.cli" in edges  # the scan sees the client
    assert cycles(edges) == []


def test_the_client_reaches_daemon_code_only_through_its_one_door() -> None:
    def daemon_code(name: str) -> bool:
        return name == "daemon" or name.startswith("daemon.")

    def through_the_door(names: list[str]) -> bool:
        # `from daemon.runtime import offline`, `from daemon.runtime.offline import answer`
        return any(name == DOOR or name.startswith(DOOR + ".") for name in names)

    strays = [
        f"{path.relative_to(REPO)}:{line} imports {names[0]}"
        for path in modules().values()
        for names, line in imports(path)
        if any(daemon_code(name) for name in names)
        and not (path == CLIENT_SIDE and through_the_door(names))
    ]
    assert strays == []
    door = [names for names, _ in imports(CLIENT_SIDE) if through_the_door(names)]
    assert door, "client/door.py goes through daemon.runtime.offline"
