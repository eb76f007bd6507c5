"""Who the bridge speaks for and where: the agent (`--agent`, else the name the MCP client gave
in its `initialize`) and the project (`--project`, else the working directory), so tool calls
need not repeat them.

The project is resolved as `pm` resolves one (client.current: an id or a name as given; a path,
`.` included, is the project whose folder holds it, from any subfolder), once, at the first
call that needs it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from client.errors import ClientError

if TYPE_CHECKING:
    from client.session import Session

log = logging.getLogger("pm.mcp")

DEFAULT_AGENT = "mcp-agent"  # a client that gave no name in its handshake


class Identity:
    def __init__(self, *, agent: str | None, project: str | None, socket_path: str) -> None:
        self._agent = agent
        self._project_text = project
        self._socket_path = socket_path
        self._project: int | str | None = None
        # Where the agent works, when it is a folder (not a project named by id or name).
        self.path: str | None = None
        if project is None or _is_path(project):
            from client import current

            self.path = current.absolute(project or current.HERE)
        self._resolved = False
        self.project_problem: str | None = None  # why there is no default project
        self._lock = asyncio.Lock()

    def agent(self, client_name: str | None) -> str:
        """`--agent`, else the MCP client's own name (clientInfo.name)."""
        return self._agent or (client_name or "").strip() or DEFAULT_AGENT

    async def project(self) -> int | str | None:
        """The default project for calls (its id, or the name given), or None (and
        `project_problem` says why)."""
        async with self._lock:
            if not self._resolved:
                self._project = await asyncio.to_thread(self._resolve)
                self._resolved = True
            return self._project

    def _resolve(self) -> int | str | None:
        from client import current

        text = self._project_text
        if text is not None and not current.is_path(text):
            return int(text) if text.isdigit() else text
        path = self.path or current.absolute(current.HERE)
        session = _session(self._socket_path)
        try:
            found = current.find_holding(session, path)
        except ClientError as e:
            self.project_problem = f"could not ask pm-agentd which project holds {path}: {e}"
            log.warning("%s", self.project_problem)
            return None
        finally:
            session.close()
        if found is None:
            self.project_problem = (
                f"no project holds {path}: pass `project`, start `pm mcp --project NAME`, or "
                f"track the folder with `pm project register {path}`"
            )
            log.info("%s", self.project_problem)
            return None
        project_id: int = found["id"]
        log.info("project: %s (%s)", found.get("name"), project_id)
        return project_id


def _is_path(text: str) -> bool:
    from client import current

    return current.is_path(text)


def _session(socket_path: str) -> Session:
    """The CLI's own session (the daemon is up by now: the bridge started it if need be)."""
    from client.session import Session

    return Session({"socket": socket_path, "no_spawn": True, "json": False})
