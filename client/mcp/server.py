"""The MCP server itself: the SDK's low-level `Server` on stdio, each request handed to the
bridge's tools, resources and prompts.

The low-level server, not the decorator one, because nothing here is described in Python
types: every tool's schema is the daemon's (`rpc.discover`), so the tool list is data. stdout
carries protocol messages only (fd 1 points at stderr while it serves, so a stray print cannot
corrupt the stream; client.mcp.pipes); logs go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError

from client.errors import ClientError
from client.mcp import outputs, prompts, schemas
from client.mcp.generated import select
from client.mcp.identity import Identity
from client.mcp.link import DaemonLink
from client.mcp.pipes import loop_stdio
from client.mcp.resources import Resources
from client.mcp.tools import Bridge, Call, Tool, missing_core
from client.version import __version__

log = logging.getLogger("pm.mcp")

INSTRUCTIONS = (
    "pm-agent: the plan, tasks and notes this project shares with other agents. Call `brief` "
    "first; take work with `claim`, keep it with `heartbeat`, finish with `complete`; "
    "`checkpoint` before your context is compacted or you stop."
)
RESOURCE_NOT_FOUND = -32002  # MCP's code for a resource that does not exist


@dataclass(frozen=True)
class Options:
    socket_path: str
    spawn: bool
    agent: str | None
    project: str | None
    tools: str


class BridgeServer:
    def __init__(self, options: Options) -> None:
        self.options = options
        link = DaemonLink(options.socket_path, spawn=options.spawn)
        identity = Identity(
            agent=options.agent, project=options.project, socket_path=options.socket_path
        )
        self.bridge = Bridge(link, identity)
        self.resources = Resources(self.bridge)
        self.resources.notify = self._notify_updated
        self._tools: dict[str, Tool] = {}
        self._tools_from: dict[str, Any] | None = None  # the discover document they came from
        self._subscribers: dict[str, ServerSession] = {}  # resources/subscribe, by uri
        self._bus = InMemorySubscriptionBus()
        self._listen = ListenHandler(self._bus)
        self.server: Server[Any] = Server(
            "pm-agent",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
            on_subscriptions_listen=self._listen_for,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
        )
        # The SDK's default middleware is OpenTelemetry's (a span per message, a no-op until
        # an exporter is installed); nothing here exports spans, so every call skips it.
        self.server.middleware.clear()

    async def run(self) -> None:
        options = self.server.create_initialization_options(NotificationOptions())
        try:
            async with loop_stdio() as pipes:
                stdin, stdout = pipes if pipes is not None else (None, None)
                async with stdio_server(stdin, stdout) as (read_stream, write_stream):
                    await self.server.run(read_stream, write_stream, options)
        finally:
            self._listen.close()
            await self.bridge.link.close()

    # --- tools --------------------------------------------------------------------------
    async def tools(self) -> dict[str, Tool]:
        """The tools, made again when the daemon's method list is new (a restart, an
        upgrade)."""
        document = await self.bridge.link.discover()
        if document is not self._tools_from:
            methods = schemas.methods(document)
            self.bridge.methods = methods
            self._tools = {tool.name: tool for tool in select(self.options.tools, methods)}
            if self._tools_from is None and (missing := missing_core(methods)):
                log.warning("this daemon lacks the methods of: %s", ", ".join(missing))
            self._tools_from = document
        return self._tools

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            tools = await self.tools()
        except ClientError as e:
            raise MCPError(types.INTERNAL_ERROR, f"pm-agentd: {e}") from None
        return types.ListToolsResult(tools=[_wire_tool(tool) for tool in tools.values()])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            tool = (await self.tools()).get(params.name)
            if tool is None:
                raise ClientError(f"no tool named {params.name!r}", kind="not_found")
            result = await tool.run(self._call(ctx), dict(params.arguments or {}))
        except Exception as e:  # every failure is the model's to read, never the bridge's end
            if not isinstance(e, ClientError):
                log.exception("tool %s failed", params.name)
            return _result(outputs.error_body(e), error=True)
        return _result(result)

    def _call(self, ctx: ServerRequestContext[Any]) -> Call:
        client = ctx.session.client_params
        return Call(self.bridge, client.client_info.name if client is not None else None)

    # --- resources ----------------------------------------------------------------------
    async def _list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        await self._ready()
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri=r.uri, name=r.name, description=r.description, mime_type=r.mime_type
                )
                for r in await self.resources.listed()
            ]
        )

    async def _list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        await self._ready()
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    uri_template=t.uri_template,
                    name=t.name,
                    description=t.description,
                    mime_type=t.mime_type,
                )
                for t in self.resources.templates()
            ]
        )

    async def _read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        try:
            mime_type, text = await self.resources.read(uri)
        except ClientError as e:
            code = RESOURCE_NOT_FOUND if e.kind == "not_found" else types.INTERNAL_ERROR
            raise MCPError(code, str(e), {"uri": uri, "kind": e.kind}) from None
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type=mime_type, text=text)]
        )

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        try:
            await self.resources.watch(uri)
        except ClientError as e:
            raise MCPError(RESOURCE_NOT_FOUND if e.kind == "not_found" else types.INTERNAL_ERROR,
                           str(e), {"uri": uri}) from None  # fmt: skip
        self._subscribers[uri] = ctx.session
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        self._subscribers.pop(uri, None)
        self.resources.unwatch(uri)
        return types.EmptyResult()

    async def _listen_for(
        self, ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """The 2026-07-28 way to subscribe: the URIs asked for are followed like
        resources/subscribe ones; the SDK's handler streams the notices."""
        for uri in params.notifications.resource_subscriptions or ():
            # An unknown URI is honoured and never fires, as the spec says.
            with contextlib.suppress(ClientError):
                await self.resources.watch(str(uri))
        return await self._listen(ctx, params)

    async def _notify_updated(self, uri: str) -> None:
        session = self._subscribers.get(uri)
        if session is not None:
            await session.send_resource_updated(uri)
        await self._bus.publish(ResourceUpdated(uri=uri))

    async def _ready(self) -> None:
        """Methods known (resources and prompts depend on what the daemon has)."""
        try:
            await self.tools()
        except ClientError as e:
            raise MCPError(types.INTERNAL_ERROR, f"pm-agentd: {e}") from None

    # --- prompts ------------------------------------------------------------------------
    async def _list_prompts(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(
            prompts=[
                types.Prompt(
                    name=p.name,
                    description=p.description,
                    arguments=[
                        types.PromptArgument(name=name, description=about, required=False)
                        for name, about in p.arguments
                    ],
                )
                for p in prompts.PROMPTS
            ]
        )

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        await self._ready()
        try:
            text = await prompts.render(params.name, dict(params.arguments or {}), self._call(ctx))
        except ClientError as e:
            raise MCPError(types.INVALID_PARAMS, str(e), outputs.error_body(e)) from None
        described = next((p.description for p in prompts.PROMPTS if p.name == params.name), None)
        return types.GetPromptResult(
            description=described,
            messages=[
                types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))
            ],
        )


def _wire_tool(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        description=tool.description,
        input_schema=tool.input_schema,
        annotations=types.ToolAnnotations.model_validate(tool.hints.wire()),
    )


def _result(value: Any, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=outputs.to_text(value))], is_error=error
    )


def configure_logging() -> None:
    """Logs on stderr (an MCP client shows a server's stderr in its own logs)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pm mcp: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(logging.INFO)


def serve(options: Options) -> int:
    configure_logging()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(BridgeServer(options).run())
    return 0
