"""`pm mcp install claude|cursor|vscode [--project]`: point an agent's client at `pm mcp`.

Each client keeps its MCP servers in its own file and shape:

| client | for the user                   | in a project (--project) | servers under        |
|--------|--------------------------------|--------------------------|----------------------|
| claude | ~/.claude.json                 | .mcp.json                | mcpServers           |
| cursor | ~/.cursor/mcp.json             | .cursor/mcp.json         | mcpServers           |
| vscode | <VS Code user folder>/mcp.json | .vscode/mcp.json         | servers (type stdio) |

The entry `pm-agent` is set in place (client.mcp.jsonedit: every other byte of the file is
kept; keys of the entry the user added, such as `env`, stay); the change is shown as a diff
before it is written. A file that is not valid JSON (VS Code's: JSONC) is an error and nothing
is written. The write goes to a temporary file beside the real one (through a symlink, to its
target), keeps the file's mode, and replaces it only if nobody changed the file meanwhile.

A project's file is meant to be shared, so its command is `pm` from PATH; a user's file gets
this installation's absolute path (editors started from a desktop have a short PATH). Cursor and
VS Code start servers outside the project, so their entry names it: `--project
${workspaceFolder}`, which both fill in.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from client.errors import ClientError
from client.mcp import jsonedit

CLIENTS = ("claude", "cursor", "vscode")
ENTRY = "pm-agent"
WORKSPACE = "${workspaceFolder}"


class InstallError(ClientError):
    kind = "config"


@dataclass(frozen=True)
class Change:
    path: Path
    old: str
    new: str
    existed: bool

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        name = str(self.path)
        return "".join(
            difflib.unified_diff(
                self.old.splitlines(keepends=True),
                self.new.splitlines(keepends=True),
                fromfile=name if self.existed else "/dev/null",
                tofile=name,
            )
        )


def config_path(client: str, project_root: Path | None, home: Path) -> tuple[Path, str, bool]:
    """(file, the key servers live under, whether the file may hold comments)."""
    if client == "claude":
        path = project_root / ".mcp.json" if project_root else home / ".claude.json"
        return path, "mcpServers", False
    if client == "cursor":
        folder = project_root if project_root else home
        return folder / ".cursor" / "mcp.json", "mcpServers", False
    if client == "vscode":
        path = project_root / ".vscode" / "mcp.json" if project_root else _vscode_user(home)
        return path, "servers", True
    raise InstallError(f"unknown client {client!r}: one of {', '.join(CLIENTS)}")


def _vscode_user(home: Path) -> Path:
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "Code" / "User" / "mcp.json"
    config = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config) / "Code" / "User" / "mcp.json"


def entry(client: str, *, command: list[str], extra_args: list[str]) -> dict[str, object]:
    """The server entry: `command` is how `pm mcp` is started (client.mcp.install.pm_mcp)."""
    args = [*command[1:], *extra_args]
    if client in ("cursor", "vscode") and "--project" not in extra_args:
        args += ["--project", WORKSPACE]
    server: dict[str, object] = {"command": command[0], "args": args}
    if client in ("claude", "vscode"):
        server = {"type": "stdio", **server}
    return server


def pm_mcp(project_scope: bool) -> list[str]:
    """How the client starts `pm mcp`: `pm` from PATH in a shared project file; in the
    user's, this installation's own `pm` by absolute path (or its interpreter with `-m
    client.mcp` when no `pm` script is to be found)."""
    if project_scope:
        return ["pm", "mcp"]
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if invoked is not None and invoked.name == "pm" and invoked.exists():
        return [str(invoked.absolute()), "mcp"]
    found = shutil.which("pm")
    if found is not None:
        return [str(Path(found).absolute()), "mcp"]
    return [sys.executable, "-m", "client.mcp"]


def plan(
    client: str,
    *,
    project_root: Path | None,
    home: Path,
    command: list[str],
    extra_args: list[str] | None = None,
) -> Change:
    """What installing would change; nothing is written."""
    path, key, comments = config_path(client, project_root, home)
    old, existed = _read(path)
    wanted = entry(client, command=command, extra_args=extra_args or [])
    try:
        document = jsonedit.parse(old, comments=comments).value if old.strip() else None
        servers = document.get(key) if isinstance(document, dict) else None
        current = servers.get(ENTRY) if isinstance(servers, dict) else None
        new = old
        if isinstance(current, dict):  # keep what the user added to the entry (env, cwd…)
            for name, value in wanted.items():
                new = jsonedit.set_in(new, [key, ENTRY, name], value, comments=comments)
        else:
            new = jsonedit.set_in(new, [key, ENTRY], wanted, comments=comments)
    except jsonedit.JsonTextError as e:
        what = "JSON with comments" if comments else "JSON"
        raise InstallError(f"{path} is not valid {what} ({e}): nothing was changed") from None
    except ValueError as e:
        raise InstallError(f"{path}: {e}; nothing was changed") from None
    return Change(path, old, new, existed)


def apply(change: Change) -> None:
    """Write the change, unless the file changed since it was read."""
    if not change.changed:
        return
    target = change.path.resolve() if change.path.is_symlink() else change.path
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o7777 if change.existed else None
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".pm-agent", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(change.new)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        else:
            os.chmod(temp, 0o644 & ~_umask())
        if _read(change.path)[0] != change.old:
            raise InstallError(f"{change.path} changed while pm was editing it; run again")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> tuple[str, bool]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "", False
    except OSError as e:
        raise InstallError(f"cannot read {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        raise InstallError(f"{path} is not UTF-8 text: nothing was changed") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
