"""`pm mcp` driven by the MCP SDK's own client (ClientSession over stdio) against a real
daemon: the tool list, each core tool, errors as tool errors, resources and their
subscriptions, prompts, two agents on one queue, a daemon restart, a daemon started by the
bridge, stdout kept for the protocol, and a base install without the SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, ClientSession, MCPDeprecationWarning, StdioServerParameters
from mcp.client.stdio import stdio_client

from client.errors import RemoteError
from client.mcp import INSTALL_HINT
from client.mcp.generated import NOT_TOOLS, tool_name
from client.mcp.tools import CORE, CORE_NAMES
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess, wait_for

PM = str(Path(sys.executable).parent / "pm")
BRIDGE = [PM, "mcp"]
DESCRIPTION_MAX = 140  # characters: every tool's description is paid on every turn


# --- the bridge, as an MCP client starts it ----------------------------------------------
def alpha(daemon: DaemonProcess) -> Path:
    """A project folder under the Dev root (found by the daemon's first scan)."""
    project = daemon.dev_root / "alpha"
    (project / "src").mkdir(parents=True, exist_ok=True)
    (project / "pyproject.toml").write_text('[project]\nname = "alpha"\n')
    return project


@pytest.fixture
def with_alpha(make_daemon: DaemonFactory) -> tuple[DaemonProcess, int]:
    return started_with_alpha(make_daemon)


def started_with_alpha(make_daemon: DaemonFactory) -> tuple[DaemonProcess, int]:
    """A daemon whose first scan found the project `alpha`, and alpha's id."""
    daemon = make_daemon()
    alpha(daemon)
    daemon.start()

    def found() -> int | None:  # the first scan runs beside the daemon's start
        try:
            return int(daemon.call("projects.get", {"project": "alpha"})["id"])
        except RemoteError as e:
            assert e.kind == "not_found"
            return None

    return daemon, wait_for(found, 30, "the first scan to find alpha")


@asynccontextmanager
async def bridge(
    daemon: DaemonProcess,
    *args: str,
    cwd: Path | None = None,
    name: str = "test-agent",
    env: dict[str, str] | None = None,
    on_message: Any = None,
) -> AsyncIterator[ClientSession]:
    """`pm mcp ARGS` started by the SDK's stdio client, initialized; its stderr in a file."""
    params = StdioServerParameters(
        command=BRIDGE[0],
        args=[*BRIDGE[1:], *args],
        env={**daemon.env, **(env or {})},
        cwd=str(cwd or alpha(daemon) / "src"),
    )
    with open(daemon.root / f"bridge-{name}.log", "a") as errlog:  # noqa: ASYNC230 - a local file
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(
                read,
                write,
                client_info=types.Implementation(name=name, version="1"),
                message_handler=on_message,
            ) as session,
        ):
            await session.initialize()
            yield session


def answer(result: types.CallToolResult) -> Any:
    """A successful call's answer (compact JSON text)."""
    assert not result.is_error, result.content
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return json.loads(block.text)


def failure(result: types.CallToolResult) -> dict[str, Any]:
    """A failed call's error body: the daemon's message and kind."""
    assert result.is_error, result.content
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    body: dict[str, Any] = json.loads(block.text)
    return body


def keywords(schema: Any) -> set[str]:
    """The JSON Schema keywords used anywhere in `schema` (not the property names)."""
    if isinstance(schema, list):
        return set().union(*(keywords(item) for item in schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, value in schema.items():
        values = value.values() if key == "properties" else [value]
        for sub in values:
            found |= keywords(sub)
    return found


def run(scenario: Any) -> Any:
    return asyncio.run(asyncio.wait_for(scenario, 60))


# --- the tool list ---------------------------------------------------------------------------
def test_core_tools_are_few_short_tight_and_annotated(daemon: DaemonProcess) -> None:
    async def scenario() -> list[types.Tool]:
        async with bridge(daemon) as session:
            return (await session.list_tools()).tools

    tools = run(scenario())
    names = [tool.name for tool in tools]
    assert set(names) <= CORE_NAMES and len(names) == len(set(names))
    methods = {m["name"] for m in daemon.call("rpc.discover")["methods"]}
    assert set(names) == {core.name for core in CORE if core.method in methods}
    for tool in tools:
        assert tool.description and len(tool.description) <= DESCRIPTION_MAX, tool.name
        schema = tool.input_schema
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert "agent" not in schema["properties"], tool.name  # the bridge knows who it is
        assert "full" in schema["properties"]
        used = keywords(schema)
        assert not used & {"$ref", "title"}, tool.name
        assert "9223372036854775807" not in json.dumps(schema), tool.name
        assert tool.annotations is not None and tool.annotations.read_only_hint is not None
    by_name = {tool.name: tool for tool in tools}
    if "show" in by_name:  # a task by id, or a plan: neither is required alone
        assert "required" not in by_name["show"].input_schema
    if "heartbeat" in by_name:
        assert by_name["heartbeat"].input_schema["required"] == ["id"]
    if "search" in by_name:
        annotations = by_name["search"].annotations
        assert annotations is not None and annotations.read_only_hint is True
    if "remember" in by_name:
        annotations = by_name["remember"].annotations
        assert annotations is not None and annotations.read_only_hint is False
        assert annotations.destructive_hint is False


def test_tools_all_are_generated_from_the_method_registry(daemon: DaemonProcess) -> None:
    async def scenario() -> list[types.Tool]:
        async with bridge(daemon, "--tools", "all") as session:
            return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in run(scenario())}
    document = daemon.call("rpc.discover")
    core_methods = {core.method for core in CORE} | {m for core in CORE for m in core.also}
    for method in document["methods"]:
        name = method["name"]
        if name in NOT_TOOLS or name in core_methods:
            assert tool_name(name) not in tools, name
            continue
        tool = tools[tool_name(name)]
        assert tool.description == method["summary"]  # said once: by the daemon
        params = {p["name"] for p in method["params"]}
        assert set(tool.input_schema["properties"]) == (params - {"agent"}) | {"full"}
        required = {p["name"] for p in method["params"] if p["required"]} - {"agent", "project"}
        assert set(tool.input_schema.get("required", [])) == required
    annotations = tools["kv_get"].annotations
    assert annotations is not None and annotations.read_only_hint is True
    annotations = tools["kv_delete"].annotations
    assert annotations is not None and annotations.destructive_hint is True
    annotations = tools["kv_set"].annotations
    assert annotations is not None and annotations.idempotent_hint is True


def test_tools_env_and_a_noun(daemon: DaemonProcess) -> None:
    async def scenario() -> list[str]:
        async with bridge(daemon, env={"PM_MCP_TOOLS": "search,kv.*"}) as session:
            return [tool.name for tool in (await session.list_tools()).tools]

    names = run(scenario())
    assert names[0] == "search"
    assert set(names[1:]) == {"kv_clear", "kv_delete", "kv_get", "kv_list", "kv_set"}


def test_a_bad_tools_spec_is_a_usage_error(daemon: DaemonProcess) -> None:
    done = subprocess.run(
        [*BRIDGE, "--tools", "core,no such"], env=daemon.env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--tools" in done.stderr and done.stdout == ""


# --- calls -----------------------------------------------------------------------------------
def test_daemon_errors_come_back_as_tool_errors(daemon: DaemonProcess) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with bridge(daemon, "--tools", "all") as session:
            bad = await session.call_tool("kv_get", {"namespace": "", "key": "k"})
            missing = await session.call_tool("documents_get", {"id": 999999})
            unknown = await session.call_tool("no_such_tool", {})
            still = await session.call_tool("kv_get", {"namespace": "n", "key": "k"})
            return bad, missing, unknown, still

    bad, missing, unknown, still = run(scenario())
    body = failure(bad)
    assert body["kind"] == "invalid_params" and body["code"] == -32602
    assert "namespace" in body["error"]  # the daemon's own message, naming the field
    body = failure(missing)
    assert body["kind"] == "not_found" and "999999" in body["error"]
    assert failure(unknown)["kind"] == "not_found"
    assert answer(still)["value"] is None  # the bridge is still there


def test_outputs_are_brief_unless_full(with_alpha: tuple[DaemonProcess, int]) -> None:
    daemon, project = with_alpha
    content = "the queue is claimed in one transaction " * 20

    async def scenario() -> tuple[Any, Any]:
        async with bridge(daemon) as session:
            saved = answer(await session.call_tool(
                "remember", {"kind": "note", "title": "claims", "content": content}
            ))  # fmt: skip
            brief = answer(await session.call_tool("search", {"query": "transaction"}))
            full = answer(await session.call_tool("search", {"query": "transaction", "full": True}))
            return saved, (brief, full)

    saved, (brief, full) = run(scenario())
    assert saved["project_id"] == project  # the bridge's project: the working directory's
    assert "content" not in saved  # brief: ids, titles, kinds…
    assert brief["items"][0]["id"] == saved["id"] and brief["items"][0]["title"] == "claims"
    assert "uid" not in brief["items"][0]
    assert "uid" in full["items"][0]


def test_agent_and_project_come_from_the_bridge(with_alpha: tuple[DaemonProcess, int]) -> None:
    daemon, project = with_alpha

    async def scenario() -> tuple[Any, Any]:
        async with bridge(daemon, name="claude-code") as session:
            from_client = answer(await session.call_tool(
                "checkpoint", {"last_action": "wrote the parser", "next_steps": ["test it"],
                               "full": True},
            ))  # fmt: skip
        async with bridge(daemon, "--agent", "reviewer", "--project", "alpha",
                          cwd=daemon.root) as session:  # fmt: skip
            from_flag = answer(await session.call_tool(
                "checkpoint", {"last_action": "reviewed", "full": True}
            ))  # fmt: skip
        return from_client, from_flag

    from_client, from_flag = run(scenario())
    assert from_client["agent"] == "claude-code"  # the name in the client's initialize
    assert from_client["project_id"] == project
    assert from_client["next_steps"] == ["test it"]
    assert from_flag["agent"] == "reviewer" and from_flag["project_id"] == project


def test_no_project_here_is_a_clear_error(daemon: DaemonProcess) -> None:
    async def scenario() -> Any:
        async with bridge(daemon, cwd=daemon.root) as session:  # no project holds it
            return await session.call_tool("checkpoint", {"last_action": "x"})

    body = failure(run(scenario()))
    assert body["kind"] == "invalid_params" and "project" in body["error"]


def test_events_long_poll_waits_for_a_change(daemon: DaemonProcess) -> None:
    cursor = daemon.call("events.list", {"limit": 1})["total"]
    last = daemon.call("events.list", {"since": 0, "limit": 10000})["items"]
    since = last[-1]["seq"] if last else 0
    assert cursor >= 0

    async def scenario() -> tuple[Any, float, Any, float]:
        async with bridge(daemon) as session:
            started = time.monotonic()
            empty = answer(await session.call_tool("events", {"since": since + 10**6,
                                                              "wait_s": 0.3}))  # fmt: skip
            waited = time.monotonic() - started

            async def write_soon() -> None:
                await asyncio.sleep(0.3)
                await asyncio.to_thread(daemon.call, "kv.set",
                                        {"namespace": "n", "key": "k", "value": 1})  # fmt: skip

            writer = asyncio.create_task(write_soon())
            started = time.monotonic()
            got = answer(await session.call_tool("events", {"since": since, "wait_s": 10,
                                                            "topics": ["kv"]}))  # fmt: skip
            took = time.monotonic() - started
            await writer
            return empty, waited, got, took

    empty, waited, got, took = run(scenario())
    assert empty["items"] == [] and 0.25 <= waited < 5
    assert [e["type"] for e in got["items"]] == ["kv.created"]
    assert took < 5  # woken by the event, not by the 10 s bound


# --- resources and prompts -------------------------------------------------------------------
def test_resources_read_and_subscribe(with_alpha: tuple[DaemonProcess, int]) -> None:
    """resources/subscribe, as today's clients (Claude Code, the TypeScript SDK 1.x) do it."""
    daemon, project = with_alpha
    uri = f"pm://projects/{project}/documents"
    updated: list[str] = []

    async def scenario() -> tuple[list[str], str, str]:
        seen = asyncio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ResourceUpdatedNotification):
                updated.append(str(message.params.uri))
                seen.set()

        params = StdioServerParameters(
            command=BRIDGE[0], args=BRIDGE[1:], env=daemon.env, cwd=str(alpha(daemon))
        )
        with open(daemon.root / "bridge-resources.log", "a") as errlog:  # noqa: ASYNC230
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, message_handler=on_message) as session,
            ):
                await session.initialize()
                listed = [str(r.uri) for r in (await session.list_resources()).resources]
                with warnings.catch_warnings():  # the SDK's: gone from the 2026-07-28 protocol
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await session.subscribe_resource(uri)
                doc = await asyncio.to_thread(add_note, daemon, project, "hello", "world")
                await asyncio.wait_for(seen.wait(), 10)
                listing = await session.read_resource(uri)
                one = await session.read_resource(f"pm://documents/{doc['id']}")
                return listed, text_of(listing), text_of(one)

    listed, listing, text = run(scenario())
    assert uri in listed
    assert updated == [uri]  # one notice, for the resource that changed
    assert json.loads(listing)["items"][0]["title"] == "hello"
    assert text == "# hello\n\nworld"


def test_resources_listen_on_the_2026_protocol(with_alpha: tuple[DaemonProcess, int]) -> None:
    """The SDK's high-level Client negotiates the 2026-07-28 protocol (server/discover) and
    subscribes with subscriptions/listen; the tools work the same, the agent named per call."""
    daemon, project = with_alpha
    uri = f"pm://projects/{project}/documents"
    other = "pm://documents/999999"

    async def scenario() -> tuple[str | None, list[str], Any]:
        params = StdioServerParameters(
            command=BRIDGE[0], args=BRIDGE[1:], env=daemon.env, cwd=str(alpha(daemon))
        )
        client = Client(params, client_info=types.Implementation(name="modern", version="1"))
        async with client:
            version = client.session.protocol_version
            async with client.listen(resource_subscriptions=[uri, other]) as subscription:
                await asyncio.to_thread(add_note, daemon, project, "hello", "world")
                event = await asyncio.wait_for(anext(subscription), 10)
            saved = await client.call_tool("checkpoint", {"last_action": "listened", "full": True})
            return version, [str(getattr(event, "uri", ""))], answer(saved)

    version, events, saved = run(scenario())
    assert version == "2026-07-28"
    assert events == [uri]
    assert saved["agent"] == "modern" and saved["project_id"] == project


def add_note(daemon: DaemonProcess, project: int, title: str, content: str) -> dict[str, Any]:
    doc: dict[str, Any] = daemon.call(
        "documents.add", {"project": project, "kind": "note", "title": title, "content": content}
    )
    return doc


def text_of(result: types.ReadResourceResult) -> str:
    contents = result.contents[0]
    assert isinstance(contents, types.TextResourceContents)
    return contents.text


def test_prompts(with_alpha: tuple[DaemonProcess, int]) -> None:
    daemon, project = with_alpha
    daemon.call("tasks.add", {"project": project, "title": "port the lexer"})

    async def scenario() -> tuple[list[str], str, str]:
        async with bridge(daemon, name="codex") as session:
            names = [p.name for p in (await session.list_prompts()).prompts]
            start = await session.get_prompt("start", {})
            await session.call_tool("claim", {})
            handoff = await session.get_prompt("handoff", {"to": "claude"})
            texts = []
            for prompt in (start, handoff):
                block = prompt.messages[0].content
                assert isinstance(block, types.TextContent)
                texts.append(block.text)
            return names, texts[0], texts[1]

    names, start, handoff = run(scenario())
    assert names == ["start", "handoff"]
    assert "alpha" in start and "port the lexer" in start  # the brief, with the ready task
    assert "`claim`" in start and "`checkpoint`" in start
    assert "codex" in handoff and "claude" in handoff and "`checkpoint`" in handoff
    assert "You hold:" in handoff and "port the lexer" in handoff


# --- the process ---------------------------------------------------------------------------
def test_stdout_carries_protocol_only(with_alpha: tuple[DaemonProcess, int]) -> None:
    """Raw lines in and out: every line on stdout is one JSON-RPC message; logs (the project
    it found, warnings) are on stderr."""
    daemon, _ = with_alpha
    messages: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "checkpoint", "arguments": {"last_action": "raw"}}},
    ]  # fmt: skip
    with subprocess.Popen(
        BRIDGE, env=daemon.env, cwd=alpha(daemon), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        lines = []
        for message in messages:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
            if "id" in message:
                lines.append(process.stdout.readline())
        process.stdin.close()  # the client goes away: the bridge ends
        rest = process.stdout.read()
        stderr = process.stderr.read()
        assert process.wait(30) == 0, stderr
    replies = [json.loads(line) for line in [*lines, *rest.splitlines()]]
    assert [reply.get("id") for reply in replies] == [1, 2, 3]
    assert all(reply["jsonrpc"] == "2.0" and "result" in reply for reply in replies)
    assert "project: alpha" in stderr


def test_survives_a_daemon_restart(with_alpha: tuple[DaemonProcess, int]) -> None:
    """Calls go on over a new connection; a resource subscription goes on too, and a change
    made before the bridge's event feed is back is still told (the feed resumes from the last
    event it saw)."""
    daemon, project = with_alpha
    uri = f"pm://projects/{project}/documents"
    updated: list[str] = []

    async def scenario() -> tuple[Any, Any]:
        seen = asyncio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ResourceUpdatedNotification):
                updated.append(str(message.params.uri))
                seen.set()

        async with bridge(daemon, "--tools", "kv.*", on_message=on_message) as session:
            await session.call_tool("kv_set", {"namespace": "n", "key": "k", "value": 1})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await session.subscribe_resource(uri)
            await asyncio.to_thread(daemon.stop)
            await asyncio.to_thread(daemon.start)
            await asyncio.to_thread(add_note, daemon, project, "after", "the restart")
            await asyncio.wait_for(seen.wait(), 20)
            after = await session.call_tool("kv_get", {"namespace": "n", "key": "k"})
            wrote = await session.call_tool("kv_set", {"namespace": "n", "key": "k", "value": 2})
            return after, wrote

    after, wrote = run(scenario())
    assert answer(after)["value"] == 1  # a new connection, the same data
    assert answer(wrote)["version"] == 2
    assert updated == [uri]


def test_starts_the_daemon_when_none_answers(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon()  # built, not started: nothing answers on its socket
    alpha(daemon)

    async def scenario() -> Any:
        async with bridge(daemon, "--tools", "kv.*") as session:
            return await session.call_tool("kv_get", {"namespace": "n", "key": "k"})

    try:
        assert answer(run(scenario()))["value"] is None
        status = daemon.status()
        assert status is not None and status["state"] == "ready"
    finally:
        _stop_spawned(daemon)


def _stop_spawned(daemon: DaemonProcess) -> None:
    """The daemon the bridge started is not our child: ask it to stop, wait for its socket."""
    try:
        daemon.call("daemon.shutdown")
    except Exception:
        return
    wait_for(lambda: not os.path.exists(daemon.socket_path), 30, "the daemon to stop")


def test_without_the_sdk_pm_mcp_says_how_to_install_it(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """A base install (no `pm-agent[mcp]`): simulated by a sitecustomize that hides the `mcp`
    package from imports, since this venv has it."""
    hider = tmp_path / "hide"
    hider.mkdir()
    (hider / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mcp' or name.startswith('mcp.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    paths = [str(hider), *filter(None, [daemon.env.get("PYTHONPATH")])]
    env = {**daemon.env, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run(BRIDGE, env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert INSTALL_HINT in done.stderr and done.stdout == ""


# --- the core tools against the work and memory methods -----------------------------------
def test_each_core_tool(with_alpha: tuple[DaemonProcess, int]) -> None:
    daemon, project = with_alpha
    plan = daemon.call("plans.add", {"project": project, "title": "parser"})
    phase = daemon.call("phases.add", {"plan": plan["id"], "title": "build"})

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with bridge(daemon, name="claude-code") as s:

            async def call(tool: str, **args: Any) -> Any:
                return answer(await s.call_tool(tool, args))

            seen["first"] = await call("create", title="write the lexer", priority=1)
            seen["second"] = await call("create", title="write the parser", priority=3)
            seen["step"] = await call("create", title="step one", phase=phase["id"])
            seen["ready"] = await call("ready")
            seen["claim"] = await call("claim")
            task = seen["claim"]["task"]["id"]
            seen["heartbeat"] = await call("heartbeat", id=task, lease_s=600)
            seen["update"] = await call("update", id=task, notes=["tokens first"])
            seen["show"] = await call("show", id=task, full=True)
            seen["plan"] = await call("show", plan=plan["id"])
            seen["release"] = await call("heartbeat", id=task, release=True)
            seen["again"] = await call("claim", id=task)
            seen["complete"] = await call("complete", id=task)
            seen["remember"] = await call(
                "remember", kind="note", title="lexer", content="hand-written, no regex"
            )
            seen["search"] = await call("search", query="regex")
            seen["checkpoint"] = await call(
                "checkpoint", last_action="lexer done", next_steps=["the parser"], task=task
            )
            primer = await s.call_tool("brief", {})
            assert not primer.is_error and isinstance(primer.content[0], types.TextContent)
            seen["brief"] = primer.content[0].text
            seen["brief_full"] = await call("brief", full=True)
            seen["events"] = await call("events", since=0, topics=["tasks"], limit=100)
        return seen

    seen = run(scenario())
    first, second = seen["first"], seen["second"]
    assert first["project_id"] == project and first["status"] == "pending"
    assert [t["id"] for t in seen["ready"]["items"]][:2] == [first["id"], second["id"]]
    claimed = seen["claim"]["task"]
    assert claimed["id"] == first["id"] and claimed["claimed_by"] == "claude-code"
    assert seen["heartbeat"]["lease_until"] > seen["claim"]["lease_until"]
    assert seen["show"]["notes"] == ["tokens first"] and seen["show"]["status"] == "in_progress"
    assert [t["title"] for t in seen["plan"]["phases"][0]["tasks"]] == ["step one"]
    assert seen["release"]["status"] == "pending" and seen["release"]["claimed_by"] is None
    assert seen["again"]["task"]["id"] == first["id"]
    assert seen["complete"]["completed"]["status"] == "completed"
    assert seen["search"]["items"][0]["id"] == seen["remember"]["id"]
    assert seen["checkpoint"]["task_id"] == first["id"]
    # context.brief's Markdown (its content is the daemon's to test): the project, where the
    # agent stopped, the note just left; `full` gives the fields.
    assert "alpha" in seen["brief"] and "lexer done" in seen["brief"]
    assert "lexer" in seen["brief"] and not seen["brief"].startswith("{")
    assert seen["brief_full"]["project"]["id"] == project
    assert seen["brief_full"]["relative_path"] == "src"  # the bridge works in alpha/src
    types_seen = [e["type"] for e in seen["events"]["items"]]
    assert "tasks.claimed" in types_seen and "tasks.completed" in types_seen


def test_two_agents_one_queue_no_double_claim(with_alpha: tuple[DaemonProcess, int]) -> None:
    """Two bridges, two agents, claiming and completing from one queue until it is empty:
    every task is taken exactly once."""
    daemon, project = with_alpha
    total = 30
    for i in range(total):
        daemon.call("tasks.add", {"project": project, "title": f"task {i}"})

    async def agent(name: str) -> list[int]:
        taken: list[int] = []
        async with bridge(daemon, name=name) as s:
            while True:
                claim = answer(await s.call_tool("claim", {}))
                if claim["task"] is None:
                    return taken
                taken.append(claim["task"]["id"])
                done = answer(await s.call_tool("complete", {"id": claim["task"]["id"]}))
                assert done["completed"]["status"] == "completed"

    async def scenario() -> tuple[list[int], list[int]]:
        a, b = await asyncio.gather(agent("agent-a"), agent("agent-b"))
        return a, b

    a, b = run(scenario())
    assert not set(a) & set(b)  # no task handed to both
    assert len(a) + len(b) == total == len(set(a) | set(b))
    assert a and b  # both took work
    left = daemon.call("tasks.ready", {"project": project})
    assert left["items"] == []
