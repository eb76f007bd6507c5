"""`pm://` resources: a project's ready queue and documents, and one document's text.

- `pm://projects/{id}/ready`      the ready queue (tasks.ready), best first, as JSON
- `pm://projects/{id}/documents`  the project's documents (documents.list), newest first
- `pm://documents/{id}`           one document's content, as Markdown

A client may subscribe to any of them (`resources/subscribe`; on the 2026-07-28 protocol,
`subscriptions/listen`): the bridge follows the daemon's change events (`events.subscribe`)
and says which resources changed, a burst of events coalesced into one notice per resource.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from client.errors import ClientError
from client.mcp import outputs
from client.mcp.tools import Bridge

log = logging.getLogger("pm.mcp")

READY = "pm://projects/{project}/ready"
DOCUMENTS = "pm://projects/{project}/documents"
DOCUMENT = "pm://documents/{id}"
_PATTERN = re.compile(
    r"pm://(?:projects/(?P<project>\d+)/(?P<what>ready|documents)|documents/(?P<id>\d+))"
)
WORK_TOPICS = frozenset({"tasks", "plans", "phases", "deps", "dependencies", "projects"})
LIST_LIMIT = 50
COALESCE_S = 0.05  # events this close together make one notice


@dataclass(frozen=True)
class Described:
    uri: str
    name: str
    description: str
    mime_type: str


@dataclass(frozen=True)
class Template:
    uri_template: str
    name: str
    description: str
    mime_type: str
    method: str  # what reading it calls: a daemon without it has no such resources


TEMPLATES = (
    Template(READY, "ready", "A project's ready tasks, best first", "application/json",
             "tasks.ready"),
    Template(DOCUMENTS, "documents", "A project's documents, newest first", "application/json",
             "documents.list"),
    Template(DOCUMENT, "document", "One document's content", "text/markdown", "documents.get"),
)  # fmt: skip


class Resources:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._watched: set[str] = set()
        self._pending: set[str] = set()
        self._flush: asyncio.Task[None] | None = None
        self._listening = False
        self.notify: Callable[[str], Awaitable[None]] | None = None  # set by the server

    def templates(self) -> list[Template]:
        return [t for t in TEMPLATES if t.method in self.bridge.methods]

    async def listed(self) -> list[Described]:
        """The bridge's own project's resources (others through the templates)."""
        project = await self._project_id()
        if project is None:
            return []
        found = []
        for template in self.templates():
            if "{project}" in template.uri_template:
                uri = template.uri_template.format(project=project)
                found.append(Described(uri, template.name, template.description,
                                       template.mime_type))  # fmt: skip
        return found

    async def read(self, uri: str) -> tuple[str, str]:
        """(mime type, text) of a resource."""
        match = _PATTERN.fullmatch(uri)
        if match is None:
            raise ClientError(f"no such resource: {uri}", kind="not_found")
        link = self.bridge.link
        if match["id"]:
            doc = await link.call("documents.get", {"id": int(match["id"])}, safe=True)
            return "text/markdown", f"# {doc.get('title', '')}\n\n{doc.get('content', '')}"
        project = int(match["project"])
        if match["what"] == "ready":
            page = await link.call(
                "tasks.ready", {"project": project, "limit": LIST_LIMIT}, safe=True
            )
        else:
            page = await link.call(
                "documents.list", {"project": project, "limit": LIST_LIMIT}, safe=True
            )
        return "application/json", outputs.to_text(outputs.brief(page))

    # --- subscriptions ------------------------------------------------------------------
    async def watch(self, uri: str) -> None:
        if _PATTERN.fullmatch(uri) is None:
            raise ClientError(f"no such resource: {uri}", kind="not_found")
        self._watched.add(uri)
        if not self._listening:
            self._listening = True
            self.bridge.link.on_event(self._on_event)
        await self.bridge.link.feed_events()

    def unwatch(self, uri: str) -> None:
        self._watched.discard(uri)

    def _on_event(self, event: dict[str, Any]) -> None:
        changed = {uri for uri in self._watched if _affects(uri, event)}
        if not changed:
            return
        self._pending |= changed
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._send_later())

    async def _send_later(self) -> None:
        await asyncio.sleep(COALESCE_S)
        pending, self._pending = self._pending, set()
        for uri in sorted(pending):
            if self.notify is not None:
                try:
                    await self.notify(uri)
                except Exception:  # the client went away: nothing to tell
                    log.debug("could not send resources/updated for %s", uri, exc_info=True)

    async def _project_id(self) -> int | None:
        project = await self.bridge.identity.project()
        if isinstance(project, int) or project is None:
            return project
        try:  # a name given with --project: resources are named by id
            row = await self.bridge.link.call("projects.get", {"project": project}, safe=True)
        except ClientError:
            return None
        return int(row["id"])


def _affects(uri: str, event: dict[str, Any]) -> bool:
    match = _PATTERN.fullmatch(uri)
    if match is None:
        return False
    topic = event.get("topic")
    data = event.get("data")
    if not isinstance(data, dict):
        data = {}
    if match["id"]:
        return topic == "documents" and data.get("id") == int(match["id"])
    project = data.get("project_id")
    if project is not None and project != int(match["project"]):
        return False
    if match["what"] == "ready":
        return topic in WORK_TOPICS
    return topic == "documents"
