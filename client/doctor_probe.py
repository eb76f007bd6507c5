"""What every `pm doctor` check shares: the findings it returns and the Probe it asks.

The Probe asks a running daemon once per method or, when none answers, reads the config's
paths itself (through client.door, the daemon's code). It never starts the daemon.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple

from client import door, errors

if TYPE_CHECKING:
    from client.session import Session
    from client.sync import Client


class Finding(NamedTuple):
    status: str  # "ok" | "warn" | "fail"
    message: str
    fix: str | None = None  # the command that fixes it


def ok(message: str) -> Finding:
    return Finding("ok", message)


def warn(message: str, fix: str | None = None) -> Finding:
    return Finding("warn", message, fix)


def fail(message: str, fix: str) -> Finding:
    """A failure always says what to do about it."""
    return Finding("fail", message, fix)


class NotChecked(Exception):
    """What a check needs is not known (the config is broken and no daemon answers)."""


class Where(NamedTuple):
    data_dir: str
    db_path: str
    backups_dir: str


class Probe:
    """The daemon's answers (asked once each) or, when none answers, the config's paths."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.client: Client | None = None
        self.unreachable: str | None = None  # why nothing usable answers
        self.incompatible: str | None = None  # a daemon answers, in another protocol
        self.hello: dict[str, Any] = {}
        self.status: dict[str, Any] = {}
        self._answers: dict[str, Any] = {}
        self._config: dict[str, Any] | door.Refused | None = None
        self._start_failure: dict[str, Any] | None = None
        self._start_failure_read = False
        try:
            client = s.client(spawn=False)
            self.hello = client.call(
                "daemon.hello",
                {"client": "pm doctor", "protocol_version": errors.PROTOCOL_VERSION},
            )
            self.status = client.call("daemon.status")
        except errors.Unreachable as e:
            self.unreachable = str(e)
        except errors.IncompatibleDaemon as e:
            self.incompatible = str(e)
        except errors.ClientError as e:
            self.unreachable = f"{s.socket_path} does not answer as pm-agentd should: {e}"
        else:
            self.client = client

    @property
    def online(self) -> bool:
        return self.client is not None

    def ask(self, method: str) -> Any:
        if method not in self._answers:
            assert self.client is not None
            self._answers[method] = self.client.call(method)
        return self._answers[method]

    def config(self) -> dict[str, Any] | door.Refused:
        """The paths the config resolves to (dev_root, data_dir, db_path, backups_dir…), or
        why it cannot be read (with its fix)."""
        if self._config is None:
            try:
                self._config = door.ask("paths")
            except door.Refused as e:
                self._config = e
        return self._config

    def where(self) -> Where:
        if self.online:
            data_dir = str(self.status["data_dir"])
            backups = os.path.join(data_dir, "backups")
            return Where(data_dir, str(self.status["db_path"]), backups)
        paths = self.config()
        if isinstance(paths, door.Refused):
            raise NotChecked(f"the config cannot be read and no daemon answers ({paths})")
        return Where(paths["data_dir"], paths["db_path"], paths["backups_dir"])

    def start_failure(self) -> dict[str, Any] | None:
        """Why the daemon last stopped before serving on this socket, if it did (and has not
        started since): what the daemon itself recorded (kind, message, fix, exit_code, at,
        socket, data_dir)."""
        if not self._start_failure_read:
            found = door.ask("start_failure")
            if found is not None and found["socket"] in ("", self.s.socket_path):
                self._start_failure = found
            self._start_failure_read = True
        return self._start_failure

    def backups(self) -> list[dict[str, Any]]:
        """Every backup, newest first."""
        if self.online:
            items: list[dict[str, Any]] = self.ask("db.backups")["items"]
            return items
        if "backups" not in self._answers:
            found = door.ask("backups_in", {"folder": self.where().backups_dir})
            self._answers["backups"] = found
        listed: list[dict[str, Any]] = self._answers["backups"]
        return listed
