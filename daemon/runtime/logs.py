"""Logging with structlog: JSON lines for machines, a console rendering for a person.

Where the lines go: a terminal gets the console rendering; under systemd (journald) or with
log_file "-" JSON lines go to stderr; otherwise (started by a client in the background) JSON
lines go to a size-rotated file in the XDG state dir.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping

import structlog

from client import locations

_ROTATE_BYTES = 10 * 1024 * 1024
_ROTATE_KEEP = 5


def destination(log_file: str, env: Mapping[str, str] = os.environ) -> str:
    """ "-" for stderr, else the file to write."""
    if log_file:
        return log_file
    if sys.stderr.isatty() or env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"):
        return "-"
    return os.path.join(locations.state_dir(env), "pm-agentd.log")


def configure(level: str, log_file: str, env: Mapping[str, str] = os.environ) -> str:
    """Set up structlog and stdlib logging; returns where logs go."""
    target = destination(log_file, env)
    handler: logging.Handler
    if target == "-":
        handler = logging.StreamHandler(sys.stderr)
        console = sys.stderr.isatty()
    else:
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            target, maxBytes=_ROTATE_BYTES, backupCount=_ROTATE_KEEP, encoding="utf-8"
        )
        console = False
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=not env.get("NO_COLOR"))
        if console
        else structlog.processors.JSONRenderer()
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info if not console else _keep,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    return target


def _keep(
    logger: structlog.typing.WrappedLogger, name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    return event  # the console renderer formats exceptions itself
