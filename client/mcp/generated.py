"""`--tools all`: every other method of the daemon as a tool, generated from `rpc.discover`.

Nothing is described twice: a generated tool's description is the method's summary and its
params are the method's params (client.mcp.schemas). Its annotations come from the method's
verb, by the API's naming rule (`noun.verb`): `get`, `list`, `search`… only read; `delete`,
`forget`, `reset`… destroy; `set`, `update`… can be repeated to the same end.

`--tools` (or PM_MCP_TOOLS) takes a comma-separated choice: `core` (the default), `all`, a
core tool's name, a method (`kv.get`) or a noun (`kv.*`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping

from client.errors import UsageError
from client.mcp import schemas
from client.mcp.tools import CORE_NAMES, Hints, Tool, core_tools, forwarding

log = logging.getLogger("pm.mcp")

# Methods that are the protocol itself, not work an agent does through a tool.
NOT_TOOLS = frozenset(
    {"$/cancelRequest", "daemon.hello", "rpc.discover", "events.subscribe", "events.unsubscribe"}
)

READ_VERBS = frozenset(
    {
        "get", "list", "search", "status", "health", "check", "backups", "history", "ready",
        "next", "for_path", "match", "similar", "latest", "verify", "discover", "brief",
    }
)  # fmt: skip
DESTRUCTIVE_VERBS = frozenset(
    {
        "delete", "forget", "reset", "clear", "restore", "import", "remove", "shutdown",
        "cancel", "rollback", "repair", "archive",
    }
)  # fmt: skip
IDEMPOTENT_VERBS = frozenset(
    {"set", "update", "heartbeat", "release", "register", "unarchive", "archive", "move"}
)


def hints_for(method: str) -> Hints:
    verb = method.rsplit(".", 1)[-1]
    if verb in READ_VERBS:
        return Hints(read_only=True)
    return Hints(
        read_only=False,
        destructive=verb in DESTRUCTIVE_VERBS,
        idempotent=verb in IDEMPOTENT_VERBS,
    )


def tool_name(method: str) -> str:
    """`kv.set` → `kv_set`: clients' tool names allow [A-Za-z0-9_-] only."""
    return method.replace(".", "_").replace("/", "_")


_WORD = re.compile(r"[A-Za-z_][\w]*(\.[\w]+)+|[A-Za-z_][\w]*\.\*")


def words_of(spec: str) -> list[str]:
    return [word.strip() for word in spec.split(",") if word.strip()] or ["core"]


def check_spec(spec: str) -> None:
    """Refuse a `--tools` value that cannot name anything (before the daemon is asked)."""
    for word in words_of(spec):
        if word not in ("core", "all") and word not in CORE_NAMES and not _WORD.fullmatch(word):
            raise UsageError(
                f"--tools: {word!r} is not core, all, a core tool "
                f"({', '.join(sorted(CORE_NAMES))}), a method (kv.get) or a noun (kv.*)"
            )


def select(spec: str, methods: Mapping[str, schemas.MethodParams]) -> list[Tool]:
    """The tools `spec` asks for (see the module's doc), core ones first. A method or noun
    this daemon does not have is left out, with a warning."""
    core = core_tools(methods)
    covered = {method for tool in core for method in tool.methods}
    chosen: dict[str, Tool] = {}

    def add(tools: Iterable[Tool], word: str) -> None:
        tools = list(tools)
        if not tools and word not in CORE_NAMES:
            log.warning("--tools: this daemon has no method %s", word)
        for tool in tools:
            chosen.setdefault(tool.name, tool)

    for word in words_of(spec):
        if word in ("core", "all"):
            add(core, word)
            if word == "all":
                add(_generated(methods, lambda name: name not in covered), word)
        elif word in CORE_NAMES:
            add((tool for tool in core if tool.name == word), word)
        elif word.endswith(".*"):
            add(_generated(methods, _prefixed(word[:-1])), word)
        else:
            add(_generated(methods, word.__eq__), word)
    return list(chosen.values())


def _prefixed(prefix: str) -> Callable[[str], bool]:
    return lambda name: name.startswith(prefix)


def _generated(
    methods: Mapping[str, schemas.MethodParams], wanted: Callable[[str], bool]
) -> list[Tool]:
    return [
        forwarding(tool_name(name), method.summary, method, None, hints_for(name))
        for name, method in sorted(methods.items())
        if name not in NOT_TOOLS and wanted(name)
    ]
