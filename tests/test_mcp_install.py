"""`pm mcp install claude|cursor|vscode [--project]` on configs that already exist: the entry
is set in each client's own file and shape, and every byte that was there stays (order,
indentation, comments, other servers, keys the user added to our entry). A malformed file is
an error that changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from client.mcp import install, jsonedit
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess
from tests.test_mcp import BRIDGE, alpha, started_with_alpha


@pytest.fixture
def with_alpha(make_daemon: DaemonFactory) -> tuple[DaemonProcess, int]:
    return started_with_alpha(make_daemon)


CLAUDE_USER = """{
  "numStartups": 42,
  "theme": "dark",
  "mcpServers": {
    "github": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {"GITHUB_TOKEN": "ghp_keep_me"}
    }
  },
  "projects": {"/home/me/Dev/x": {"allowedTools": []}}
}
"""
VSCODE_PROJECT = """// Servers for this workspace
{
\t"inputs": [
\t\t{"type": "promptString", "id": "key", "password": true},
\t],
\t"servers": {
\t\t/* the team's linter */
\t\t"lint": {"type": "stdio", "command": "lint-mcp"}, // keep this comment
\t},
}
"""
CURSOR_USER = '{"mcpServers":{"playwright":{"command":"npx","args":["@playwright/mcp"]}}}'


def subsequence(old: str, new: str) -> bool:
    """Every character of `old` is in `new`, in order: nothing was lost or rewritten."""
    chars = iter(new)
    return all(char in chars for char in old)


def entry_in(path: Path, key: str, *, comments: bool = False) -> Any:
    return jsonedit.parse(path.read_text(), comments=comments).value[key]["pm-agent"]


@pytest.mark.parametrize(
    ("client", "relative", "key", "original", "comments"),
    [
        ("claude", ".claude.json", "mcpServers", CLAUDE_USER, False),
        ("cursor", ".cursor/mcp.json", "mcpServers", CURSOR_USER, False),
    ],
)
def test_user_configs_keep_every_byte(
    tmp_path: Path, client: str, relative: str, key: str, original: str, comments: bool
) -> None:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(original)
    os.chmod(path, 0o600)
    change = install.plan(
        client, project_root=None, home=tmp_path, command=["/opt/pm/bin/pm", "mcp"]
    )
    assert change.path == path and change.changed
    assert change.diff().startswith(f"--- {path}\n+++ {path}\n")
    install.apply(change)
    new = path.read_text()
    assert subsequence(original, new)
    document = json.loads(new)
    assert {k: v for k, v in document[key].items() if k != "pm-agent"} == json.loads(original)[key]
    server = document[key]["pm-agent"]
    assert server["command"] == "/opt/pm/bin/pm"
    expected = ["mcp", "--project", "${workspaceFolder}"] if client == "cursor" else ["mcp"]
    assert server["args"] == expected
    assert (path.stat().st_mode & 0o777) == 0o600  # the user's file mode is kept
    again = install.plan(
        client, project_root=None, home=tmp_path, command=["/opt/pm/bin/pm", "mcp"]
    )
    assert not again.changed and again.diff() == ""


def test_vscode_project_config_with_comments(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / ".vscode").mkdir(parents=True)
    path = project / ".vscode" / "mcp.json"
    path.write_text(VSCODE_PROJECT)
    change = install.plan(
        "vscode", project_root=project, home=tmp_path / "home", command=["pm", "mcp"]
    )
    install.apply(change)
    new = path.read_text()
    assert subsequence(VSCODE_PROJECT, new)
    assert "// keep this comment" in new and "/* the team's linter */" in new
    parsed = jsonedit.parse(new, comments=True).value
    assert parsed["servers"]["lint"] == {"type": "stdio", "command": "lint-mcp"}
    assert parsed["servers"]["pm-agent"] == {
        "type": "stdio",
        "command": "pm",  # a project's file is shared: pm from PATH
        "args": ["mcp", "--project", "${workspaceFolder}"],
    }
    assert '\t\t"pm-agent": {' in new  # indented as its siblings, with their tabs


def test_our_entry_is_updated_and_what_the_user_added_stays(tmp_path: Path) -> None:
    path = tmp_path / "proj" / ".mcp.json"
    path.parent.mkdir()
    old = (
        '{\n  "mcpServers": {\n    "pm-agent": {\n      "command": "/old/pm",\n'
        '      "args": ["mcp"],\n      "env": {"PM_MCP_TOOLS": "all"}\n    }\n  }\n}\n'
    )
    path.write_text(old)
    change = install.plan("claude", project_root=path.parent, home=tmp_path, command=["pm", "mcp"])
    install.apply(change)
    server = entry_in(path, "mcpServers")
    assert server == {"command": "pm", "args": ["mcp"], "env": {"PM_MCP_TOOLS": "all"},
                      "type": "stdio"}  # fmt: skip
    assert '"env": {"PM_MCP_TOOLS": "all"}' in path.read_text()


@pytest.mark.parametrize(
    "broken",
    ['{"mcpServers": {"a": 1,}}', '{"mcpServers": ', "[1, 2]", '{"mcpServers": "none"}',
     "// a comment\n{}"],
)  # fmt: skip
def test_a_malformed_config_is_an_error_that_changes_nothing(tmp_path: Path, broken: str) -> None:
    path = tmp_path / ".cursor" / "mcp.json"
    path.parent.mkdir()
    path.write_text(broken)
    before = path.stat()
    with pytest.raises(install.InstallError) as refused:
        install.plan("cursor", project_root=None, home=tmp_path, command=["pm", "mcp"])
    assert str(path) in str(refused.value) and "nothing was changed" in str(refused.value)
    assert path.read_text() == broken and path.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in path.parent.iterdir()) == ["mcp.json"]  # no temp file left


def test_a_symlinked_config_is_edited_where_it_lives(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "cursor-mcp.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text(CURSOR_USER)
    link = tmp_path / ".cursor" / "mcp.json"
    link.parent.mkdir()
    link.symlink_to(dotfiles)
    install.apply(install.plan("cursor", project_root=None, home=tmp_path, command=["pm", "mcp"]))
    assert link.is_symlink()
    assert "pm-agent" in json.loads(dotfiles.read_text())["mcpServers"]


def test_a_config_changed_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / ".claude.json"
    path.write_text(CLAUDE_USER)
    change = install.plan("claude", project_root=None, home=tmp_path, command=["pm", "mcp"])
    path.write_text(CLAUDE_USER.replace("42", "43"))  # the client rewrote it in between
    with pytest.raises(install.InstallError, match="changed while"):
        install.apply(change)
    assert path.read_text() == CLAUDE_USER.replace("42", "43")


def test_pm_mcp_install_from_the_command_line(with_alpha: tuple[DaemonProcess, int]) -> None:
    """`pm mcp install claude --project` in a subfolder writes the project root's .mcp.json
    and shows the diff; `pm mcp install vscode --dry-run` writes nothing."""
    daemon, _ = with_alpha
    root = alpha(daemon)
    env = {**daemon.env, "XDG_CONFIG_HOME": str(daemon.home / ".config")}
    done = subprocess.run(
        [*BRIDGE, "install", "claude", "--project"], cwd=root / "src", env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("--- /dev/null\n")
    assert f"wrote {root / '.mcp.json'}" in done.stderr
    assert json.loads((root / ".mcp.json").read_text())["mcpServers"]["pm-agent"] == {
        "type": "stdio", "command": "pm", "args": ["mcp"],
    }  # fmt: skip
    dry = subprocess.run(
        [*BRIDGE, "install", "vscode", "--dry-run"], cwd=root, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    user_file = daemon.home / ".config" / "Code" / "User" / "mcp.json"
    assert '+    "pm-agent": {' in dry.stdout and not user_file.exists()
    broken = root / ".cursor" / "mcp.json"
    broken.parent.mkdir()
    broken.write_text("{oops")
    bad = subprocess.run(
        [*BRIDGE, "install", "cursor", "--project"], cwd=root, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and "not valid JSON" in bad.stderr
    assert broken.read_text() == "{oops"
