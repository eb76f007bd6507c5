"""`pm mcp` through a second, independent client: the TypeScript MCP SDK's own
(`@modelcontextprotocol/sdk` from npm, pinned in tests/node/package-lock.json and installed
by tests/test_editors.py's `node` fixture): the handshake, the tool list, calls, a
refused call as a tool error, and a resource.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess
from tests.test_editors import (
    NODE_DIR,
    findings_of,
    need,
    node,  # noqa: F401 - the fixture, used by name below
)
from tests.test_mcp import BRIDGE, alpha, started_with_alpha


@pytest.fixture
def with_alpha(make_daemon: DaemonFactory) -> tuple[DaemonProcess, int]:
    return started_with_alpha(make_daemon)


@pytest.mark.usefixtures("node")  # tests/test_editors.py's: node, and the lockfile installed
def test_typescript_sdk_client(with_alpha: tuple[DaemonProcess, int]) -> None:
    daemon, project = with_alpha
    node_path = need("node")
    server = {
        "command": BRIDGE[0],
        "args": BRIDGE[1:],
        "cwd": str(alpha(daemon) / "src"),
        "env": daemon.env,
    }
    done = subprocess.run(
        [node_path, str(NODE_DIR / "mcp_client.mjs"), json.dumps(server)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    seen = findings_of(done)
    assert seen["server"]["name"] == "pm-agent"
    names = [tool["name"] for tool in seen["tools"]]
    assert {"create", "claim", "ready", "brief", "remember"} <= set(names)
    for tool in seen["tools"]:
        assert tool["schema"]["type"] == "object" and "readOnlyHint" in tool["annotations"]
    created = seen["created"]
    assert not created["isError"] and created["value"]["project_id"] == project
    claimed = seen["claimed"]["value"]["task"]
    assert claimed["id"] == created["value"]["id"]
    assert claimed["claimed_by"] == "ts-sdk-client"  # the name in its initialize
    refused = seen["refused"]
    assert refused["isError"] and refused["value"]["kind"] == "not_found"
    assert "987654" in refused["value"]["error"]
    assert seen["ready"] == {"items": [], "total": 0}  # the one task is claimed now
