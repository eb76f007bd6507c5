"""The tools an agent sees: what one is, how a call runs, and the core set.

A tool forwards to one daemon method (a few combine two). Its params are the method's own,
as `rpc.discover` describes them (client.mcp.schemas), picked and made tight; the bridge adds
only what is its own (`full`, and a tool's few extras). `agent` is never asked for: the bridge
knows who it serves. `project` may be given, and defaults to the bridge's project. A core tool
whose method the daemon does not have (an older daemon) is left out of the list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from client.errors import ClientError
from client.mcp import outputs, schemas
from client.mcp.identity import Identity
from client.mcp.link import DaemonLink

AGENT, PROJECT = "agent", "project"
EVENTS_WAIT_MAX_S = 30.0  # a long poll ends by then: clients time tool calls out


@dataclass(frozen=True)
class Hints:
    """MCP tool annotations."""

    read_only: bool
    destructive: bool = False
    idempotent: bool = False

    def wire(self) -> dict[str, bool]:
        """The hints that differ from MCP's defaults (which assume a destructive,
        non-idempotent tool reaching an open world): each is paid for in tokens."""
        hints = {"readOnlyHint": self.read_only, "openWorldHint": False}
        if not self.read_only:  # meaningful only for a tool that changes something
            hints["destructiveHint"] = self.destructive
            if self.idempotent:
                hints["idempotentHint"] = True
        return hints


READ = Hints(read_only=True)
WRITE = Hints(read_only=False)
RENEW = Hints(read_only=False, idempotent=True)


@dataclass
class Bridge:
    """What every call needs: the daemon, who the bridge speaks for, where."""

    link: DaemonLink
    identity: Identity
    methods: dict[str, schemas.MethodParams] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    bridge: Bridge
    client_name: str | None  # the MCP client's name from its handshake

    async def forward(
        self,
        method: str,
        args: Mapping[str, Any],
        *,
        safe: bool,
        narrower: tuple[str, ...] = (),
    ) -> Any:
        """`method` with `args`, the bridge's agent and project filled in where it takes
        them and they were not given — the project only when no `narrower` scope (a task's
        id, a plan) is given, unless the method needs one."""
        params = dict(args)
        described = self.bridge.methods[method]
        if AGENT in described.properties and AGENT not in params:
            params[AGENT] = self.bridge.identity.agent(self.client_name)
        needed = PROJECT in described.required
        scoped = any(name in params for name in narrower)
        if PROJECT in described.properties and PROJECT not in params and (needed or not scoped):
            project = await self.bridge.identity.project()
            if project is not None:
                params[PROJECT] = project
            elif needed:
                problem = self.bridge.identity.project_problem or "no project is known here"
                raise ClientError(f"{method} needs a project: {problem}", kind="invalid_params")
        return await self.bridge.link.call(method, params, safe=safe)


Runner = Callable[[Call, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    hints: Hints
    run: Runner  # the answer, already cut to brief unless `full`
    methods: tuple[str, ...]  # the daemon methods it calls


# --- building tools from the daemon's params -------------------------------------------
def forwarding(
    name: str,
    description: str,
    method: schemas.MethodParams,
    shown: tuple[str, ...] | None,
    hints: Hints,
    *,
    extra: Mapping[str, dict[str, Any]] | None = None,
    run: Runner | None = None,
    also: tuple[str, ...] = (),
    narrower: tuple[str, ...] = (),
    shorten: Callable[[Any], Any] = outputs.brief,
    optional: tuple[str, ...] = (),
) -> Tool:
    """A tool over `method`: its params `shown` (None: all of them), `agent` hidden, the ones
    the bridge fills not required; `full` for whole rows. `run` replaces plain forwarding."""
    names = [p for p in (shown or tuple(method.properties)) if p in method.properties]
    properties = {p: method.properties[p] for p in names if p != AGENT}
    properties |= dict(extra or {})
    properties["full"] = outputs.FULL_PARAM
    required = [p for p in names if p in method.required and p not in (AGENT, PROJECT, *optional)]
    forwarded = frozenset(names)
    safe = hints.read_only

    async def plain(call: Call, args: dict[str, Any]) -> Any:
        chosen = {k: v for k, v in args.items() if k in forwarded}
        return await call.forward(method.name, chosen, safe=safe, narrower=narrower)

    runner = run or plain

    async def answer(call: Call, args: dict[str, Any]) -> Any:
        full = bool(args.pop("full", False))
        result = await runner(call, args)
        return result if full else shorten(result)

    return Tool(
        name=name,
        description=description,
        input_schema=schemas.object_schema(properties, required),
        hints=hints,
        run=answer,
        methods=(method.name, *also),
    )


# --- the core set ------------------------------------------------------------------------
@dataclass(frozen=True)
class Core:
    name: str
    description: str
    method: str
    shown: tuple[str, ...]
    hints: Hints
    extra: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    run: Callable[[Core, Mapping[str, schemas.MethodParams]], Runner | None] | None = None
    also: tuple[str, ...] = ()  # other methods it may call
    narrower: tuple[str, ...] = ()  # params naming a scope inside a project: no default project
    shorten: Callable[[Any], Any] = outputs.brief  # the answer unless `full`
    optional: tuple[str, ...] = ()  # the method needs them, the tool not always (show's id)


def _heartbeat(core: Core, methods: Mapping[str, schemas.MethodParams]) -> Runner | None:
    if "tasks.release" not in methods:
        return None

    async def run(call: Call, args: dict[str, Any]) -> Any:
        if args.pop("release", False):
            held = {key: args[key] for key in ("id",) if key in args}
            return await call.forward("tasks.release", held, safe=False)
        return await call.forward("tasks.heartbeat", args, safe=False)

    return run


def _show(core: Core, methods: Mapping[str, schemas.MethodParams]) -> Runner | None:
    async def run(call: Call, args: dict[str, Any]) -> Any:
        if "plan" in args and "plans.get" in methods:
            return await call.forward("plans.get", {"id": args["plan"]}, safe=True)
        if "id" not in args:
            raise ClientError("give a task's `id` or a `plan`", kind="invalid_params")
        return await call.forward("tasks.get", {"id": args["id"]}, safe=True)

    return run


def _brief(core: Core, methods: Mapping[str, schemas.MethodParams]) -> Runner | None:
    async def run(call: Call, args: dict[str, Any]) -> Any:
        here = call.bridge.identity.path
        if here is not None and "path" not in args and PROJECT not in args:
            args["path"] = here  # the instructions for where the agent works
        return await call.forward(core.method, args, safe=True)

    return run


def _markdown(brief: Any) -> Any:
    """context.brief's own Markdown rendering of itself: the primer as an agent reads it."""
    return brief.get("markdown", brief) if isinstance(brief, dict) else brief


def _events(core: Core, methods: Mapping[str, schemas.MethodParams]) -> Runner | None:
    async def run(call: Call, args: dict[str, Any]) -> Any:
        wait = min(max(float(args.pop("wait_s", 0) or 0), 0.0), EVENTS_WAIT_MAX_S)
        if wait:
            try:  # subscribed before looking: nothing slips by
                await asyncio.wait_for(call.bridge.link.feed_events(), wait)
            except TimeoutError:
                wait = 0  # no subscription in time (a daemon still starting): just look
        page = await call.forward(core.method, args, safe=True)
        if wait and not page.get("items") and await call.bridge.link.next_event(wait):
            page = await call.forward(core.method, args, safe=True)
        return page

    return run


CORE: tuple[Core, ...] = (
    Core("ready", "Ready tasks, best first: not blocked, deferred or claimed by another agent. "
         "Default: this project.", "tasks.ready", (PROJECT, "limit"), READ),
    Core("claim", "Claim a task (id) or the next ready one (in plan, or this project) for "
         "yourself; keep it with heartbeat.", "tasks.claim",
         ("id", "plan", PROJECT, "lease_s"), WRITE, narrower=("id", "plan")),
    Core("heartbeat", "Renew your lease on a task; release:true gives it back.",
         "tasks.heartbeat", ("id", "lease_s"), RENEW,
         extra={"release": {"type": "boolean", "description": "give the task back"}},
         run=_heartbeat, also=("tasks.release",)),
    Core("complete", "Complete your task; next:true claims the next step of its plan.",
         "tasks.complete", ("id", "next"), WRITE),
    Core("create", "Create a todo in this project, or a step (phase) of a plan.", "tasks.add",
         ("title", "description", "priority", "phase", "position", "parent", "tags", PROJECT),
         WRITE, narrower=("phase", "parent")),
    Core("update", "Change a task: status, title, notes, priority…", "tasks.update",
         ("id", "status", "title", "description", "priority", "notes", "tags",
          "blocked_reason", "expected_version"), RENEW),
    Core("show", "A task (id), or a plan (plan) with its phases and steps.", "tasks.get",
         ("id",), READ, extra={"plan": {"type": "integer", "minimum": 1}},
         run=_show, also=("plans.get",), optional=("id",)),
    Core("search", "Search notes, decisions, context and other documents by words, best "
         "first.", "documents.search", ("query", "kind", "tags", PROJECT, "limit"), READ),
    Core("remember", "Save a note, decision or context for later agents.", "documents.add",
         ("kind", "title", "content", "tags", "task", "plan", PROJECT), WRITE,
         narrower=("task", "plan")),
    Core("brief", "Start here: instructions, your claims, ready tasks, the latest continue "
         "point and recent notes for this project.", "context.brief",
         (PROJECT, "path", "max_chars"), READ, run=_brief, shorten=_markdown),
    Core("checkpoint", "Save where you stopped and what comes next, before your context is "
         "compacted or you stop.", "continue_points.add",
         ("last_action", "next_steps", "task", "file", "line", PROJECT), WRITE),
    Core("events", "Changes after a cursor (seq), oldest first; wait_s waits for one.",
         "events.list", ("since", "topics", "limit"), READ,
         extra={"wait_s": {"type": "number", "minimum": 0, "maximum": EVENTS_WAIT_MAX_S}},
         run=_events),
)  # fmt: skip

CORE_NAMES = frozenset(core.name for core in CORE)


def core_tools(methods: Mapping[str, schemas.MethodParams]) -> list[Tool]:
    """The core tools whose methods the daemon has."""
    found = []
    for core in CORE:
        method = methods.get(core.method)
        if method is None:
            continue
        run = core.run(core, methods) if core.run is not None else None
        found.append(
            forwarding(
                core.name,
                core.description,
                method,
                core.shown,
                core.hints,
                extra=core.extra,
                run=run,
                also=core.also,
                narrower=core.narrower,
                shorten=core.shorten,
                optional=core.optional,
            )
        )
    return found


def missing_core(methods: Mapping[str, Any]) -> list[str]:
    """Core tools left out because the daemon lacks their method (said once, at start)."""
    return [f"{core.name} ({core.method})" for core in CORE if core.method not in methods]
