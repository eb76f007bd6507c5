"""The JSON-RPC libraries editors already use, unchanged, against a real daemon.

- vscode-jsonrpc (what VS Code extensions use; the current major and 8.x, which
  vscode-languageclient 9 still pulls in) over `net.createConnection(path)`: a call, a write
  and a read, `$/progress` handed to `onProgress`, a CancellationToken that makes the library
  send `$/cancelRequest` and get -32800, and `events.event` notifications.
- The `rpc.discover` document against the official OpenRPC meta-schema (@open-rpc/meta-schema).
- Emacs's built-in jsonrpc.el over a local network process.

The node packages are pinned in tests/node/package-lock.json and installed by the first test
that needs them (`npm ci`, once per session). A missing node, npm or emacs skips its tests,
unless PM_TEST_REQUIRE_TOOLS=1 (CI sets it): then it fails.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import REPO, REQUIRE_TOOLS_ENV, DaemonProcess, require_tool

NODE_DIR = REPO / "tests" / "node"
EMACS_TEST = REPO / "tests" / "emacs" / "pm_agent_test.el"
INSTALL_HINT = {
    "node": "apt-get install nodejs npm",
    "npm": "apt-get install npm",
    "emacs": "apt-get install emacs-nox",
}
LIBRARIES = ["vscode-jsonrpc", "vscode-jsonrpc-8"]  # npm alias for vscode-jsonrpc@8.2.1
CLEAR_ROWS = 100_000  # per library: ~100 chunks of 1000, so a cancel lands mid-way
PROJECTS = ["alpha", "beta", "gamma"]


def need(tool: str) -> str:
    return require_tool(tool, INSTALL_HINT[tool])


def run(argv: list[str], *, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)


def findings_of(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, (
        f"{result.args[1]} exited {result.returncode}\n"
        f"stderr:\n{result.stderr}\nstdout:\n{result.stdout}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> str:
    """node, with tests/node/node_modules installed from the lockfile if it is not already."""
    node_path = need("node")
    version = run([node_path, "--version"]).stdout.strip()
    major = int(re.sub(r"^v(\d+).*", r"\1", version) or 0)
    if major < 18:
        message = f"node {version} is too old (need 18 or newer)"
        if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    installed = NODE_DIR / "node_modules" / ".package-lock.json"  # written by npm ci
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm = need("npm")
        env = {
            **os.environ,
            # npm's download cache in a temp dir, not the user's home.
            "npm_config_cache": str(tmp_path_factory.mktemp("npm-cache")),
            "npm_config_update_notifier": "false",
        }
        result = run(
            [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"], timeout=600, env=env
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return node_path


@pytest.fixture(scope="module")
def editor_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon with a few projects to scan and, per library, a namespace big enough that a
    kv.clear is still running when its cancellation arrives (rows written straight into the
    file while the daemon is stopped: filling them through the API would take seconds)."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("editors"))
    for name in PROJECTS:
        project = daemon.dev_root / name
        project.mkdir(parents=True)
        (project / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n')
    daemon.start()
    assert daemon.stop() == 0
    conn = sqlite3.connect(daemon.db_path)
    with conn:
        for lib in LIBRARIES:
            conn.executemany(
                "INSERT INTO kv (namespace, key, value, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                ((f"big-{lib}", f"k{i:07d}", "1", "t", "t") for i in range(CLEAR_ROWS)),
            )
    conn.close()
    daemon.start()
    yield daemon
    assert daemon.stop() == 0
    daemon.cleanup()


# --- vscode-jsonrpc ------------------------------------------------------------------------
@pytest.mark.parametrize("lib", LIBRARIES)
def test_vscode_jsonrpc(node: str, editor_daemon: DaemonProcess, lib: str) -> None:
    namespace = f"big-{lib}"
    found = findings_of(
        run(
            [
                node,
                str(NODE_DIR / "vscode_client.mjs"),
                editor_daemon.socket_path,
                "--lib",
                lib,
                "--clear-namespace",
                namespace,
            ]
        )
    )
    assert found["library"] == lib
    assert found["version"].split(".")[0] == ("8" if lib.endswith("-8") else "10")
    # A call
    assert found["hello"]["compatible"] is True
    assert found["hello"]["daemon_version"] == editor_daemon.call("daemon.hello")["daemon_version"]
    # A write and a read; the write is visible to any other client
    value = {"text": "héllo wörld — €😀", "n": 42, "list": [1, 2, 3]}
    assert found["kv"]["get"] == value
    got = editor_daemon.call("kv.get", {"namespace": "vscode", "key": "greeting"})
    assert got["value"] == value
    # The event of that write, as an events.event notification
    event = found["event"]["event"]
    # (the first library creates the key, the next one updates it)
    assert event["type"] in ("kv.created", "kv.updated") and event["topic"] == "kv"
    data = event["data"]
    assert data["key"] == "greeting" and data.get("changed", data)["value"] == value
    # $/progress of a scan, handed to onProgress: begin, reports, end, in order
    scan = found["scan"]
    assert scan["result"]["found"] == len(PROJECTS)
    kinds = [v["kind"] for v in scan["progress"]]
    assert kinds[0] == "begin" and kinds[-1] == "end"
    assert set(kinds[1:-1]) == {"report"} and len(kinds) >= 3
    assert scan["progress"][0]["title"] == "projects.scan"
    percentages = [v["percentage"] for v in scan["progress"] if "percentage" in v]
    assert percentages == sorted(percentages)
    # A CancellationToken: the library sent $/cancelRequest for its request, got -32800
    cancel = found["cancel"]
    assert cancel["code"] == -32800
    assert cancel["data"]["kind"] == "cancelled"
    assert isinstance(cancel["cancel_notification"]["params"]["id"], int)
    deleted = cancel["data"]["deleted"]
    assert 0 < deleted < CLEAR_ROWS and deleted % 1000 == 0
    assert cancel["left"] == CLEAR_ROWS - deleted  # exactly what was reported as done
    assert editor_daemon.call("kv.list", {"namespace": namespace, "limit": 1})["total"] == (
        CLEAR_ROWS - deleted
    )
    assert cancel["progress_kinds"][0] == "begin" and cancel["progress_kinds"][-1] == "end"
    # Nothing arrived that the library could not place; only the cancel was sent unasked
    assert found["unhandled_notifications"] == []
    assert found["notifications_sent"] == ["$/cancelRequest"]
    assert found["unsubscribed"] == {"unsubscribed": True}


def test_readme_vscode_snippet(node: str, editor_daemon: DaemonProcess) -> None:
    """The README's VS Code snippet (tests/node/readme_vscode.mjs), run as it is."""
    result = run(
        [node, str(NODE_DIR / "readme_vscode.mjs")],
        env={**os.environ, "PM_AGENT_SOCKET": editor_daemon.socket_path},
    )
    assert result.returncode == 0, result.stderr
    assert "compatible: true" in result.stdout
    assert "value: 'hello'" in result.stdout
    got = editor_daemon.call("kv.get", {"namespace": "my-extension", "key": "greeting"})
    assert got["value"] == "hello"


# --- OpenRPC --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def discover_document(editor_daemon: DaemonProcess) -> dict[str, Any]:
    document: dict[str, Any] = editor_daemon.call("rpc.discover")
    return document


def check_openrpc(node: str, document: Any) -> subprocess.CompletedProcess[str]:
    return run([node, str(NODE_DIR / "openrpc_check.mjs"), "-"], input=json.dumps(document))


def test_rpc_discover_is_valid_openrpc(node: str, discover_document: dict[str, Any]) -> None:
    found = findings_of(check_openrpc(node, discover_document))
    assert found["valid"] is True, found["errors"]
    assert found["errors"] == []
    assert found["methods"] == len(discover_document["methods"])
    assert found["schemas"] == len(discover_document["components"]["schemas"])
    assert not [w for w in found["warnings"] if "resolves to nothing" in w["message"]]


def test_openrpc_check_rejects_a_broken_document(
    node: str, discover_document: dict[str, Any]
) -> None:
    """The validator is not vacuous: it sees a wrong schema inside a method."""
    broken = json.loads(json.dumps(discover_document))
    broken["methods"][0]["params"].append({"name": "x", "schema": {"type": 5}})
    del broken["info"]["version"]
    result = check_openrpc(node, broken)
    assert result.returncode == 1, result.stdout
    found = json.loads(result.stdout)
    paths = {e["path"] for e in found["errors"]}
    assert "/info" in paths  # version is required
    assert any(p.startswith("/methods/0/params/") and p.endswith("/schema/type") for p in paths)


def test_rpc_discover_schemas_are_draft_07(node: str, discover_document: dict[str, Any]) -> None:
    found = findings_of(check_openrpc(node, discover_document))
    assert found["warnings"] == []


# --- Emacs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def emacs_run(
    editor_daemon: DaemonProcess, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Any]:
    emacs = need("emacs")
    home = tmp_path_factory.mktemp("emacs-home")
    result = run(
        [emacs, "--batch", "-Q", "-l", str(EMACS_TEST), "-f", "pm-agent-test-run"],
        env={
            **os.environ,
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PM_AGENT_SOCKET": editor_daemon.socket_path,
        },
    )
    return result, findings_of(result)


def test_emacs_jsonrpc(emacs_run: tuple[subprocess.CompletedProcess[str], Any]) -> None:
    result, found = emacs_run
    assert "0 unexpected" in result.stderr, result.stderr
    assert found["readme_value"] == "hello"
    assert found["value_roundtrip"] is True
    assert found["event_type"] == "kv.created"
    assert found["protocol_version"] == 1
    assert found["invalid_params_code"] == -32602


def test_emacs_nil_params_mean_no_params(
    emacs_run: tuple[subprocess.CompletedProcess[str], Any],
) -> None:
    _, found = emacs_run
    assert found["nil_params"] == "ok"
