"""`pm-agentd`: parse flags, load the config, run the daemon in the foreground.

Exit codes: 0 stopped cleanly, 1 could not start or failed, 2 bad usage, 78 bad configuration
(a missing Dev root included). Why it could not start goes to stderr and, for `pm doctor`, to
the start-failure record (daemon/runtime/start_failure.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from client import locations
from daemon import __version__
from daemon.runtime import start_failure
from daemon.runtime.config import (
    Config,
    ConfigError,
    check_dev_root,
    load,
    resolve_paths,
    unknown_environment,
)
from daemon.store.migrations import Migration

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
        paths = resolve_paths(config, env)
        check_dev_root(paths, env)
    except ConfigError as e:
        where = _socket_guess(args.socket, env)
        return _could_not_start(e.kind, str(e), e.fix, EX_CONFIG, where, "", env)
    os.umask(0o077)  # every file and folder we create is ours alone

    from daemon.platform import memory

    memory.tune_allocator()  # before any thread or big allocation (see daemon/platform/memory.py)

    import structlog

    from daemon.runtime import logs
    from daemon.runtime.lifecycle import Daemon
    from daemon.runtime.startup import StartupError
    from daemon.store.migrations import MigrationError

    target = logs.configure(config.log_level, paths.log_file, env)
    log = structlog.get_logger("pm.daemon")
    for warning in unknown_environment(env).values():
        log.warning(warning)
        if target != "-":  # also where whoever started us looks first
            print(f"pm-agentd: warning: {warning}", file=sys.stderr)
    try:
        daemon = Daemon(config, paths, migrations=migrations, env=env)
    except Exception as e:
        log.exception("cannot start", stage="setup")
        message = f"could not start: {type(e).__name__}: {e}"
        return _could_not_start("failed", message, "", 1, paths.socket_path, paths.data_dir, env)
    try:
        return _run(daemon.run())
    except (StartupError, MigrationError) as e:
        log.error("cannot start", error=str(e), stage=daemon.stage)
        kind = "migration" if isinstance(e, MigrationError) else start_failure.kind_of(daemon.stage)
        return _could_not_start(kind, str(e), "", 1, daemon.paths.socket_path, paths.data_dir, env)
    except Exception as e:
        if daemon.stage == "serving":
            raise  # not a start-up failure: the traceback, as for any crash
        log.exception("cannot start", stage=daemon.stage)
        message = f"could not start ({daemon.stage}): {type(e).__name__}: {e}"
        return _could_not_start(
            "failed", message, "", 1, daemon.paths.socket_path, paths.data_dir, env
        )


def _socket_guess(flag: str | None, env: Mapping[str, str]) -> str:
    """Where clients look for this daemon, even when its config cannot be read."""
    try:
        return locations.client_socket_path(flag, env)
    except locations.ConfigFileError:
        return ""


def _could_not_start(
    kind: start_failure.Kind,
    message: str,
    fix: str,
    code: int,
    socket: str,
    data_dir: str,
    env: Mapping[str, str],
) -> int:
    """Say why on stderr (a client that started us shows it) and keep it for `pm doctor`."""
    print(f"pm-agentd: {message}" + (f"\nfix: {fix}" if fix else ""), file=sys.stderr)
    start_failure.record(
        start_failure.StartFailure(
            kind=kind, message=message, fix=fix, exit_code=code, pid=os.getpid(),
            at=start_failure.now(), socket=socket, data_dir=data_dir,
        ),
        env,
    )  # fmt: skip
    return code


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
