"""The `pm mcp` command line.

    pm mcp [--agent NAME] [--project PROJECT] [--tools SPEC]
    pm mcp install claude|cursor|vscode [--project] [--dry-run]
              [--agent NAME] [--tools SPEC]

The server needs the optional SDK (`pm-agent[mcp]`); without it `pm mcp` says how to install
it. `install` needs only the standard library (and the daemon, to find a project's folder).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from client import errors
from client.mcp import INSTALL_HINT
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from client.session import Session
    from client.spec import Args

TOOLS_ENV = "PM_MCP_TOOLS"
SDK_PACKAGES = ("mcp", "mcp_types")  # the `pm-agent[mcp]` extra's
CLIENTS = ("claude", "cursor", "vscode")  # client.mcp.install's, without importing it here


def command(word: str) -> Command:
    tools_help = f"core (default), all, or a comma list of tools, methods, noun.* (${TOOLS_ENV})"
    return Command(
        word,
        cmd_serve,
        [
            Arg("agent", "--agent", metavar="NAME",
                help="who the calls are from (default: the MCP client's name)"),
            Arg("project", "--project", complete="project",
                help="id, name or path (default: the project holding the working directory)"),
            Arg("tools", "--tools", metavar="SPEC", help=tools_help),
        ],
        help="serve pm-agent to an AI agent over MCP (stdio); `pm mcp install` sets a client up",
        verbs=[
            Command("install", cmd_install, [
                Arg("client", choices=CLIENTS, help="claude, cursor or vscode"),
                Arg("project", "--project", flag=True,
                    help="the config of the project holding the working directory, not the user's"),
                Arg("dry_run", "--dry-run", flag=True, help="show the change, write nothing"),
                Arg("agent", "--agent", metavar="NAME", help="start pm mcp with --agent NAME"),
                Arg("tools", "--tools", metavar="SPEC", help="start pm mcp with --tools SPEC"),
            ], help="add pm-agent to claude, cursor or vscode's MCP config, keeping the rest"),
        ],
    )  # fmt: skip


def cmd_serve(args: Args, s: Session) -> int:
    from client.mcp.generated import check_spec

    tools = args.tools or os.environ.get(TOOLS_ENV) or "core"
    check_spec(tools)  # before the SDK's second of imports
    try:
        from client.mcp.server import Options, serve
    except ImportError as e:
        if (e.name or "").split(".")[0] not in SDK_PACKAGES:
            raise
        raise errors.ClientError(INSTALL_HINT, kind="missing_extra") from None
    return serve(
        Options(
            socket_path=s.socket_path,
            spawn=not args.no_spawn,
            agent=args.agent,
            project=args.project,
            tools=tools,
        )
    )


def cmd_install(args: Args, s: Session) -> int:
    from client import output
    from client.mcp import install as setup

    root = None
    if args.project:
        from client import current

        root = Path(current.holding(s, current.HERE)["path"])
    extra = [*(["--agent", args.agent] if args.agent else []),
             *(["--tools", args.tools] if args.tools else [])]  # fmt: skip
    change = setup.plan(
        args.client,
        project_root=root,
        home=Path.home(),
        command=setup.pm_mcp(project_scope=root is not None),
        extra_args=extra,
    )
    if args.json:
        output.print_json(
            {"path": str(change.path), "changed": change.changed, "diff": change.diff()}
        )
    else:
        sys.stdout.write(change.diff())
    if not args.dry_run:
        setup.apply(change)
    if not change.changed:
        said = f"{change.path} already runs pm mcp: nothing to change"
    elif args.dry_run:
        said = f"{change.path}: not written (--dry-run)"
    else:
        said = f"wrote {change.path}; restart {args.client} (or reload its MCP servers)"
    output.error(said)
    return errors.EXIT_OK
