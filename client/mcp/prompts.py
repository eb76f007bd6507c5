"""Prompts: starting work in a project, and handing it off.

`start` puts the project's brief (context.brief) in front of the agent and says how work is
taken and kept here; `handoff` asks the agent to leave the project as the next one should find
it. Both are plain text a person can read, built from what the daemon says now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from client.errors import ClientError
from client.mcp import outputs
from client.mcp.tools import Call


@dataclass(frozen=True)
class Prompt:
    name: str
    description: str
    arguments: tuple[tuple[str, str], ...]  # (name, description); all optional


PROMPTS = (
    Prompt("start", "Start work in this project: its brief, then claim the next task",
           (("project", "a project's id, name or path (default: this one)"),
            ("focus", "what to work on, if not the next ready task"))),
    Prompt("handoff", "Hand off: save where you are, release what you hold, leave notes",
           (("to", "who takes over (an agent's name), if known"),)),
)  # fmt: skip

HOW_WORK_IS_TAKEN = (
    "Take work with `claim` (no id: the next ready task), keep it with `heartbeat` while you "
    "work, finish with `complete` (next: true takes the next step of the plan). Save what "
    "others should know with `remember`, and call `checkpoint` before your context is "
    "compacted or you stop."
)


async def render(name: str, arguments: dict[str, str], call: Call) -> str:
    if name == "start":
        return await _start(arguments, call)
    if name == "handoff":
        return await _handoff(arguments, call)
    raise ClientError(f"no prompt named {name!r}", kind="not_found")


async def _start(arguments: dict[str, str], call: Call) -> str:
    params: dict[str, Any] = {}
    if arguments.get("project"):
        params["project"] = arguments["project"]
    lines = ["You are starting work in a project tracked by pm-agent."]
    if "context.brief" in call.bridge.methods:
        brief = await call.forward("context.brief", params, safe=True)
        lines += ["", "What to know first:", _as_text(brief)]
    focus = arguments.get("focus")
    lines += ["", f"Focus: {focus}" if focus else "Work on the next ready task.", HOW_WORK_IS_TAKEN]
    return "\n".join(lines)


async def _handoff(arguments: dict[str, str], call: Call) -> str:
    agent = call.bridge.identity.agent(call.client_name)
    successor = arguments.get("to")
    lines = [
        f"You ({agent}) are handing off your work" + (f" to {successor}." if successor else "."),
        "Before you stop:",
        "1. `checkpoint`: what you did last and the next steps, with the task and file.",
        "2. For each task you hold: `complete` it if it is done, else `heartbeat` with "
        "release: true so another agent can take it.",
        "3. `remember` (kind note) the decisions and findings the next agent needs.",
    ]
    if "tasks.list" in call.bridge.methods:
        try:
            held = await call.forward("tasks.list", {"claimed_by": agent}, safe=True)
        except ClientError:
            held = None  # a daemon whose tasks.list has no such filter: the steps still stand
        if held and held.get("items"):
            lines += ["", "You hold:", outputs.to_text(outputs.brief(held["items"]))]
    return "\n".join(lines)


def _as_text(value: Any) -> str:
    """The brief as the daemon made it: Markdown when it gives one, else compact JSON."""
    if isinstance(value, dict) and isinstance(value.get("markdown"), str):
        return str(value["markdown"])
    return value if isinstance(value, str) else outputs.to_text(value)
