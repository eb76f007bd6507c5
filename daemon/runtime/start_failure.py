"""Why pm-agentd last failed to start, kept where `pm` can read it: the XDG state folder.

pm-agentd writes this record when it exits before serving (a bad config, a missing Dev root, a
socket it cannot bind, a damaged database, …) and removes it once it is ready. Its stderr says
the same in words (`pm` shows that when a daemon it started dies); the record is for `pm
doctor`, which gives the fix for the actual cause, whichever way the daemon was started (by
`pm`, systemd or launchd). One file for every daemon of the user: each record names its socket,
and a daemon clears only its own.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

import msgspec

from client import locations
from daemon.platform import untrusted

FILE_NAME = "pm-agentd.start-failure.json"
MAX_BYTES = 64 * 1024

# What the daemon was doing when it stopped, as `Daemon.stage` says; "serving" once ready.
Stage = Literal["data_dir", "instance", "socket", "database", "serving"]
Kind = Literal[
    "config",  # a bad value in the file, the environment or the flags (exit 78)
    "dev_root",  # the Dev root is missing and the data folder would be made in it (exit 78)
    "data_dir",  # the data folder cannot be made or is not ours
    "instance",  # another pm-agentd holds the data folder
    "socket",  # the socket cannot be bound (path too long, folder not private, in use)
    "database",  # the database failed its check at start
    "migration",  # the schema cannot be brought up to date safely
    "failed",  # anything else (the daemon log has the traceback)
]


class StartFailure(msgspec.Struct, kw_only=True, frozen=True):
    kind: Kind
    message: str
    fix: str  # "" when the daemon cannot tell (the client knows better: a backup's name…)
    exit_code: int
    pid: int
    at: str  # ISO 8601 UTC
    socket: str  # "" when the config could not be read far enough to say
    data_dir: str


def path(env: Mapping[str, str] = os.environ) -> str:
    return os.path.join(locations.state_dir(env), FILE_NAME)


def kind_of(stage: Stage) -> Kind:
    """A StartupError's kind, from the stage it stopped the daemon in."""
    return "failed" if stage == "serving" else stage


def record(failure: StartFailure, env: Mapping[str, str] = os.environ) -> None:
    """Best effort (the daemon is failing already): written whole or not at all, 0600."""
    target = path(env)
    try:
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        fd, scratch = tempfile.mkstemp(prefix=".start-failure.", dir=os.path.dirname(target))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(msgspec.json.encode(failure))
            os.replace(scratch, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
            raise
    except OSError:
        pass


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def read(env: Mapping[str, str] = os.environ) -> StartFailure | None:
    """The last record, or None when there is none (or it cannot be read as one)."""
    try:  # untrusted: the state folder is the user's, and a FIFO may be put there
        raw = untrusted.read(path(env), within=None, max_bytes=MAX_BYTES)
        return msgspec.json.decode(raw, type=StartFailure)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def clear(socket: str, env: Mapping[str, str] = os.environ) -> None:
    """Forget this daemon's last failure now that it serves (another daemon's record stays)."""
    found = read(env)
    if found is None or found.socket in ("", socket):
        with contextlib.suppress(OSError):
            os.unlink(path(env))
