"""`pm-agentd`: parse flags, load the config, run the daemon in the foreground.

Exit codes: 0 stopped cleanly, 1 could not start or failed, 2 bad usage, 78 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from daemon import __version__
from daemon.config import Config, ConfigError, load, resolve_paths
from daemon.db.migrations import Migration

EX_CONFIG = 78


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pm-agentd",
        description="pm-agent's daemon: the one writer of its SQLite file, serving JSON-RPC on "
        "a Unix socket. Runs in the foreground; `pm daemon start` starts it in the background.",
    )
    p.add_argument("--version", action="version", version=f"pm-agentd {__version__}")
    p.add_argument("--config", help="config file (default: ~/.config/pm-agent/config.toml)")
    p.add_argument("--dev-root", help="the folder holding your projects (default: ~/Dev)")
    p.add_argument("--data-dir", help="where the database lives (default: <dev root>/.pm-agent)")
    p.add_argument("--socket", help="the Unix socket to serve")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-file", help='a file, or "-" for stderr')
    p.add_argument("--synchronous", choices=["OFF", "NORMAL", "FULL", "EXTRA"])
    return p


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: int = uvloop.run(coro)
    return result


def main(argv: Sequence[str] | None = None, *, migrations: list[Migration] | None = None) -> int:
    args = parser().parse_args(argv)
    env = dict(os.environ)
    if args.config:
        env["PM_AGENT_CONFIG"] = args.config
    flags = {
        "dev_root": args.dev_root,
        "data_dir": args.data_dir,
        "socket": args.socket,
        "log_level": args.log_level,
        "log_file": args.log_file,
        "synchronous": args.synchronous,
    }
    try:
        config: Config = load(flags, env)
    except ConfigError as e:
        print(f"pm-agentd: {e}", file=sys.stderr)
        return EX_CONFIG
    paths = resolve_paths(config, env)
    os.umask(0o077)  # every file and folder we create is ours alone

    from daemon import memory

    memory.tune_allocator()  # before any thread or big allocation (see daemon/memory.py)

    from daemon import logs
    from daemon.db.migrations import MigrationError
    from daemon.lifecycle import Daemon
    from daemon.startup import StartupError

    logs.configure(config.log_level, paths.log_file, env)
    daemon = Daemon(config, paths, migrations=migrations, env=env)
    try:
        return _run(daemon.run())
    except (StartupError, MigrationError) as e:
        import structlog

        structlog.get_logger("pm.daemon").error("cannot start", error=str(e))
        print(f"pm-agentd: {e}", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
